"""The PyTorch backend of MIND: `backends.torch.backend:TorchBackend`."""

from backends.torch.backend import TorchBackend

__all__ = ["TorchBackend"]
