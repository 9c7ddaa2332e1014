"""The MIND terminal UI (`mind-tui`): launch runs, watch them learn, compare results.

Never imports a deep-learning framework: runs are child processes (`python -m mind_core.cli`),
followed through their run directory.
"""
