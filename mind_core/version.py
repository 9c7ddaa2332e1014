"""The package's version, which the CLI's --version and every run's config.json report.

Its own module, below them, so that they need not import mind_core/__init__.py, which loads the
Python API (and with it runner.py, one of those modules) on demand; mind_core.__version__ is
this one.
"""

__version__ = "0.1.0"
