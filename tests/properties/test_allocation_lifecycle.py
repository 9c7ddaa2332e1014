"""The task-by-task allocation lifecycle as a hypothesis state machine.

Tasks arrive in order; between allocations the machine also tries the calls that must be
refused (a task allocated twice, classifier rows that are already owned) and checks that a
refusal changes nothing. The invariants hold after every step.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from mind_core import masks
from tests.properties.strategies import Setup, setups


class AllocationLifecycle(RuleBasedStateMachine):
    @initialize(setup=setups(), mode=st.sampled_from(masks.MODES),
                class_rows=st.booleans())
    def start(self, setup: Setup, mode: str, class_rows: bool) -> None:
        self.setup = setup
        self.mode = mode
        self.class_rows = class_rows
        self.owner = masks.new_ownership(setup.layers, setup.num_tasks)
        self.next_task = 0
        self.free_history = [self.free_counts()]
        self.owned_counts: dict[int, dict[str, int]] = {}

    def allocate(self, task: int, class_range_of: int | None = None) -> dict:
        rng = np.random.default_rng([self.setup.seed, task])
        teacher = {layer.name: rng.standard_normal(layer.shape) for layer in self.setup.layers}
        rows_of = task if class_range_of is None else class_range_of
        return masks.allocate(
            self.owner, task, layers=self.setup.layers, num_tasks=self.setup.num_tasks,
            mode=self.mode, rng=rng, teacher_weights=teacher if self.mode == "magnitude" else None,
            class_range=self.setup.class_range(rows_of) if self.class_rows else None)

    def free_counts(self) -> dict[str, int]:
        return {name: int((o == masks.FREE).sum()) for name, o in self.owner.items()}

    @precondition(lambda self: self.next_task < self.setup.num_tasks)
    @rule()
    def learn_next_task(self) -> None:
        task = self.next_task
        before = self.owner
        self.owner = self.allocate(task)
        self.next_task += 1
        self.free_history.append(self.free_counts())
        self.owned_counts[task] = {name: int((o == task).sum()) for name, o in self.owner.items()}
        for layer in self.setup.layers:
            if layer.classifier and self.class_rows:
                continue
            free_before = int((before[layer.name] == masks.FREE).sum())
            expected = min(masks.quota(int(np.prod(layer.shape)), self.setup.num_tasks),
                           free_before)
            assert self.owned_counts[task][layer.name] == expected

    # The refusal rules return early instead of using preconditions: with hypothesis' random
    # disabling of rules, preconditions would make many runs invalid (no rule to take).
    @rule(data=st.data())
    def allocating_a_learned_task_again_is_refused(self, data) -> None:
        if self.next_task == 0:
            return
        task = data.draw(st.integers(0, self.next_task - 1), label="task")
        snapshot = {name: o.copy() for name, o in self.owner.items()}
        with pytest.raises(ValueError, match="already owns"):
            self.allocate(task)
        self.assert_unchanged(snapshot)

    @rule(data=st.data())
    def taking_owned_classifier_rows_is_refused(self, data) -> None:
        if not (self.class_rows and 0 < self.next_task < self.setup.num_tasks):
            return
        taken = data.draw(st.integers(0, self.next_task - 1), label="rows of task")
        snapshot = {name: o.copy() for name, o in self.owner.items()}
        with pytest.raises(ValueError, match="already owned"):
            self.allocate(self.next_task, class_range_of=taken)
        self.assert_unchanged(snapshot)

    def assert_unchanged(self, snapshot: dict) -> None:
        for name, o in self.owner.items():
            np.testing.assert_array_equal(o, snapshot[name])

    @invariant()
    def owners_are_learned_tasks_only(self) -> None:
        for o in self.owner.values():
            assert o.min() >= masks.FREE
            assert o.max() < self.next_task

    @invariant()
    def owned_weights_never_change_hands(self) -> None:
        for task, counts in self.owned_counts.items():
            for name, count in counts.items():
                assert int((self.owner[name] == task).sum()) == count

    @invariant()
    def free_count_never_increases(self) -> None:
        for earlier, later in zip(self.free_history, self.free_history[1:], strict=False):
            assert all(later[name] <= earlier[name] for name in earlier)

    @invariant()
    def classifier_rows_belong_to_their_task(self) -> None:
        if not self.class_rows:
            return
        head = self.owner[self.setup.classifier.name]
        for task in range(self.setup.num_tasks):
            lo, hi = self.setup.class_range(task)
            expected = task if task < self.next_task else masks.FREE
            assert (head[lo:hi] == expected).all()

    @invariant()
    def sharing_gates_are_nested_and_unshared_gates_disjoint(self) -> None:
        for task in range(self.next_task):
            shared = masks.gates(self.owner, task, weight_sharing=True)
            for name, o in self.owner.items():
                np.testing.assert_array_equal(shared[name], (o >= 0) & (o <= task))
                if task + 1 < self.next_task:
                    wider = masks.gates(self.owner, task + 1)[name]
                    assert not (shared[name] & ~wider).any()
        for name in self.owner:
            alone = [masks.gates(self.owner, t, weight_sharing=False)[name]
                     for t in range(self.next_task)]
            if alone:
                assert (np.sum(alone, axis=0) <= 1).all()


TestAllocationLifecycle = AllocationLifecycle.TestCase
