"""File-replay teleop device: plays a JSON-lines file of {"action": [7 floats], "events": [...]} one line per
control step (tests, demos, re-running a recorded session). After the last line: zero motion, event "quit"."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from robot_stack.teleop.device import EVENTS, TELEOPS, Teleop, TeleopSample
from robot_stack.types import EE_DELTA_DIM, GRIPPER_INDEX


@TELEOPS.register("replay")
class ReplayTeleop(Teleop):
    name = "replay"

    def __init__(self, path: str, scale=None):
        super().__init__(scale)
        self.path = Path(path)
        self.rows: list[dict] = []
        self.index = 0

    def connect(self) -> None:
        if not self.path.is_file():
            raise FileNotFoundError(f"replay file {self.path} does not exist (teleop.path=...)")
        self.rows = []
        for i, line in enumerate(self.path.read_text().splitlines()):
            if not line.strip():
                continue
            row = json.loads(line)
            action = row.get("action", [0.0] * 6 + [1.0])
            bad = [e for e in row.get("events", []) if e not in EVENTS]
            if len(action) != EE_DELTA_DIM or bad:
                raise ValueError(f"{self.path}:{i + 1}: need 7 action values and events from {EVENTS}")
            self.rows.append({"action": action, "events": list(row.get("events", []))})

    def read(self) -> TeleopSample:
        if self.index >= len(self.rows):
            a = np.zeros(EE_DELTA_DIM)
            a[GRIPPER_INDEX] = self.gripper
            first_past_end = self.index == len(self.rows)
            self.index += 1
            return TeleopSample(a, ["quit"] if first_past_end else [])
        row = self.rows[self.index]
        self.index += 1
        a = np.asarray(row["action"], dtype=np.float64)
        self.gripper = float(a[GRIPPER_INDEX])
        return TeleopSample(a, list(row["events"]))
