"""The MuJoCo arm (WidowX or Panda) as an `Arm` driver: the rest of the graph cannot tell it from a real arm."""

from __future__ import annotations

import logging
import time

import numpy as np

from robot_stack.arms.arm import ARMS, Arm, ArmState
from robot_stack.arms.safety import limit_joint_command
from robot_stack.types import GRIPPER_INDEX

log = logging.getLogger(__name__)


@ARMS.register("sim")
class SimArm(Arm):
    """Drives a `robot_stack.sim.TabletopSim` (shared with the sim cameras in one process).

    Like the real drivers, the joint command the sim's IK plans is checked against the limits before it is
    sent (`limit_joint_command`: FK of the command vs the MEASURED pose, per-joint step bound).
    """

    name = "sim"
    action_space = "ee_delta"

    def __init__(self, sim):
        self.sim = sim
        self._gripper_cmd = 1.0  # hold keeps the last commanded gripper (dropping a held cube is not "holding")
        self.last_check = None  # the last JointCheck (tests and the safety benchmark read it)
        self.n_scaled = 0

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
        a = np.asarray(action, dtype=np.float64)
        self._gripper_cmd = float(a[GRIPPER_INDEX])
        q_plan = self.sim.plan_ee_delta(a)
        check = limit_joint_command(self.sim.joint_positions(), q_plan, self.sim.fk, self.require_safety())
        self.last_check = check
        if check.scale < 1.0:
            self.n_scaled += 1
            if self.n_scaled == 1 or self.n_scaled % 50 == 0:
                log.warning("joint command scaled to %.2f of the plan (%s); %d so far", check.scale, check.reason,
                            self.n_scaled)
        return np.asarray(self.sim.command_joints(check.q_rad, self._gripper_cmd), dtype=np.float32)

    def hold(self) -> None:
        # Re-command the last joint command (no IK: the sim's own target clipping would move an arm that is
        # outside the box), checked like any command.
        q = self.sim.commanded_joints()
        if self.safety is not None:
            check = limit_joint_command(self.sim.joint_positions(), q, self.sim.fk, self.safety)
            self.last_check = check
            q = check.q_rad
        self.sim.command_joints(q, self._gripper_cmd)

    def commanded_pose(self):
        return None if self.last_check is None else self.sim.fk(self.last_check.q_rad)

    def halt(self) -> None:
        # Command the measured joints: whatever was in flight stops where the arm is.
        self.sim.command_joints(self.sim.joint_positions(), self._gripper_cmd)

    def reset_gripper_command(self) -> None:
        """After a sim reset the gripper starts open."""
        self._gripper_cmd = 1.0
