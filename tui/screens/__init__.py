"""The app's screens: launch, monitor, runs, compare."""
