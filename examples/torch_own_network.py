"""MIND on your own PyTorch network, from Python: 5 tasks of 2 Fashion-MNIST classes.

    python examples/torch_own_network.py [--out DIR]

Any nn.Module made of Conv2d, Linear and BatchNorm layers works; MIND converts a copy to gated
layers with one BatchNorm snapshot per task. The last Linear is the classifier.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch.nn.functional as F
from torch import nn

import mind_core as mind
from mind_core.data import load_dataset

# The demo preset's recipe with fewer epochs and smaller batches on less data: seconds, not
# minutes.
QUICK = {"teacher.epochs": 3, "teacher.milestones": [], "teacher.batch_size": 32,
         "distill.epochs": 3, "distill.milestones": [], "distill.batch_size": 32}


class SmallNet(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16))
        self.block2 = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32))
        self.head = nn.Linear(32, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.block1(x)), 2)
        x = F.relu(self.block2(x))
        return self.head(x.mean(dim=(2, 3)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="run directory (default: a new one in runs/)")
    args = parser.parse_args()
    # Any uint8 images (NHWC or NHW) with labels 0..K-1 will do; here every third image of
    # the Fashion-MNIST subset shipped in the package.
    builtin = load_dataset("fmnist-mini")
    x_train, y_train = builtin.x_train[::3], builtin.y_train[::3]
    x_test, y_test, names = builtin.x_test, builtin.y_test, builtin.class_names
    data = mind.arrays(x_train, y_train, x_test, y_test, name="fmnist-third",
                       class_names=names)
    run = mind.fit(SmallNet(), data, tasks=5, preset="demo", settings=QUICK, out=args.out)
    final = run.metrics["final"]
    print(f"TAg {100 * final['tag']:.1f}%  TAw {100 * final['taw']:.1f}%  "
          f"routing {100 * final['routing']:.1f}%  ({run.path})")
    found = run.predictions(x_test[:5])
    for name, task, truth in zip(found.names(), found.tasks, y_test[:5], strict=True):
        print(f"  predicted {name:<12} (task {task}), true {names[truth]}")


if __name__ == "__main__":
    main()
