"""TabletopSim: a simulated arm (WidowX 250s or Franka Panda, `SimConfig.arm`) on the toy-kitchen table
(robot_stack.sim.kitchen) behind a small plain-Python API.

One control step (`apply_ee_delta`, 1 / control_hz seconds):

    action (7,) ee_delta ──► target pose += delta, clipped to the workspace box
                                   │
                                   ▼
              damped-least-squares IK on a scratch MjData (6 arm joints, position + orientation,
              joint limits clamped) ──► joint targets, step limited to the servo speed (pi rad/s)
              ──► target pose := FK(joint targets)
                                   │                      (an unreachable target never winds up)
                                   ▼
              position servos: ramp ctrl old -> new over the first 60 % of the step, then hold;
              gripper servo to the absolute opening ──► mj_step x (1 / control_hz / timestep)
                                   │
                                   ▼
              returns the delta actually commanded (achieved target delta + gripper), float32 (7,)

The commanded target pose is kept between steps (not re-read from the measured pose), so a zero action
holds the arm still instead of letting it creep under contact loads. For a redundant arm (Panda, 7 joints) the
IK adds a small null-space pull towards the home posture so the elbow does not drift over long runs.

Reset-free mode (`SimConfig.reset_free`): `reset()` only homes the arm; the objects stay where the robot left
them. Only `intervene()` (a person or test putting the scene back, counted in `n_interventions`) re-places
them. `irreversible()` names objects that fell off the table or left the arm's reach.

Randomisation (all off by default, seeded by the reset seed, drawn after the layout so a layout never
depends on it): object/table colours, light intensity, front-camera pose jitter, static distractors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import mujoco
import numpy as np

from robot_stack.sim import kitchen, rotations
from robot_stack.sim.robots import get_arm_spec
from robot_stack.sim.tasks import get_task
from robot_stack.sim.widowx_model import CAMERA_NAMES
from robot_stack.types import EE_DELTA_DIM, GRIPPER_INDEX

log = logging.getLogger(__name__)

# IK: rotation errors (rad) are weighted against position errors (m) so that 1 cm ~ 0.1 rad, the
# per-step scale of the action space; lambda damps the solve near singularities (wrist_angle ~ 0 aligns
# forearm_roll and wrist_rotate).
IK_ROT_WEIGHT_M_PER_RAD = 0.1
IK_DAMPING = 1e-3
IK_MAX_ITERS = 50
IK_POS_TOL_M = 1e-5
IK_ROT_TOL_RAD = 1e-4
IK_MAX_JOINT_STEP_RAD = 0.3
# Null-space gain (per IK iteration) pulling a redundant arm towards its home posture.
IK_NULLSPACE_GAIN = 0.05
# Fraction of a control step over which the joint targets ramp (the rest lets the servos settle).
CTRL_RAMP_FRACTION = 0.6
# Physics steps after placing objects at reset so contacts settle before the first observation.
SETTLE_STEPS = 25
# Home (kitchen frame): gripper pointing straight down 16 cm above the table, between the cube and the bowl.
HOME_EE_POS_M = (0.25, 0.0, 0.16)
# Irreversible states: an object below this height fell off the table; beyond the workspace box (xy) by
# this margin the arm cannot reach it any more.
OFF_TABLE_Z_M = -0.05
CONTACT_CHECK_SUBSTEPS = 4  # the arm-contact flag of a control step samples every 4th physics substep
OUT_OF_REACH_MARGIN_M = 0.03
# Length of environment_state(): per graspable object xyz + sin/cos(4 yaw) (5), per container xy (2).
ENV_STATE_DIM = 5 * len(kitchen.GRASPABLE) + 2 * len(kitchen.CONTAINERS)  # 16


@dataclass
class SimConfig:
    image_size_px: int = 128
    cameras: tuple[str, ...] = CAMERA_NAMES
    control_hz: float = 5.0
    seed: int = 0
    task: str = "put_cube_in_bowl"
    arm: str = "widowx"  # "widowx" | "panda" (robot_stack.sim.robots)
    # End-effector target box (base frame, metres); None = the arm's own (ArmSpec.workspace_*). For the
    # WidowX the z min keeps the finger tips (15.6 mm below the ee point) just above the table.
    workspace_min_m: tuple[float, float, float] | None = None
    workspace_max_m: tuple[float, float, float] | None = None
    reset_free: bool = False
    # Randomisation knobs (0 = off): colour jitter (+- per RGB channel), light intensity jitter (+- fraction),
    # front-camera position jitter (+- m per axis) and how many static distractors stand on the table.
    color_jitter: float = 0.0
    light_jitter: float = 0.0
    camera_jitter_m: float = 0.0
    n_distractors: int = 0


class TabletopSim:
    """The MuJoCo kitchen table-top scene with one arm (see module docstring for one control step)."""

    def __init__(self, config: SimConfig | None = None):
        cfg = config or SimConfig()
        spec = get_arm_spec(cfg.arm)
        self.arm_spec = spec
        cfg = replace(cfg, workspace_min_m=tuple(cfg.workspace_min_m or spec.workspace_min_m),
                      workspace_max_m=tuple(cfg.workspace_max_m or spec.workspace_max_m))
        self.config = cfg
        if cfg.control_hz <= 0:
            raise ValueError(f"control_hz must be positive, got {cfg.control_hz}")
        unknown = [c for c in cfg.cameras if c not in CAMERA_NAMES]
        if unknown:
            raise ValueError(f"unknown sim camera(s) {unknown}; known cameras: {', '.join(CAMERA_NAMES)}")
        if not 0 <= cfg.n_distractors <= kitchen.MAX_DISTRACTORS:
            raise ValueError(f"n_distractors must be 0..{kitchen.MAX_DISTRACTORS}, got {cfg.n_distractors}")
        self._task = get_task(cfg.task)
        self.model = mujoco.MjModel.from_xml_string(spec.build_xml(cfg.image_size_px))
        self.data = mujoco.MjData(self.model)
        self._ik_data = mujoco.MjData(self.model)  # scratch: IK never touches the simulated state
        m = self.model
        self.joint_names: tuple[str, ...] = spec.joint_names
        arm_joint_ids = [m.joint(n).id for n in spec.joint_names]
        self._arm_qadr = np.array([m.jnt_qposadr[j] for j in arm_joint_ids])
        self._arm_dofadr = np.array([m.jnt_dofadr[j] for j in arm_joint_ids])
        self._arm_lo_rad = m.jnt_range[arm_joint_ids, 0].copy()
        self._arm_hi_rad = m.jnt_range[arm_joint_ids, 1].copy()
        self._arm_act = np.array([m.actuator(n).id for n in spec.actuator_names])
        self._gripper_act = m.actuator(spec.gripper_actuator).id
        self._gripper_qadr = m.jnt_qposadr[m.joint(spec.gripper_joint).id]
        self._gripper_reset = [(m.jnt_qposadr[m.joint(j).id], q) for j, q in spec.gripper_reset_qpos]
        self._free_qadr = {n: m.jnt_qposadr[m.joint(n).id] for n in kitchen.GRASPABLE}
        self._mocap = {n: m.body_mocapid[m.body(n).id] for n in kitchen.CONTAINERS}
        self._distractor_mocap = [m.body_mocapid[m.body(f"distractor{i}").id] for i in range(kitchen.MAX_DISTRACTORS)]
        self._cube_qadr = self._free_qadr["cube"]
        self._bowl_mocap = self._mocap["bowl"]
        self._ee_site = m.site(spec.ee_site).id
        self._origin_m = np.array([*spec.kitchen_origin_xy_m, 0.0])
        self._n_substeps = max(1, round(1.0 / (cfg.control_hz * m.opt.timestep)))
        self._n_ramp = max(1, int(CTRL_RAMP_FRACTION * self._n_substeps))
        self._max_joint_step_rad = np.asarray(spec.max_joint_speed_rad_s) / cfg.control_hz
        self._workspace_min_m = np.asarray(cfg.workspace_min_m, dtype=np.float64)
        self._workspace_max_m = np.asarray(cfg.workspace_max_m, dtype=np.float64)
        self._renderers: dict[int, mujoco.Renderer] = {}
        # Defaults the randomisation perturbs (restored first at every reset, so it never accumulates).
        self._rgba0 = m.geom_rgba.copy()
        self._light_diffuse0 = m.light_diffuse.copy()
        self._front_cam = m.camera("front").id
        self._front_cam_pos0 = m.cam_pos[self._front_cam].copy()
        self._rest_q_rad = np.asarray(spec.home_ik_seed_rad, dtype=np.float64)
        self._home_q_rad, _, _ = self._solve_ik(
            np.asarray(HOME_EE_POS_M) + self._origin_m, rotations.top_down_mat(0.0), self._rest_q_rad)
        self._rest_q_rad = self._home_q_rad.copy()
        self._rng = np.random.default_rng(cfg.seed)
        self._q_cmd_rad = self._home_q_rad.copy()
        self._contact_in_step = False
        self._target_pos_m = np.zeros(3)
        self._target_mat = np.eye(3)
        self.n_interventions = 0
        self._placed = False
        self.reset(cfg.seed)

    # ---------------------------------------------------------------- episode
    @property
    def task(self) -> str:
        """Name of the configured task (see robot_stack.sim.tasks)."""
        return self._task.name

    @property
    def task_spec(self):
        """The configured robot_stack.sim.tasks.Task (phase, reverse task, held-out flag, ...)."""
        return self._task

    @property
    def language(self) -> str:
        return self._task.language

    @property
    def max_episode_steps(self) -> int:
        return self._task.max_steps

    @property
    def kitchen_origin_m(self) -> np.ndarray:
        """(3,) the kitchen frame's origin in the arm base frame (tasks and layouts use the kitchen frame)."""
        return self._origin_m.copy()

    def set_task(self, name: str) -> None:
        """Switch the task (instruction + success check) without touching the scene: reset-free practice."""
        self._task = get_task(name)

    def reset(self, seed: int | None = None) -> None:
        """Home the arm (gripper open) and, unless reset-free, place the objects from the task's distribution.

        With a seed the placement is reproducible; without one the sim's own generator continues. In reset-free
        mode the objects stay where they are (placed once at construction; `intervene()` re-places them).
        """
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        if self.config.reset_free and self._placed:
            self._home_arm()
            return
        self._place_scene()

    def intervene(self, seed: int | None = None) -> None:
        """A person resets the scene (objects from the task's distribution, arm home); counted in n_interventions."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.n_interventions += 1
        self._place_scene()

    def _place_scene(self) -> None:
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        layout = self._task.sample_layout(self._rng)
        for name, adr in self._free_qadr.items():
            x, y, z, yaw = layout.poses[name]
            d.qpos[adr:adr + 3] = np.array([x, y, z]) + self._origin_m
            d.qpos[adr + 3:adr + 7] = rotations.yaw_to_quat_wxyz(yaw)
        for name, mid in self._mocap.items():
            d.mocap_pos[mid] = np.array([*layout.poses[name][:2], 0.0]) + self._origin_m
            d.mocap_quat[mid] = [1.0, 0.0, 0.0, 0.0]
        self._randomize()
        self._placed = True
        self._home_arm(settle=True)

    def _home_arm(self, settle: bool = False) -> None:
        m, d = self.model, self.data
        d.qpos[self._arm_qadr] = self._home_q_rad
        d.qvel[self._arm_dofadr] = 0.0
        for adr, q in self._gripper_reset:
            d.qpos[adr] = q
        d.ctrl[self._arm_act] = self._home_q_rad
        d.ctrl[self._gripper_act] = self.arm_spec.gripper_ctrl_open
        mujoco.mj_forward(m, d)
        if settle:
            mujoco.mj_step(m, d, nstep=SETTLE_STEPS)
        d.time = 0.0
        self._q_cmd_rad = self._home_q_rad.copy()
        self._contact_in_step = False
        self._target_pos_m, self._target_mat = self._fk(self._q_cmd_rad)

    def arm_in_contact(self) -> bool:
        """Whether any arm or gripper geom touches something (the table, an object) now: the measured pose then
        also answers to contact forces, not only to the command (the safety meter reports such steps apart)."""
        m, d = self.model, self.data
        if d.ncon == 0:
            return False
        root = m.body_rootid[m.site_bodyid[self._ee_site]]
        on_arm = m.body_rootid[m.geom_bodyid[d.contact.geom[: d.ncon]]] == root  # (ncon, 2)
        # The arm touches something else (self-contacts inside the gripper do not count).
        return bool(np.any(on_arm[:, 0] != on_arm[:, 1]))

    def arm_contacted_in_last_step(self) -> bool:
        """Whether the arm touched anything at any physics substep of the last control step. A touch that
        starts and ends inside one step (a finger pad striking the plate) is invisible to `arm_in_contact`
        before and after, yet its impulse can fling the arm several cm (seen with MuJoCo 4.0.1)."""
        return self._contact_in_step

    def place_arm(self, q_rad: np.ndarray) -> None:
        """Put the arm at joints q (n_joints,) at rest, as a person moving it by hand would (tests of the safety
        layer: a start outside the box, a singular wrist). The objects stay where they are."""
        m, d = self.model, self.data
        q = np.clip(np.asarray(q_rad, dtype=np.float64), self._arm_lo_rad, self._arm_hi_rad)
        d.qpos[self._arm_qadr] = q
        d.qvel[self._arm_dofadr] = 0.0
        d.ctrl[self._arm_act] = q
        mujoco.mj_forward(m, d)
        self._q_cmd_rad = q.copy()
        self._contact_in_step = self.arm_in_contact()
        self._target_pos_m, self._target_mat = self._fk(q)

    def _randomize(self) -> None:
        """Colours, light, camera pose and distractors from the sim's generator (after the layout draw)."""
        m, cfg, rng = self.model, self.config, self._rng
        m.geom_rgba[:] = self._rgba0
        m.light_diffuse[:] = self._light_diffuse0
        m.cam_pos[self._front_cam] = self._front_cam_pos0
        if cfg.color_jitter > 0:
            for name in (*kitchen.OBJECT_NAMES, "table"):
                body_or_geom = [g for g in range(m.ngeom)
                                if m.geom_bodyid[g] == m.body(name).id] if name != "table" else [m.geom("table").id]
                delta = rng.uniform(-cfg.color_jitter, cfg.color_jitter, size=3)
                for g in body_or_geom:
                    m.geom_rgba[g, :3] = np.clip(self._rgba0[g, :3] + delta, 0.0, 1.0)
        if cfg.light_jitter > 0:
            m.light_diffuse[:] = np.clip(self._light_diffuse0 * (1 + rng.uniform(-cfg.light_jitter, cfg.light_jitter)),
                                         0.0, 1.0)
        if cfg.camera_jitter_m > 0:
            m.cam_pos[self._front_cam] = self._front_cam_pos0 + rng.uniform(-cfg.camera_jitter_m, cfg.camera_jitter_m, 3)
        spots = rng.permutation(len(kitchen.DISTRACTOR_SPOTS_XY_M)) if cfg.n_distractors else []
        for i, mid in enumerate(self._distractor_mocap):
            if i < cfg.n_distractors:
                xy = np.asarray(kitchen.DISTRACTOR_SPOTS_XY_M[spots[i]]) + rng.uniform(-0.02, 0.02, 2)
                self.data.mocap_pos[mid] = np.array([*xy, 0.0]) + self._origin_m
            else:
                self.data.mocap_pos[mid] = [0.0, 0.0, kitchen.DISTRACTOR_PARK_Z_M]

    def kitchen_poses(self) -> dict[str, np.ndarray]:
        """object_poses() in the kitchen frame (what tasks and the expert reason in)."""
        return {n: np.concatenate([p[:3] - self._origin_m, p[3:]]) for n, p in self.object_poses().items()}

    def is_success(self) -> bool:
        """Ground-truth success of the configured task in the current state."""
        return bool(self._task.is_success(self.kitchen_poses()))

    def task_success(self, name: str) -> bool:
        """Ground-truth success of any task (not only the configured one) in the current state: reset-free practice
        asks whether a forward attempt reached its goal and whether the scene is back at its start."""
        return bool(get_task(name).is_success(self.kitchen_poses()))

    def irreversible(self) -> list[str]:
        """Objects the robot can no longer recover: off the table, or outside the reachable box. [] if none."""
        problems = []
        lo, hi = self._workspace_min_m[:2], self._workspace_max_m[:2]
        for name, pose in self.object_poses().items():
            if name not in kitchen.GRASPABLE:
                continue
            if pose[2] < OFF_TABLE_Z_M:
                problems.append(f"{name} fell off the table (z {pose[2]:.2f} m)")
            elif np.any(pose[:2] < lo - OUT_OF_REACH_MARGIN_M) or np.any(pose[:2] > hi + OUT_OF_REACH_MARGIN_M):
                problems.append(f"{name} is out of reach at xy ({pose[0]:.2f}, {pose[1]:.2f}) m")
        return problems

    @property
    def sim_time_s(self) -> float:
        return float(self.data.time)

    # ---------------------------------------------------------------- control
    def apply_ee_delta(self, action: np.ndarray) -> np.ndarray:
        """Execute one control step of an ee_delta action; return the action actually commanded.

        action: (7,) [dx, dy, dz (m), droll, dpitch, dyaw (rad, extrinsic about the base axes), gripper in
        [0, 1], 1 = open]. Returns float32 (7,): the target-pose delta after workspace clipping and IK
        (joint limits), as roll/pitch/yaw, and the clipped gripper command.
        = `command_joints(plan_ee_delta(action), action[6])`; the rig's SimArm checks the plan in between.
        """
        a = np.asarray(action, dtype=np.float64)
        return self.command_joints(self.plan_ee_delta(a), float(a[GRIPPER_INDEX]))

    def plan_ee_delta(self, action: np.ndarray) -> np.ndarray:
        """The joint command (n_joints,) one ee_delta step would send (IK + servo speed limit); changes nothing."""
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (EE_DELTA_DIM,) or not np.all(np.isfinite(a)):
            raise ValueError(f"ee_delta action must be {EE_DELTA_DIM} finite floats, got shape {a.shape}: {a}")
        want_pos_m = np.clip(self._target_pos_m + a[:3], self._workspace_min_m, self._workspace_max_m)
        want_mat = rotations.rpy_to_mat(a[3:6]) @ self._target_mat
        q_new, pos_err_m, rot_err_rad = self._solve_ik(want_pos_m, want_mat, self._q_cmd_rad)
        if pos_err_m > 1e-3 or rot_err_rad > 1e-2:
            log.debug("IK did not reach the target (%.4f m, %.4f rad off); commanding the nearest pose",
                      pos_err_m, rot_err_rad)
        # Servo speed limit: scale the whole joint step (keeps its direction) so no joint exceeds its limit.
        dq = q_new - self._q_cmd_rad
        worst = float(np.max(np.abs(dq) / self._max_joint_step_rad))
        if worst > 1.0:
            q_new = self._q_cmd_rad + dq / worst
        return q_new

    def command_joints(self, q_new_rad: np.ndarray, gripper: float) -> np.ndarray:
        """Send one joint command (n_joints,) + gripper for one control step; return the executed ee_delta (7,)."""
        q_new = np.clip(np.asarray(q_new_rad, dtype=np.float64), self._arm_lo_rad, self._arm_hi_rad)
        old_pos_m, old_mat = self._target_pos_m, self._target_mat
        self._target_pos_m, self._target_mat = self._fk(q_new)
        gripper = float(np.clip(gripper, 0.0, 1.0))
        self._step_physics(self._q_cmd_rad, q_new, gripper)
        self._q_cmd_rad = q_new
        executed = np.empty(EE_DELTA_DIM, dtype=np.float32)
        executed[:3] = self._target_pos_m - old_pos_m
        executed[3:6] = rotations.mat_to_rpy(self._target_mat @ old_mat.T)
        executed[GRIPPER_INDEX] = gripper
        return executed

    def commanded_joints(self) -> np.ndarray:
        """The joint command (n_joints,) the servos are tracking now."""
        return self._q_cmd_rad.copy()

    def fk(self, q_rad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forward kinematics: ee point (3,) and orientation (3, 3) at arm joints q (n_joints,)."""
        return self._fk(np.asarray(q_rad, dtype=np.float64))

    def _step_physics(self, q_from_rad: np.ndarray, q_to_rad: np.ndarray, gripper: float) -> None:
        m, d = self.model, self.data
        spec = self.arm_spec
        d.ctrl[self._gripper_act] = spec.gripper_ctrl_closed + gripper * (spec.gripper_ctrl_open - spec.gripper_ctrl_closed)
        # Ramping the servo targets keeps the motion smooth (a step target would fling a held cube).
        # Contact is sampled every CONTACT_CHECK_SUBSTEPS substeps (a strike that flings the arm lasts longer than
        # that); checking every substep cost 1.5 ms per control step, 40 % of the physics.
        touched = False
        for i in range(1, self._n_ramp + 1):
            d.ctrl[self._arm_act] = q_from_rad + (i / self._n_ramp) * (q_to_rad - q_from_rad)
            mujoco.mj_step(m, d)
            if not touched and i % CONTACT_CHECK_SUBSTEPS == 0:
                touched = self.arm_in_contact()
        left = self._n_substeps - self._n_ramp
        while left > 0:
            n = min(CONTACT_CHECK_SUBSTEPS, left)
            mujoco.mj_step(m, d, nstep=n)
            left -= n
            if not touched:
                touched = self.arm_in_contact()
        self._contact_in_step = touched or self.arm_in_contact()
        # mj_step leaves site poses at the last substep's pre-integration qpos: recompute them so the measured
        # ee pose is exactly FK of the measured joints (what the safety checks compare against).
        mujoco.mj_kinematics(m, d)

    # ---------------------------------------------------------------- kinematics
    def _fk(self, q_rad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ee point (3,) and orientation (3, 3) at arm joints q (n_joints,), on the scratch data."""
        d = self._ik_data
        d.qpos[self._arm_qadr] = q_rad
        mujoco.mj_kinematics(self.model, d)
        return d.site_xpos[self._ee_site].copy(), d.site_xmat[self._ee_site].reshape(3, 3).copy()

    def _solve_ik(self, pos_m: np.ndarray, mat: np.ndarray, q_init_rad: np.ndarray
                  ) -> tuple[np.ndarray, float, float]:
        """Damped least squares from q_init (n,) to the ee pose; returns (q (n,), pos error m, rot error rad).

        With more than 6 joints a null-space step pulls towards the rest posture (keeps the elbow in place).
        """
        m, d = self.model, self._ik_data
        jacp = np.zeros((3, m.nv))
        jacr = np.zeros((3, m.nv))
        q = np.clip(np.asarray(q_init_rad, dtype=np.float64), self._arm_lo_rad, self._arm_hi_rad)
        w = IK_ROT_WEIGHT_M_PER_RAD
        for _ in range(IK_MAX_ITERS):
            d.qpos[self._arm_qadr] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)  # mj_jacSite needs the com-based quantities
            pos_err = pos_m - d.site_xpos[self._ee_site]
            rot_err = rotations.mat_to_rotvec(mat @ d.site_xmat[self._ee_site].reshape(3, 3).T)
            if np.linalg.norm(pos_err) < IK_POS_TOL_M and np.linalg.norm(rot_err) < IK_ROT_TOL_RAD:
                break
            mujoco.mj_jacSite(m, d, jacp, jacr, self._ee_site)
            jac = np.vstack([jacp[:, self._arm_dofadr], w * jacr[:, self._arm_dofadr]])
            err = np.concatenate([pos_err, w * rot_err])
            jjt = jac @ jac.T + IK_DAMPING**2 * np.eye(6)
            dq = jac.T @ np.linalg.solve(jjt, err)
            if len(q) > 6:
                pinv = jac.T @ np.linalg.inv(jjt)
                dq += (np.eye(len(q)) - pinv @ jac) @ (IK_NULLSPACE_GAIN * (self._rest_q_rad - q))
            biggest = np.max(np.abs(dq))
            if biggest > IK_MAX_JOINT_STEP_RAD:
                dq *= IK_MAX_JOINT_STEP_RAD / biggest
            q = np.clip(q + dq, self._arm_lo_rad, self._arm_hi_rad)
        pos_now, mat_now = self._fk(q)
        return (q, float(np.linalg.norm(pos_m - pos_now)),
                float(np.linalg.norm(rotations.mat_to_rotvec(mat @ mat_now.T))))

    # ---------------------------------------------------------------- observations
    def joint_positions(self) -> np.ndarray:
        """(n_joints,) measured arm joint positions (rad), in `joint_names` order."""
        return self.data.qpos[self._arm_qadr].copy()

    def gripper_opening(self) -> float:
        """Measured opening in [0, 1], 1 = fully open (WidowX: 0.037 m per finger, 0 = 0.015 m; Panda: 2F-85 driver)."""
        spec = self.arm_spec
        q = float(self.data.qpos[self._gripper_qadr])
        return float(np.clip((q - spec.gripper_q_closed) / (spec.gripper_q_open - spec.gripper_q_closed), 0.0, 1.0))

    def ee_pose(self) -> np.ndarray:
        """(7,) measured ee_gripper point xyz (m) + orientation quaternion xyzw, in the base frame."""
        quat_wxyz = np.zeros(4)
        mujoco.mju_mat2Quat(quat_wxyz, self.data.site_xmat[self._ee_site])
        return np.concatenate([self.data.site_xpos[self._ee_site], rotations.wxyz_to_xyzw(quat_wxyz)])

    def state(self) -> np.ndarray:
        """`observation.state` float32 (n_joints + 8,): joints, ee xyz (3), ee quat xyzw (4), gripper opening (1).

        14 for the WidowX (6 joints), 15 for the Panda (7).
        """
        return np.concatenate([self.joint_positions(), self.ee_pose(), [self.gripper_opening()]]).astype(np.float32)

    def object_poses(self) -> dict[str, np.ndarray]:
        """{"cube", "block", "bowl", "pot", "plate"} -> (7,) xyz (m) + quaternion xyzw in the arm base frame."""
        d = self.data
        out = {}
        for name, adr in self._free_qadr.items():
            q = d.qpos[adr:adr + 7]
            out[name] = np.concatenate([q[:3], rotations.wxyz_to_xyzw(q[3:7])])
        for name, mid in self._mocap.items():
            out[name] = np.concatenate([d.mocap_pos[mid], rotations.wxyz_to_xyzw(d.mocap_quat[mid])])
        return out

    def environment_state(self) -> np.ndarray:
        """`observation.environment_state` float32 (ENV_STATE_DIM = 16,): privileged object state.

        Layout, everything relative to the measured end-effector point (ee_pose()[:3]), base frame, metres:
            [0:3]   cube  xyz (object centre - ee point)
            [3:5]   cube  sin(4 yaw), cos(4 yaw)
            [5:8]   block xyz (object centre - ee point)
            [8:10]  block sin(4 yaw), cos(4 yaw)
            [10:12] bowl  xy (centre - ee point)
            [12:14] pot   xy
            [14:16] plate xy
        A cube's yaw is only defined modulo 90 deg, hence 4 yaw (rotations.cube_yaw_rad: the yaw of its
        flattest body axis, so a cube tipped onto another face reads the same). Relative to the ee so a policy
        need not learn the subtraction; a real rig computes the same from tracked poses (e.g. AprilTags) and
        the measured ee pose.
        """
        poses = self.object_poses()
        ee_m = self.ee_pose()[:3]
        out = []
        for name in kitchen.GRASPABLE:
            p = poses[name]
            yaw4 = 4.0 * rotations.cube_yaw_rad(p[3:7])
            out.extend([*(p[:3] - ee_m), np.sin(yaw4), np.cos(yaw4)])
        for name in kitchen.CONTAINERS:
            out.extend(poses[name][:2] - ee_m[:2])
        return np.asarray(out, dtype=np.float32)

    # ---------------------------------------------------------------- rendering
    def camera_fov_y_deg(self, camera: str) -> float:
        return float(self.model.cam_fovy[self._camera_id(camera)])

    def render(self, camera: str, size_px: int | None = None) -> np.ndarray:
        """uint8 (H, W, 3) RGB image from a scene camera; square, `config.image_size_px` unless size_px."""
        cam_id = self._camera_id(camera)
        size = int(size_px or self.config.image_size_px)
        renderer = self._renderers.get(size)
        if renderer is None:
            renderer = mujoco.Renderer(self.model, size, size)
            # Shadows and reflections cost ~10x on a CPU renderer and add nothing the policies need.
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = False
            self._renderers[size] = renderer
        renderer.update_scene(self.data, camera=cam_id)
        return renderer.render()

    def _camera_id(self, camera: str) -> int:
        if camera not in CAMERA_NAMES:
            raise ValueError(f"unknown sim camera {camera!r}; known cameras: {', '.join(CAMERA_NAMES)}")
        return self.model.camera(camera).id

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
