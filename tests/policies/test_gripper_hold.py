"""GripperHold: a sampled gripper becomes a binary decision held for min_hold_steps ticks (no flickering grasp)."""

import numpy as np
import pytest

from robot_stack.policies.gripper import CLOSED, OPEN, GripperHold
from robot_stack.types import GRIPPER_INDEX


def act(g: float) -> np.ndarray:
    a = np.full(7, 0.01, np.float32)
    a[GRIPPER_INDEX] = g
    return a


def test_decisions_are_binary_and_held():
    hold = GripperHold(min_hold_steps=3)
    samples = [0.9, 0.2, 0.9, 0.1, 0.8, 0.3, 0.3, 0.3, 0.9, 0.9, 0.9]   # a flickering policy sample
    out = [float(hold.apply(act(g))[GRIPPER_INDEX]) for g in samples]
    assert set(out) <= {OPEN, CLOSED}
    # Closes at once (the episode's first change may happen immediately), then holds 3 ticks before reopening.
    assert out == [OPEN, CLOSED, CLOSED, CLOSED, OPEN, OPEN, OPEN, CLOSED, CLOSED, CLOSED, OPEN]
    changes = np.flatnonzero(np.diff(out)) + 1
    assert np.all(np.diff(changes) >= 3)
    np.testing.assert_array_equal(hold.apply(act(0.9))[:GRIPPER_INDEX], np.float32(0.01))   # the arm part is untouched
    hold.reset()
    assert hold.apply(act(0.0))[GRIPPER_INDEX] == CLOSED


def test_refuses_a_zero_hold():
    with pytest.raises(ValueError, match="min_hold_steps"):
        GripperHold(0)
