"""The PyTorch backend of MIND: `backends.torch.backend:TorchBackend`."""

from mind_core.openmp import choose_wait_policy

choose_wait_policy()  # before torch loads its OpenMP runtime (mind_core/openmp.py)

from backends.torch.backend import TorchBackend  # noqa: E402

__all__ = ["TorchBackend"]
