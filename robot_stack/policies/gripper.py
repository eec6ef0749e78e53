"""The gripper as a held decision during exploration (DESIGN.md §3: binary wherever a policy produces it).

A stochastic policy draws a fresh gripper sample every control tick; executed as is, the fingers flicker near
the decision boundary and a grasp cannot be held (learning review F5: every online episode failed that way).
GripperHold keeps the executed decision for at least `min_hold_steps` ticks after each change, so exploration still
tries opening and closing, but a decision, once taken, lasts long enough to lift or release an object.

    sampled action (A,) ──► gripper = 1 (open) iff sample > 0.5 ──► switch only if held ≥ min_hold_steps ──► action
"""

from __future__ import annotations

import numpy as np

from robot_stack.types import GRIPPER_INDEX

OPEN, CLOSED = 1.0, 0.0


class GripperHold:
    """Per-episode state: `reset()` at the episode start (the arm homes with the gripper open), then `apply(a)`."""

    def __init__(self, min_hold_steps: int = 5, gripper_index: int = GRIPPER_INDEX):
        if min_hold_steps < 1:
            raise ValueError(f"min_hold_steps must be >= 1, got {min_hold_steps}")
        self.min_hold_steps, self.index = int(min_hold_steps), int(gripper_index)
        self.reset()

    def reset(self, state: float = OPEN) -> None:
        self.state = OPEN if state > 0.5 else CLOSED
        self.held_steps = self.min_hold_steps   # the first decision of an episode may change at once

    def apply(self, action: np.ndarray) -> np.ndarray:
        """(A,) physical action -> a copy whose gripper is the held binary decision."""
        out = np.array(action, dtype=np.float32, copy=True)
        want = OPEN if out[self.index] > 0.5 else CLOSED
        if want != self.state and self.held_steps >= self.min_hold_steps:
            self.state, self.held_steps = want, 0
        self.held_steps += 1
        out[self.index] = self.state
        return out
