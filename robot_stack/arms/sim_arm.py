"""The MuJoCo arm (WidowX or Panda) as an `Arm` driver: the rest of the graph cannot tell it from a real arm."""

from __future__ import annotations

import time

import numpy as np

from robot_stack.arms.arm import ARMS, Arm, ArmState
from robot_stack.types import EE_DELTA_DIM, GRIPPER_INDEX


@ARMS.register("sim")
class SimArm(Arm):
    """Drives a `robot_stack.sim.TabletopSim` (shared with the sim cameras in one process)."""

    name = "sim"
    action_space = "ee_delta"

    def __init__(self, sim):
        self.sim = sim
        self._gripper_cmd = 1.0  # hold keeps the last commanded gripper (dropping a held cube is not "holding")

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(self.sim.joint_names)

    def get_state(self) -> ArmState:
        return ArmState(
            joint_names=self.joint_names,
            joint_positions_rad=np.asarray(self.sim.joint_positions(), dtype=np.float64),
            ee_pose=np.asarray(self.sim.ee_pose(), dtype=np.float64),
            gripper_opening=float(self.sim.gripper_opening()),
            stamp_ns=time.time_ns(),
        )

    def send_action(self, action: np.ndarray) -> np.ndarray:
        self._gripper_cmd = float(action[GRIPPER_INDEX])
        return np.asarray(self.sim.apply_ee_delta(np.asarray(action, dtype=np.float64)), dtype=np.float32)

    def hold(self) -> None:
        still = np.zeros(EE_DELTA_DIM)
        still[GRIPPER_INDEX] = self._gripper_cmd
        self.sim.apply_ee_delta(still)

    def reset_gripper_command(self) -> None:
        """After a sim reset the gripper starts open."""
        self._gripper_cmd = 1.0
