"""Widgets of the monitor and compare screens; each renders from its reactives."""
