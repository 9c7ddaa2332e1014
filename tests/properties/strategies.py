"""Hypothesis strategies shared by the property tests: tiny layer lists and allocation setups."""

from __future__ import annotations

import attrs
from hypothesis import strategies as st

from mind_core.protocol import LayerInfo


@attrs.frozen
class Setup:
    """A network of gated layers ending in a classifier, split into num_tasks tasks."""

    layers: list[LayerInfo]
    num_tasks: int
    classes_per_task: int
    seed: int

    @property
    def classifier(self) -> LayerInfo:
        return self.layers[-1]

    def class_range(self, task: int) -> tuple[int, int]:
        return (task * self.classes_per_task, (task + 1) * self.classes_per_task)


def conv_shapes():
    return st.tuples(st.integers(1, 6), st.integers(1, 4), st.sampled_from([1, 2, 3]),
                     st.sampled_from([1, 3]))


def linear_shapes():
    return st.tuples(st.integers(1, 12), st.integers(1, 10))


@st.composite
def setups(draw, max_tasks: int = 8) -> Setup:
    num_tasks = draw(st.integers(1, max_tasks))
    classes_per_task = draw(st.integers(1, 3))
    hidden = draw(st.lists(st.one_of(conv_shapes(), linear_shapes()), min_size=0, max_size=3))
    layers = [
        LayerInfo(name=f"block{i}.weight", shape=shape, kind="conv" if len(shape) == 4 else "linear")
        for i, shape in enumerate(hidden)
    ]
    fan_in = draw(st.integers(1, 6))
    layers.append(LayerInfo(name="head.weight", shape=(num_tasks * classes_per_task, fan_in),
                            kind="linear", classifier=True))
    return Setup(layers=layers, num_tasks=num_tasks, classes_per_task=classes_per_task,
                 seed=draw(st.integers(0, 2**32 - 1)))
