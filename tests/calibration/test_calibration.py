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


# -- capture from a live stream: views, workspace, CLI wiring ---------------------------------------------------

def test_intrinsics_views_keep_distinct_views_and_calibrate(eye_to_hand_views):
    from robot_stack.calibration.views import IntrinsicsViews

    _, images, _ = eye_to_hand_views
    views = IntrinsicsViews(SPEC, n_views=10, min_move_px=5.0)
    kept = [views.offer(im) for im in images]
    assert not views.offer(images[int(np.flatnonzero(kept)[0])])  # the same view again adds nothing
    assert sum(kept) >= 6
    fields, residuals = views.finish()
    f_true = _intrinsics()[0, 0]
    k = np.array(fields["intrinsics"]["K"])
    assert abs(k[0, 0] - f_true) / f_true < 0.02 and residuals["rms_px"] < 1.0
    assert (fields["intrinsics"]["width"], fields["intrinsics"]["height"]) == (W, H)


def test_intrinsics_views_refuse_too_few_views():
    from robot_stack.calibration.views import IntrinsicsViews

    views = IntrinsicsViews(SPEC, n_views=5)
    assert not views.offer(np.zeros((H, W, 3), np.uint8))
    with pytest.raises(files.CalibrationError, match="tilt the board"):
        views.finish()


def test_handeye_views_skip_repeated_poses_and_recover_camera(eye_to_hand_views):
    from robot_stack.calibration.views import HandEyeViews

    gs, images, cams = eye_to_hand_views
    views = HandEyeViews(SPEC, _intrinsics(), np.zeros(5), "eye_to_hand", n_samples=12, min_rotation_deg=2.0)
    kept = [views.offer(g, im) for g, im in zip(gs, images, strict=True)]
    assert sum(kept) >= 6
    assert not views.offer(gs[int(np.flatnonzero(kept)[0])], images[int(np.flatnonzero(kept)[0])])  # a repeat
    fields, residuals = views.finish()
    x = np.array(fields["T_base_camera"])
    assert np.linalg.norm(x[:3, 3] - cams[0][:3, 3]) < 0.005
    assert residuals["mode"] == "eye_to_hand" and residuals["translation_rms_mm"] < 5.0
    assert residuals["board_reprojection_rms_px"] < 2.0


def test_still_pose_needs_the_arm_to_hold():
    from robot_stack.calibration.views import still_pose

    moving = [(i, np.eye(4)) for i in range(3)]
    moving[1][1][0, 3] = 0.01
    assert still_pose(moving, 10) is None
    still = [(i, np.eye(4)) for i in range(4)]
    assert still_pose(still, 10) is not None and still_pose(still, 1) is None  # too few before the image


def test_workspace_capture_bounds_margin_and_degenerate_box():
    from robot_stack.calibration.workspace import WorkspaceCapture

    cap = WorkspaceCapture(margin_m=0.01)
    for i, p in enumerate([[0.2, 0.0, 0.1], [0.3, 0.05, 0.2], [0.25, -0.05, 0.15], [np.nan, 0, 0]]):
        cap.add_state(i, ["j1"], [0.1 * i], p)
    lo, hi, res = cap.bounds()
    assert lo == pytest.approx([0.19, -0.06, 0.09]) and hi == pytest.approx([0.31, 0.06, 0.21])
    assert res["n_states"] == 3  # the NaN state is not part of the box
    flat = WorkspaceCapture()
    for i in range(5):
        flat.add_state(i, ["j1"], [0.0], [0.2 + 0.02 * i, 0.0, 0.1])
    with pytest.raises(files.CalibrationError, match=r"degenerate.*\['y', 'z'\]"):
        flat.bounds()


def test_drive_capture_home_at_the_pressed_state_and_abort():
    import queue

    from robot_stack.calibration.workspace import WorkspaceCapture, drive_capture

    cap = WorkspaceCapture()
    for i in range(5):
        cap.add_state(100 + i, ["a", "b"], [0.1 * i, -0.1 * i], [0.2, 0.0, 0.1])
    events = queue.Queue()
    events.put(("start", 101))
    events.put(("success", 102))  # in home mode success also marks home
    res = drive_capture(cap, events, "home")
    assert res.home_joints_rad == pytest.approx([0.2, -0.2]) and res.workspace_min_m is None
    assert res.arm_yaml() == {"home_joints_rad": res.home_joints_rad}
    events.put(("quit", 104))
    with pytest.raises(files.CalibrationError, match="nothing was written"):
        drive_capture(cap, events, "workspace")
    with pytest.raises(files.CalibrationError, match="home key was never pressed"):
        WorkspaceCapture().result(want_bounds=False, want_home=True)


def test_calibrate_cli_argument_errors(capsys):
    from robot_stack.cli.main import main

    assert main(["calibrate"]) == 2 and "workspace, home, intrinsics, handeye" in capsys.readouterr().err
    assert main(["calibrate", "intrinsics", "rig=sim_widowx"]) == 2 and "camera=<name>" in capsys.readouterr().err
    assert main(["calibrate", "handeye", "camera=front", "mode=sideways"]) == 2
    assert "eye_to_hand" in capsys.readouterr().err
    assert main(["calibrate", "workspace", "margin_m=lots"]) == 2 and "not a number" in capsys.readouterr().err
    assert main(["calibrate", "intrinsics", "camera=front", "board.size=3"]) == 2
    assert "board.squares_x" in capsys.readouterr().err
    assert main(["calibrate", "intrinsics", "camera=top", "rig=sim_widowx"]) == 2
    assert "no camera 'top'" in capsys.readouterr().err


def test_calibrate_cli_save_path_and_handeye_needs_intrinsics(tmp_path, capsys):
    from robot_stack.calibration.views import load_intrinsics
    from robot_stack.cli.calibrate import calibration_dir, parse_args
    from robot_stack.cli.main import main
    from robot_stack.conf import load_config

    _, own, _, _ = parse_args(["workspace", "rig=widowx"])
    assert calibration_dir(load_config(["rig=widowx"]), own) == files.Path("calibration/widowx")
    assert calibration_dir(load_config(["rig=sim_widowx"]), {}) == files.Path("calibration/sim_widowx")
    assert calibration_dir(load_config([]), {"calibration_dir": str(tmp_path)}) == tmp_path
    # hand-eye refuses before starting any node when the camera has no intrinsics yet
    files.save_device(tmp_path, "front", {"type": "realsense", "serial": "1"})
    assert main(["calibrate", "handeye", "rig=sim_widowx", "camera=front", "mode=eye_to_hand",
                 f"calibration_dir={tmp_path}"]) == 2
    assert "robot-stack calibrate intrinsics" in capsys.readouterr().err
    # what `calibrate intrinsics` saves is what hand-eye (and camera_node) read back
    from robot_stack.calibration.views import intrinsics_fields

    res = {"K": _intrinsics(), "dist_coeffs": np.zeros(5), "width": W, "height": H}
    files.save_device(tmp_path, "front", intrinsics_fields(res), residuals={"rms_px": 0.2})
    data = files.load_device(tmp_path, "front")
    k, d = load_intrinsics(data, "front.yaml")
    np.testing.assert_allclose(k, _intrinsics(), atol=1e-6)
    assert data["serial"] == "1" and data["residuals"]["rms_px"] == 0.2 and len(d) == 5
