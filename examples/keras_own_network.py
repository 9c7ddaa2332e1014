"""MIND on your own Keras model, from Python: 5 tasks of 2 Fashion-MNIST classes.

    python examples/keras_own_network.py [--out DIR]

A Sequential or functional model of Conv2D, Dense and BatchNormalization layers works; MIND
converts a copy to gated layers with one BatchNorm snapshot per task. The last Dense is the
classifier and outputs logits (no softmax).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import keras

import mind_core as mind
from mind_core.data import load_dataset

# The demo preset's recipe with fewer epochs and smaller batches on less data: seconds, not
# minutes.
QUICK = {"teacher.epochs": 3, "teacher.milestones": [], "teacher.batch_size": 32,
         "distill.epochs": 3, "distill.milestones": [], "distill.batch_size": 32}


def small_net(classes: int = 10) -> keras.Model:
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(32, 3, padding="same", use_bias=False)(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes, name="head")(x))


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
    run = mind.fit(small_net(), data, tasks=5, preset="demo", settings=QUICK, out=args.out)
    final = run.metrics["final"]
    print(f"TAg {100 * final['tag']:.1f}%  TAw {100 * final['taw']:.1f}%  "
          f"routing {100 * final['routing']:.1f}%  ({run.path})")
    found = run.predictions(x_test[:5])
    for name, task, truth in zip(found.names(), found.tasks, y_test[:5], strict=True):
        print(f"  predicted {name:<12} (task {task}), true {names[truth]}")


if __name__ == "__main__":
    main()
