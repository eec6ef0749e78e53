"""Sim rig process (WidowX or Panda, from the rig config): arm node + camera node + sim control (reset, ground truth, scripted expert) over ONE
MuJoCo simulation, composed in one process and one single-threaded executor so the model state is
never touched from two threads.

    sim/reset (Trigger) ─┐                     ┌─► camera/<name>/image_raw, camera_info   (CameraNode)
    sim/evaluate ────────┤   TabletopSim  ◄────┤      (sim/intervene: the scene placed again, counted)
    teleop/enable ───────┘   (MuJoCo)     ◄────┴─► action → safety → action_executed, joint_states (ArmNode)
                                 ▲
       scripted expert ──action──┘  (a teleop device with privileged sim state, stamped like any sender)

Usage: python -m robot_stack.ros.sim_rig_node task=put_cube_in_bowl [hydra overrides] [--ros-args ...]
"""

from __future__ import annotations

import json
import time

from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool, Trigger

from robot_stack.ros import conversions as conv
from robot_stack.ros.qos import COMMAND

EXPERT_SOURCE = "sim:scripted_expert"
# rig.robot -> sim model, for rig configs that do not name `sim_arm` (sim_widowx.yaml predates it).
ROBOT_TO_SIM_ARM = {"wx250s": "widowx", "widowx": "widowx", "panda": "panda", "fr3": "panda"}


def sim_arm_of(rig) -> str:
    """Which robot_stack.sim model a rig config drives: `rig.sim_arm`, else from `rig.robot`."""
    arm = rig.get("sim_arm") if hasattr(rig, "get") else None
    if arm:
        return str(arm)
    robot = str(rig.robot)
    if robot not in ROBOT_TO_SIM_ARM:
        raise ValueError(f"rig.robot {robot!r} has no sim model; set rig.sim_arm to one of widowx, panda")
    return ROBOT_TO_SIM_ARM[robot]


class SimControlNode(Node):
    """Episode control for the sim: reset, ground-truth evaluation, and the scripted expert as a teleop device."""

    def __init__(self, sim, arm, controller, arm_node, task_cfg, base_seed: int, namespace: str):
        super().__init__("sim", namespace=namespace)
        from robot_stack.sim.expert import ScriptedExpert

        self.sim, self.arm, self.controller, self.arm_node = sim, arm, controller, arm_node
        self.task_cfg = task_cfg
        self.base_seed = base_seed
        self.n_resets = 0
        self.steps_since_reset = 0
        self.expert = ScriptedExpert(task_cfg.name, noise_std=float(task_cfg.expert_noise_std_m), seed=base_seed)
        self.expert_enabled = False
        self.pub_action = self.create_publisher(JointState, "action", COMMAND)
        self.create_service(Trigger, "sim/reset", self._on_reset)
        self.create_service(Trigger, "sim/evaluate", self._on_evaluate)
        self.create_service(Trigger, "sim/intervene", self._on_intervene)
        self.create_service(SetBool, "teleop/enable", self._on_teleop_enable)
        arm_node.state_listeners.append(self._on_state)
        self._executed_at_reset = controller.n_executed

    def _on_reset(self, req, resp):
        seed = self.base_seed + self.n_resets
        self.n_resets += 1
        self.sim.reset(seed=seed)
        self.arm.reset_gripper_command()
        self.expert = type(self.expert)(self.task_cfg.name, noise_std=float(self.task_cfg.expert_noise_std_m), seed=seed)
        self.expert.reset()
        self._executed_at_reset = self.controller.n_executed
        self.arm_node.publish_state()
        resp.success, resp.message = True, json.dumps({"seed": seed, "language": self.sim.language})
        return resp

    def _on_intervene(self, req, resp):
        """What a person does on a real rig when practice asks for help: the scene placed again (from the configured
        forward task's start distribution), the arm homed. Counted by the sim (n_interventions) and by practice."""
        seed = self.base_seed + 1_000_000 + self.sim.n_interventions
        task = self.sim.task
        self.sim.set_task(str(self.task_cfg.name))
        self.sim.intervene(seed=seed)
        self.sim.set_task(task)
        self.arm.reset_gripper_command()
        self._executed_at_reset = self.controller.n_executed
        self.arm_node.publish_state()
        resp.success = True
        resp.message = json.dumps({"seed": seed, "interventions": self.sim.n_interventions})
        return resp

    def _on_evaluate(self, req, resp):
        from robot_stack.sim.tasks import all_tasks

        resp.success = bool(self.sim.is_success())
        poses = self.sim.kitchen_poses()  # once: this runs in the executor that also ticks the arm and cameras
        resp.message = json.dumps({
            # Ground truth of every task in the current state (reset-free practice asks about both directions).
            "task_success": {t.name: bool(t.is_success(poses)) for t in all_tasks()},
            "irreversible": self.sim.irreversible(),
            "success": resp.success,
            "expert_done": bool(self.expert.done),
            "steps": self.controller.n_executed - self._executed_at_reset,
            "language": self.sim.language,
            "objects": {k: [round(float(x), 4) for x in v[:3]] for k, v in self.sim.object_poses().items()},
        })
        return resp

    def _on_teleop_enable(self, req, resp):
        self.expert_enabled = bool(req.data)
        resp.success, resp.message = True, f"scripted expert {'enabled' if self.expert_enabled else 'disabled'}"
        return resp

    def _on_state(self, state) -> None:
        # Answer each new state like a person on a teleop device would: stamp = the observation's stamp.
        if not self.expert_enabled or self.expert.done:
            return
        action = self.expert.act(self.sim)
        self.pub_action.publish(conv.action_to_msg(self.arm.action_names, action, state.stamp_ns, EXPERT_SOURCE))


def build(cfg):
    from omegaconf import OmegaConf

    from robot_stack.arms.controller import ArmController
    from robot_stack.arms.safety import SafetyConfig
    from robot_stack.arms.sim_arm import SimArm
    from robot_stack.cameras.sim_camera import SimCamera
    from robot_stack.ros.arm_node import ArmNode
    from robot_stack.ros.camera_node import CameraNode
    from robot_stack.sim.env import SimConfig, TabletopSim

    rig = cfg.rig
    cams = dict(rig.cameras)
    sizes = {(int(c.height), int(c.width)) for c in cams.values()}
    if len(sizes) != 1 or len(next(iter(sizes))) != 2 or next(iter(sizes))[0] != next(iter(sizes))[1]:
        raise ValueError(f"the sim renders every camera at one square size; got {sorted(sizes)} "
                         "(set rig.cameras.<name>.height and width to one value)")
    size_px = next(iter(sizes))[0]
    sim = TabletopSim(SimConfig(image_size_px=size_px, cameras=tuple(cams), control_hz=float(rig.control_hz),
                                seed=int(cfg.seed), task=str(cfg.task.name), arm=sim_arm_of(rig),
                                reset_free=bool(cfg.practice.sim_reset_free)))
    if len(sim.joint_names) != int(rig.n_joints):
        raise ValueError(f"rig {rig.name}: n_joints={rig.n_joints} but the {sim.arm_spec.name} sim arm has "
                         f"{len(sim.joint_names)} joints; fix rig.n_joints (the store schema depends on it)")
    sim.reset(seed=int(cfg.seed))
    arm = SimArm(sim)
    controller = ArmController(arm, SafetyConfig.from_mapping(OmegaConf.to_container(rig.safety, resolve=True)),
                               start_enabled=bool(rig.get("start_enabled", True)))
    ns = str(rig.namespace)
    arm_node = ArmNode(controller, float(rig.control_hz), base_frame=f"{rig.robot}/base_link", namespace=ns)
    cameras = {name: SimCamera(sim, name, int(c.height), int(c.width)) for name, c in cams.items()}
    fov = {name: sim.camera_fov_y_deg(name) for name in cams} if hasattr(sim, "camera_fov_y_deg") else None
    camera_node = CameraNode(cameras, {n: float(c.fps_hz) for n, c in cams.items()}, namespace=ns, fov_y_deg=fov)
    control = SimControlNode(sim, arm, controller, arm_node, cfg.task, base_seed=int(cfg.seed) + 1, namespace=ns)
    arm_node.get_logger().info(
        f"sim rig up: {rig.robot} task={cfg.task.name} cameras={list(cams)} {size_px}px control={rig.control_hz} Hz "
        f"(started {time.strftime('%H:%M:%S')})")
    return [arm_node, camera_node, control]


def main(argv=None) -> int:
    from robot_stack.ros.node_main import run_nodes

    return run_nodes(build, argv, "sim_rig")


if __name__ == "__main__":
    raise SystemExit(main())
