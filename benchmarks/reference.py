"""The dense reference of the speed benchmark: ResNet-32 from stock torch.nn layers, trained and
run the way the backends are, without gates, teacher or trainable masks."""

from __future__ import annotations

import numpy as np

TASKS = 10
NUM_CLASSES = 10 * TASKS
CLASS_RANGE = (10 * (TASKS - 1), 10 * TASKS)  # the last task's classes
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def plain_resnet32(num_classes: int, in_channels: int = 3):
    """The CIFAR ResNet-32 from stock torch.nn layers, same shapes as the backends' (option-A
    shortcuts, bias-free convs and head), with no gates: the dense reference."""
    import torch.nn.functional as F
    from torch import nn

    def conv(i: int, o: int, stride: int = 1) -> nn.Conv2d:
        return nn.Conv2d(i, o, 3, stride, 1, bias=False)

    class Block(nn.Module):
        def __init__(self, i: int, o: int, stride: int) -> None:
            super().__init__()
            self.conv1, self.bn1 = conv(i, o, stride), nn.BatchNorm2d(o)
            self.conv2, self.bn2 = conv(o, o), nn.BatchNorm2d(o)
            self.pad = o // 4 if stride != 1 or i != o else 0

        def forward(self, x):
            out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            short = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad)) if self.pad else x
            return F.relu(out + short)

    layers: list[nn.Module] = [conv(in_channels, 16), nn.BatchNorm2d(16), nn.ReLU()]
    width = 16
    for planes, stride in ((16, 1), (32, 2), (64, 2)):
        layers += [Block(width, planes, stride)] + [Block(planes, planes, 1) for _ in range(4)]
        width = planes
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes, bias=False)]
    return nn.Sequential(*layers)


class PlainTorch:
    """The dense reference, trained and run the way the backends are (uint8 batches sent to the
    device once per epoch and normalised there, CE over the task's zero-masked logits, AdamW)."""

    def __init__(self, device: str, batch_size: int, eval_batch: int) -> None:
        import torch

        self.torch, self.device = torch, torch.device(device)
        torch.manual_seed(0)
        self.model = plain_resnet32(NUM_CLASSES).to(self.device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3, weight_decay=0.0,
                                     fused=self.device.type == "cuda")
        self.keep = torch.zeros(NUM_CLASSES, device=self.device)
        self.keep[CLASS_RANGE[0]:CLASS_RANGE[1]] = 1.0
        self.mean = torch.tensor(MEAN, device=self.device)
        self.std = torch.tensor(STD, device=self.device)
        self.batch_size, self.eval_batch = batch_size, eval_batch

    def _normalise(self, xb):
        return ((xb.float() / 255.0 - self.mean) / self.std).permute(0, 3, 1, 2).contiguous()

    def train_epoch(self, x: np.ndarray, y: np.ndarray, seed: int) -> None:
        torch = self.torch
        self.model.train()
        x_dev, y_dev = torch.from_numpy(x).to(self.device), torch.from_numpy(y).to(self.device)
        perm = torch.from_numpy(np.random.default_rng(seed).permutation(len(x))).to(self.device)
        total = torch.zeros((), device=self.device)
        for start in range(0, len(x), self.batch_size):
            idx = perm[start:start + self.batch_size]
            logits = self.model(self._normalise(x_dev[idx])) * self.keep
            loss = torch.nn.functional.cross_entropy(logits, y_dev[idx])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            total += loss.detach()
        float(total)  # waits for the device

    def forward(self, x: np.ndarray) -> np.ndarray:
        torch = self.torch
        self.model.eval()
        with torch.inference_mode():
            x_dev = torch.from_numpy(x).to(self.device)
            out = [self.model(self._normalise(x_dev[s:s + self.eval_batch]))[:, :10]
                   for s in range(0, len(x), self.eval_batch)]
            return torch.cat(out).cpu().numpy()
