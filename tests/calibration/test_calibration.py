"""Calibration recovered from MuJoCo renders of a ChArUco board at known poses (our own small MJCF scene).

Tolerances (128 px-wide synthetic images, no noise beyond rendering): focal length within 2 %, hand-eye
translation within 5 mm and rotation within 1 deg. A real rig must still confirm: print scale of the board,
detection under real lighting/blur, residuals on real arm poses.
"""

import datetime as dt
import os

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
cv2 = pytest.importorskip("cv2")
mujoco = pytest.importorskip("mujoco")

from robot_stack.arms import poses  # noqa: E402
from robot_stack.calibration import charuco, files, handeye  # noqa: E402

SPEC = charuco.BoardSpec(squares_x=5, squares_y=7, square_m=0.03, marker_m=0.022)
W, H, FOVY = 320, 240, 50.0
CAM_POS = np.array([0.47, 0.08, 0.55])
TARGET = np.array([0.35, 0.0, 0.17])
BOARD_OFFSET = np.eye(4)  # gripper -> board (unknown to the solver)
BOARD_OFFSET[:3, 3] = [0.0, 0.0, 0.05]


def _scene(tmp_path, camera_mode: str) -> str:
    png = tmp_path / "board.png"
    img = SPEC.image(px_per_square=100)
    cv2.imwrite(str(png), img)  # MuJoCo's texture v axis points up the face
    hx, hy = SPEC.squares_x * SPEC.square_m / 2, SPEC.squares_y * SPEC.square_m / 2
    if camera_mode == "fixed":
        fwd = TARGET - CAM_POS
        fwd /= np.linalg.norm(fwd)
        right = np.cross(fwd, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        up = np.cross(right, fwd)
        cam = '<camera name="cam" pos="{} {} {}" xyaxes="{} {} {} {} {} {}" fovy="{}"/>'.format(
            *CAM_POS, *right, *up, FOVY)
        wrist = ""
        board_body = f"""<body name="gripper" mocap="true"><body pos="0 0 0.05">
              <geom type="box" size="{hx} {hy} 0.001" material="board"/></body></body>"""
    else:
        cam = ""
        wrist = f'<camera name="cam" pos="0.02 0.01 0.0" xyaxes="0 -1 0 1 0 0" fovy="{FOVY}"/>'
        board_body = f"""<body name="gripper" mocap="true">{wrist}</body>
            <body pos="0.4 0 0"><geom type="box" size="{hx} {hy} 0.001" material="board"/></body>"""
    xml = f"""<mujoco>
      <visual><quality shadowsize="0"/><headlight ambient="0.9 0.9 0.9" diffuse="0.1 0.1 0.1" specular="0 0 0"/>
        <global offwidth="{W}" offheight="{H}"/></visual>
      <asset><texture name="board" type="2d" file="{png}"/>
        <material name="board" texture="board" texrepeat="1 1" texuniform="false" specular="0" shininess="0" emission="1"/></asset>
      <worldbody>{cam}{board_body}</worldbody></mujoco>"""
    return xml


def _cv_camera_pose(model, data) -> np.ndarray:
    cid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, "cam")
    t = np.eye(4)
    t[:3, :3] = data.cam_xmat[cid].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])  # MuJoCo cam (-z fwd, y up) -> OpenCV
    t[:3, 3] = data.cam_xpos[cid]
    return t


def _intrinsics() -> np.ndarray:
    f = 0.5 * H / np.tan(np.deg2rad(FOVY) / 2)
    return np.array([[f, 0, (W - 1) / 2], [0, f, (H - 1) / 2], [0, 0, 1.0]])


def _render_views(xml, gripper_poses):
    model = mujoco.MjModel.from_xml_string(xml)
    data = mujoco.MjData(model)
    renderer = mujoco.Renderer(model, H, W)
    images, cams = [], []
    for g in gripper_poses:
        data.mocap_pos[0] = g[:3, 3]
        q = poses.matrix_to_quat_xyzw(g[:3, :3])
        data.mocap_quat[0] = [q[3], q[0], q[1], q[2]]
        mujoco.mj_forward(model, data)
        renderer.update_scene(data, camera="cam")
        images.append(renderer.render().copy())
        cams.append(_cv_camera_pose(model, data))
    renderer.close()
    return images, cams


def _gripper_poses(center, n, rng, tilt_rad=0.35):
    out = []
    for _ in range(n):
        t = np.eye(4)
        t[:3, :3] = poses.euler_xyz_to_matrix(rng.uniform(-tilt_rad, tilt_rad, 3))
        t[:3, 3] = center + rng.uniform(-0.04, 0.04, 3)
        out.append(t)
    return out


@pytest.fixture(scope="module")
def eye_to_hand_views(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2h")
    rng = np.random.default_rng(0)
    gs = _gripper_poses(np.array([0.35, 0.0, 0.12]), 14, rng, tilt_rad=0.5)
    images, cams = _render_views(_scene(tmp, "fixed"), gs)
    return gs, images, cams


def test_board_is_detected_in_renders(eye_to_hand_views):
    _, images, _ = eye_to_hand_views
    found = [charuco.detect(SPEC, im) for im in images]
    assert sum(f is not None for f in found) >= 8


def test_intrinsics_from_charuco_views(eye_to_hand_views):
    _, images, _ = eye_to_hand_views
    res = charuco.calibrate_intrinsics(SPEC, images)
    f_true = _intrinsics()[0, 0]
    assert res["rms_px"] < 1.0
    assert abs(res["K"][0, 0] - f_true) / f_true < 0.02 and abs(res["K"][1, 1] - f_true) / f_true < 0.02


def test_eye_to_hand_recovers_camera_in_base(eye_to_hand_views):
    gs, images, cams = eye_to_hand_views
    k = _intrinsics()
    samples = [(g, charuco.board_pose(SPEC, im, k)) for g, im in zip(gs, images, strict=True)]
    samples = [(g, p[0]) for g, p in samples if p is not None]
    assert len(samples) >= 6
    x, res = handeye.calibrate("eye_to_hand", [s[0] for s in samples], [s[1] for s in samples])
    truth = cams[0]
    assert np.linalg.norm(x[:3, 3] - truth[:3, 3]) < 0.005, (x[:3, 3], truth[:3, 3])
    assert np.degrees(poses.rotation_angle_rad(x[:3, :3] @ truth[:3, :3].T)) < 1.0
    assert res["n_samples"] == len(samples) and res["translation_rms_mm"] < 5.0


def test_eye_in_hand_recovers_wrist_camera(tmp_path):
    rng = np.random.default_rng(1)
    center = np.array([0.4, 0.0, 0.30])
    gs = []
    for _ in range(10):
        t = np.eye(4)
        # gripper pointing down (camera looks at -z of the world through its xyaxes), small tilts
        t[:3, :3] = poses.euler_xyz_to_matrix(rng.uniform(-0.3, 0.3, 3))
        t[:3, 3] = center + rng.uniform(-0.04, 0.04, 3)
        gs.append(t)
    images, cams = _render_views(_scene(tmp_path, "wrist"), gs)
    k = _intrinsics()
    samples = [(g, c, charuco.board_pose(SPEC, im, k)) for g, c, im in zip(gs, cams, images, strict=True)]
    samples = [(g, c, p[0]) for g, c, p in samples if p is not None]
    assert len(samples) >= 6
    x, res = handeye.calibrate("eye_in_hand", [s[0] for s in samples], [s[2] for s in samples])
    truth = np.linalg.inv(samples[0][0]) @ samples[0][1]  # T_gripper_camera from the scene
    assert np.linalg.norm(x[:3, 3] - truth[:3, 3]) < 0.005
    assert np.degrees(poses.rotation_angle_rad(x[:3, :3] @ truth[:3, :3].T)) < 1.0
    assert res["translation_rms_mm"] < 5.0


def test_solver_on_exact_synthetic_motions_and_degenerate_input():
    rng = np.random.default_rng(2)
    x_true = np.eye(4)
    x_true[:3, :3] = poses.euler_xyz_to_matrix([0.3, -0.2, 1.0])
    x_true[:3, 3] = [0.5, -0.1, 0.4]
    y = np.eye(4)
    y[:3, 3] = [0.01, 0.02, 0.05]
    gs = []
    for _ in range(6):
        g = np.eye(4)
        g[:3, :3] = poses.euler_xyz_to_matrix(rng.uniform(-0.6, 0.6, 3))
        g[:3, 3] = rng.uniform(0.2, 0.4, 3)
        gs.append(g)
    cs = [np.linalg.inv(x_true) @ g @ y for g in gs]
    x, res = handeye.calibrate("eye_to_hand", gs, cs)
    np.testing.assert_allclose(x, x_true, atol=1e-9)
    assert res["translation_max_mm"] < 1e-6
    with pytest.raises(ValueError, match="two different axes"):
        handeye.calibrate("eye_to_hand", [np.eye(4)] * 3, [np.eye(4)] * 3)


def test_calibration_files_round_trip_and_staleness(tmp_path, caplog):
    path = files.save_device(tmp_path, "front", {"serial": "123", "T_base_camera": np.eye(4)},
                             residuals={"translation_rms_mm": 1.5}, today=dt.date(2026, 1, 1))
    assert path.name == "front.yaml"
    files.save_device(tmp_path, "front", {"intrinsics": {"fx": 600.0}}, today=dt.date(2026, 1, 2))
    data = files.load_device(tmp_path, "front", today=dt.date(2026, 1, 5))
    assert data["serial"] == "123" and data["intrinsics"]["fx"] == 600.0 and data["date"] == "2026-01-02"
    assert not any("days old" in r.message for r in caplog.records)
    files.load_device(tmp_path, "front", max_age_days=30, today=dt.date(2026, 3, 1))
    assert any("days old" in r.message for r in caplog.records)
    with pytest.raises(files.CalibrationError, match="calibration/examples"):
        files.load_device(tmp_path, "wrist")
    (tmp_path / "wrist.yaml").write_text("serial: FILL_ME\n")
    with pytest.raises(files.CalibrationError, match=r"fill in the site values for \['serial'\]"):
        files.load_device(tmp_path, "wrist")
