"""The PyTorch backend of MIND: `backends.torch.backend:TorchBackend`."""

from mind_core.heap import keep_freed_memory
from mind_core.openmp import choose_wait_policy

choose_wait_policy()  # before torch loads its OpenMP runtime (mind_core/openmp.py)
keep_freed_memory()  # a step reuses the last step's pages (mind_core/heap.py)

from backends.torch.backend import TorchBackend  # noqa: E402

__all__ = ["TorchBackend"]
