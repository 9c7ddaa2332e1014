"""MIND: replay-free class-incremental learning by multi-task network distillation.

`import mind_core as mind` gives the Python API (mind_core/api.py): mind.fit, mind.load,
mind.resume, mind.arrays, mind.Run, mind.MindError. It is loaded on first use, so the CLI
and the TUI, which import this package, do not pay for it.
"""

from mind_core.version import __version__

_API = ("fit", "load", "resume", "arrays", "Run", "MindError")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from mind_core import api

        return getattr(api, name)
    raise AttributeError(f"module 'mind_core' has no attribute {name!r}")
