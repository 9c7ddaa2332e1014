"""Input normalisation and train-time augmentation on device tensors (no PIL, no host work).

All random numbers of an epoch are drawn at once from a torch.Generator seeded by the epoch
seed, so an epoch is repeatable; crop and flip are a single gather per batch.
"""

from __future__ import annotations

import torch

from mind_core.protocol import Augment


class Normaliser:
    """uint8 NHWC -> float NCHW, (x / 255 - mean[c]) / std[c].

    On the CPU the result keeps the NHWC memory layout (torch.channels_last): oneDNN's
    convolutions run natively in it, which made ResNet-32 training steps about 20% and
    inference about 15% faster than with an NCHW copy (benchmarks/speed.py). CUDA keeps NCHW
    until someone measures channels_last there.

    A user's network (channels_last=False) gets plain NCHW strides everywhere: it may .view()
    its activations, which channels_last activations make fail. With one channel a permuted
    NHWC tensor already counts as contiguous while keeping NHWC strides, from which convs
    infer channels_last output; so that case is copied into fresh NCHW strides.
    """

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device,
                 channels_last: bool = True):
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device)
        self.inv_std = 1.0 / torch.tensor(std, dtype=torch.float32, device=device)
        self.plain_nchw = not channels_last
        self.layout = (torch.channels_last if channels_last and torch.device(device).type == "cpu"
                       else torch.contiguous_format)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = ((x.float() * (1.0 / 255.0) - self.mean) * self.inv_std).permute(0, 3, 1, 2)
        if self.plain_nchw:
            return x.clone(memory_format=torch.contiguous_format)
        return x.contiguous(memory_format=self.layout)


class EpochAugmenter:
    """Random crop after zero padding, horizontal flip and brightness for one epoch.

    Random draws are indexed by position in the epoch's batch order, so batch i always gets
    the same draws for a given seed, whatever happened in earlier batches.
    """

    def __init__(self, augment: Augment, n: int, height: int, width: int, seed: int,
                 device: torch.device) -> None:
        self.pad = int(augment.crop_pad)
        self.hflip = bool(augment.hflip)
        self.brightness = float(augment.brightness)
        self.active = self.pad > 0 or self.hflip or self.brightness > 0
        self.height, self.width = height, width
        if not self.active:
            return
        gen = torch.Generator(device=device).manual_seed(int(seed))
        self.offsets = torch.randint(0, 2 * self.pad + 1, (n, 2), generator=gen, device=device)
        self.flips = torch.rand(n, generator=gen, device=device) < 0.5
        self.shifts = (torch.rand(n, generator=gen, device=device) * 2.0 - 1.0) * self.brightness
        self.rows = torch.arange(height, device=device)
        self.cols = torch.arange(width, device=device)

    def geometric(self, x: torch.Tensor, start: int) -> torch.Tensor:
        """Crop and flip a uint8 NHWC batch whose first sample is number `start` of the epoch."""
        if not (self.active and (self.pad > 0 or self.hflip)):
            return x
        b = x.shape[0]
        p = self.pad
        if p:
            # Zero padding in pixel space: the padded border is black, as in the usual recipe.
            x = torch.nn.functional.pad(x, (0, 0, p, p, p, p))
        offsets = self.offsets[start:start + b]
        rows = offsets[:, 0:1] + self.rows  # [b, h]
        cols = self.cols.expand(b, -1)
        if self.hflip:
            flip = self.flips[start:start + b, None]
            cols = torch.where(flip, self.width - 1 - cols, cols)
        cols = offsets[:, 1:2] + cols  # [b, w]
        batch = torch.arange(b, device=x.device)[:, None, None]
        return x[batch, rows[:, :, None], cols[:, None, :]]

    def photometric(self, x: torch.Tensor, start: int) -> torch.Tensor:
        """Brightness: add U(-b, b) per image to normalised NCHW pixels."""
        if not (self.active and self.brightness > 0):
            return x
        return x + self.shifts[start:start + x.shape[0], None, None, None]
