"""TabletopSim: the simulated WidowX 250s rig (arm + cameras + cube + bowl) behind a small plain-Python API.

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
holds the arm still instead of letting it creep under contact loads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import mujoco
import numpy as np

from robot_stack.sim import rotations
from robot_stack.sim.tasks import get_task
from robot_stack.sim.widowx_model import (
    ARM_JOINT_NAMES,
    CAMERA_NAMES,
    FINGER_CLOSED_M,
    FINGER_OPEN_M,
    build_widowx_scene_xml,
)
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
# URDF <limit velocity> of every arm joint (rad/s): a target the IK puts further away is approached at
# this speed over several steps (e.g. a wrist flip near a singularity) instead of being jumped to.
MAX_JOINT_SPEED_RAD_S = np.pi
# Fraction of a control step over which the joint targets ramp (the rest lets the servos settle).
CTRL_RAMP_FRACTION = 0.6
# Physics steps after placing objects at reset so contacts settle before the first observation.
SETTLE_STEPS = 25
# Home: gripper pointing straight down 16 cm above the table, between the cube and the bowl regions.
HOME_EE_POS_M = (0.25, 0.0, 0.16)
HOME_IK_SEED_RAD = (0.0, 0.0, 0.5, 0.0, 1.0, 0.0)


@dataclass
class SimConfig:
    image_size_px: int = 128
    cameras: tuple[str, ...] = CAMERA_NAMES
    control_hz: float = 5.0
    seed: int = 0
    task: str = "put_cube_in_bowl"
    # End-effector target box (base frame, metres). z min keeps the finger tips (15.6 mm below the ee
    # point) just above the table.
    workspace_min_m: tuple[float, float, float] = (0.10, -0.35, 0.017)
    workspace_max_m: tuple[float, float, float] = (0.50, 0.35, 0.40)


class TabletopSim:
    """The MuJoCo WidowX 250s table-top scene (see module docstring for one control step)."""

    def __init__(self, config: SimConfig | None = None):
        self.config = config or SimConfig()
        cfg = self.config
        if cfg.control_hz <= 0:
            raise ValueError(f"control_hz must be positive, got {cfg.control_hz}")
        unknown = [c for c in cfg.cameras if c not in CAMERA_NAMES]
        if unknown:
            raise ValueError(f"unknown sim camera(s) {unknown}; known cameras: {', '.join(CAMERA_NAMES)}")
        self._task = get_task(cfg.task)
        self.model = mujoco.MjModel.from_xml_string(build_widowx_scene_xml(cfg.image_size_px))
        self.data = mujoco.MjData(self.model)
        self._ik_data = mujoco.MjData(self.model)  # scratch: IK never touches the simulated state
        m = self.model
        self.joint_names: tuple[str, ...] = ARM_JOINT_NAMES
        arm_joint_ids = [m.joint(n).id for n in ARM_JOINT_NAMES]
        self._arm_qadr = np.array([m.jnt_qposadr[j] for j in arm_joint_ids])
        self._arm_dofadr = np.array([m.jnt_dofadr[j] for j in arm_joint_ids])
        self._arm_lo_rad = m.jnt_range[arm_joint_ids, 0].copy()
        self._arm_hi_rad = m.jnt_range[arm_joint_ids, 1].copy()
        self._arm_act = np.array([m.actuator(n).id for n in ARM_JOINT_NAMES])
        self._gripper_act = m.actuator("gripper").id
        self._left_finger_qadr = m.jnt_qposadr[m.joint("left_finger").id]
        self._right_finger_qadr = m.jnt_qposadr[m.joint("right_finger").id]
        self._cube_qadr = m.jnt_qposadr[m.joint("cube").id]
        self._bowl_mocap = m.body_mocapid[m.body("bowl").id]
        self._ee_site = m.site("ee_gripper").id
        self._n_substeps = max(1, round(1.0 / (cfg.control_hz * m.opt.timestep)))
        self._n_ramp = max(1, int(CTRL_RAMP_FRACTION * self._n_substeps))
        self._max_joint_step_rad = MAX_JOINT_SPEED_RAD_S / cfg.control_hz
        self._workspace_min_m = np.asarray(cfg.workspace_min_m, dtype=np.float64)
        self._workspace_max_m = np.asarray(cfg.workspace_max_m, dtype=np.float64)
        self._renderers: dict[int, mujoco.Renderer] = {}
        self._home_q_rad, _, _ = self._solve_ik(
            np.asarray(HOME_EE_POS_M), rotations.top_down_mat(0.0), np.asarray(HOME_IK_SEED_RAD))
        self._rng = np.random.default_rng(cfg.seed)
        self._q_cmd_rad = self._home_q_rad.copy()
        self._target_pos_m = np.zeros(3)
        self._target_mat = np.eye(3)
        self.reset(cfg.seed)

    # ---------------------------------------------------------------- episode
    @property
    def task(self) -> str:
        """Name of the configured task (see robot_stack.sim.tasks)."""
        return self._task.name

    @property
    def language(self) -> str:
        return self._task.language

    @property
    def max_episode_steps(self) -> int:
        return self._task.max_steps

    def set_task(self, name: str) -> None:
        """Switch the task (instruction + success check) without touching the scene: reset-free practice."""
        self._task = get_task(name)

    def reset(self, seed: int | None = None) -> None:
        """Home the arm (gripper open) and place the objects from the task's initial-state distribution.

        With a seed the placement is reproducible; without one the sim's own generator continues.
        """
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        d.qpos[self._arm_qadr] = self._home_q_rad
        d.qpos[self._left_finger_qadr] = FINGER_OPEN_M
        d.qpos[self._right_finger_qadr] = -FINGER_OPEN_M
        d.ctrl[self._arm_act] = self._home_q_rad
        d.ctrl[self._gripper_act] = FINGER_OPEN_M
        layout = self._task.sample_layout(self._rng)
        d.qpos[self._cube_qadr:self._cube_qadr + 3] = layout.cube_pos_m
        d.qpos[self._cube_qadr + 3:self._cube_qadr + 7] = rotations.yaw_to_quat_wxyz(layout.cube_yaw_rad)
        d.mocap_pos[self._bowl_mocap] = [layout.bowl_xy_m[0], layout.bowl_xy_m[1], 0.0]
        d.mocap_quat[self._bowl_mocap] = [1.0, 0.0, 0.0, 0.0]
        mujoco.mj_forward(m, d)
        mujoco.mj_step(m, d, nstep=SETTLE_STEPS)
        d.time = 0.0
        self._q_cmd_rad = self._home_q_rad.copy()
        self._target_pos_m, self._target_mat = self._fk(self._q_cmd_rad)

    def is_success(self) -> bool:
        """Ground-truth success of the configured task in the current state."""
        poses = self.object_poses()
        return bool(self._task.is_success(poses["cube"][:3], poses["bowl"][:2]))

    @property
    def sim_time_s(self) -> float:
        return float(self.data.time)

    # ---------------------------------------------------------------- control
    def apply_ee_delta(self, action: np.ndarray) -> np.ndarray:
        """Execute one control step of an ee_delta action; return the action actually commanded.

        action: (7,) [dx, dy, dz (m), droll, dpitch, dyaw (rad, extrinsic about the base axes), gripper in
        [0, 1], 1 = open]. Returns float32 (7,): the target-pose delta after workspace clipping and IK
        (joint limits), as roll/pitch/yaw, and the clipped gripper command.
        """
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (EE_DELTA_DIM,) or not np.all(np.isfinite(a)):
            raise ValueError(f"ee_delta action must be {EE_DELTA_DIM} finite floats, got shape {a.shape}: {a}")
        old_pos_m, old_mat = self._target_pos_m, self._target_mat
        want_pos_m = np.clip(old_pos_m + a[:3], self._workspace_min_m, self._workspace_max_m)
        want_mat = rotations.rpy_to_mat(a[3:6]) @ old_mat
        q_new, pos_err_m, rot_err_rad = self._solve_ik(want_pos_m, want_mat, self._q_cmd_rad)
        if pos_err_m > 1e-3 or rot_err_rad > 1e-2:
            log.debug("IK did not reach the target (%.4f m, %.4f rad off); commanding the nearest pose",
                      pos_err_m, rot_err_rad)
        # Servo speed limit: scale the whole joint step (keeps its direction) so no joint exceeds it.
        dq = q_new - self._q_cmd_rad
        biggest = float(np.max(np.abs(dq)))
        if biggest > self._max_joint_step_rad:
            q_new = self._q_cmd_rad + dq * (self._max_joint_step_rad / biggest)
        self._target_pos_m, self._target_mat = self._fk(q_new)
        gripper = float(np.clip(a[GRIPPER_INDEX], 0.0, 1.0))
        self._step_physics(self._q_cmd_rad, q_new, gripper)
        self._q_cmd_rad = q_new
        executed = np.empty(EE_DELTA_DIM, dtype=np.float32)
        executed[:3] = self._target_pos_m - old_pos_m
        executed[3:6] = rotations.mat_to_rpy(self._target_mat @ old_mat.T)
        executed[GRIPPER_INDEX] = gripper
        return executed

    def _step_physics(self, q_from_rad: np.ndarray, q_to_rad: np.ndarray, gripper: float) -> None:
        m, d = self.model, self.data
        d.ctrl[self._gripper_act] = FINGER_CLOSED_M + gripper * (FINGER_OPEN_M - FINGER_CLOSED_M)
        # Ramping the servo targets keeps the motion smooth (a step target would fling a held cube).
        for i in range(1, self._n_ramp + 1):
            d.ctrl[self._arm_act] = q_from_rad + (i / self._n_ramp) * (q_to_rad - q_from_rad)
            mujoco.mj_step(m, d)
        mujoco.mj_step(m, d, nstep=self._n_substeps - self._n_ramp)

    # ---------------------------------------------------------------- kinematics
    def _fk(self, q_rad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ee point (3,) and orientation (3, 3) at arm joints q (6,), on the scratch data."""
        d = self._ik_data
        d.qpos[self._arm_qadr] = q_rad
        mujoco.mj_kinematics(self.model, d)
        return d.site_xpos[self._ee_site].copy(), d.site_xmat[self._ee_site].reshape(3, 3).copy()

    def _solve_ik(self, pos_m: np.ndarray, mat: np.ndarray, q_init_rad: np.ndarray
                  ) -> tuple[np.ndarray, float, float]:
        """Damped least squares from q_init (6,) to the ee pose; returns (q (6,), pos error m, rot error rad)."""
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
            dq = jac.T @ np.linalg.solve(jac @ jac.T + IK_DAMPING**2 * np.eye(6), err)
            biggest = np.max(np.abs(dq))
            if biggest > IK_MAX_JOINT_STEP_RAD:
                dq *= IK_MAX_JOINT_STEP_RAD / biggest
            q = np.clip(q + dq, self._arm_lo_rad, self._arm_hi_rad)
        pos_now, mat_now = self._fk(q)
        return (q, float(np.linalg.norm(pos_m - pos_now)),
                float(np.linalg.norm(rotations.mat_to_rotvec(mat @ mat_now.T))))

    # ---------------------------------------------------------------- observations
    def joint_positions(self) -> np.ndarray:
        """(6,) measured arm joint positions (rad), in `joint_names` order."""
        return self.data.qpos[self._arm_qadr].copy()

    def gripper_opening(self) -> float:
        """Measured finger opening in [0, 1], 1 = fully open (0.037 m per finger), 0 = closed (0.015 m)."""
        q = float(self.data.qpos[self._left_finger_qadr])
        return float(np.clip((q - FINGER_CLOSED_M) / (FINGER_OPEN_M - FINGER_CLOSED_M), 0.0, 1.0))

    def ee_pose(self) -> np.ndarray:
        """(7,) measured ee_gripper point xyz (m) + orientation quaternion xyzw, in the base frame."""
        quat_wxyz = np.zeros(4)
        mujoco.mju_mat2Quat(quat_wxyz, self.data.site_xmat[self._ee_site])
        return np.concatenate([self.data.site_xpos[self._ee_site], rotations.wxyz_to_xyzw(quat_wxyz)])

    def state(self) -> np.ndarray:
        """`observation.state` float32 (14,): joints (6), ee xyz (3), ee quat xyzw (4), gripper opening (1)."""
        return np.concatenate([self.joint_positions(), self.ee_pose(), [self.gripper_opening()]]).astype(np.float32)

    def object_poses(self) -> dict[str, np.ndarray]:
        """{"cube", "bowl"} -> (7,) xyz (m) + quaternion xyzw in the base frame."""
        d = self.data
        cube = d.qpos[self._cube_qadr:self._cube_qadr + 7]
        return {
            "cube": np.concatenate([cube[:3], rotations.wxyz_to_xyzw(cube[3:7])]),
            "bowl": np.concatenate([d.mocap_pos[self._bowl_mocap],
                                    rotations.wxyz_to_xyzw(d.mocap_quat[self._bowl_mocap])]),
        }

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
