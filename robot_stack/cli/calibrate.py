"""`robot-stack calibrate`: measure a rig's site data into calibration/<rig>/<device>.yaml, one command each.

    robot-stack calibrate workspace  rig=widowx [device=keyboard|spacemouse|gamepad|replay] [margin_m=0.02]
    robot-stack calibrate home       rig=widowx [device=...]
    robot-stack calibrate intrinsics rig=widowx camera=front [views=15]
    robot-stack calibrate handeye    rig=widowx camera=front mode=eye_to_hand|eye_in_hand [samples=12]
    common: [calibration_dir=...] [board.squares_x=5 board.squares_y=7 board.square_m=0.03 board.marker_m=0.022
            board.dictionary=DICT_5X5_100] [teleop.path=... teleop.max_step_m=...] [hydra overrides]

Starts the rig's collect profile without its recorder (nothing is recorded), drives the arm with the teleop
device in this process (as `robot-stack collect` does), reads ee_pose / joint_states / camera frames through a
RigClient, and leaves the measuring to plain-Python code in robot_stack.calibration (workspace, views).

    device events ──► TeleopLink.stamped_events ──► drive_capture / view loop ──► save_device(<rig dir>, ...)
    joint_states + ee_pose ──► RigClient.state_listeners ──► WorkspaceCapture / arm poses for hand-eye
    camera/<cam>/image_raw ──► RigClient.latest_images ──► IntrinsicsViews / HandEyeViews

Keys: success (keyboard y) finishes and saves; quit/fail/discard (Esc/n/x) aborts without writing; home (h)
marks the home pose. The arm's current safety box (arm.yaml / rig config) still clamps motion while capturing
the workspace, on purpose: widen it there first if the new workspace must be larger.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

from robot_stack.calibration.files import CalibrationError
from robot_stack.conf.profiles import ProfileError, launch_profile_name, load_profile

COMMANDS = ("workspace", "home", "intrinsics", "handeye")
OWN_KEYS = ("rig", "device", "camera", "mode", "views", "samples", "margin_m", "min_extent_m", "calibration_dir")
BOARD_KEYS = ("squares_x", "squares_y", "square_m", "marker_m", "dictionary")
USAGE = __doc__


def parse_args(argv: list[str]) -> tuple[str, dict, dict, list[str]]:
    """(command, own keys, board spec keys, hydra overrides incl. teleop.*); ProfileError on bad usage."""
    if not argv or argv[0] not in COMMANDS:
        got = repr(argv[0]) if argv else "nothing"
        raise ProfileError(f"robot-stack calibrate needs one of {', '.join(COMMANDS)} first, got {got}; "
                           "e.g. robot-stack calibrate workspace rig=widowx device=keyboard")
    cmd, own, board, rest = argv[0], {}, {}, []
    for a in argv[1:]:
        key, eq, value = a.partition("=")
        if not eq:
            raise ProfileError(f"argument {a!r} is not key=value; usage: robot-stack calibrate {cmd} rig=... ...")
        if key in OWN_KEYS:
            own[key] = value
        elif key.startswith("board."):
            if key[6:] not in BOARD_KEYS:
                raise ProfileError(f"unknown board setting {key!r}; known: {['board.' + k for k in BOARD_KEYS]}")
            board[key[6:]] = value
        else:
            rest.append(a)
    own.setdefault("rig", "sim_widowx")
    own.setdefault("device", "keyboard")
    if cmd in ("intrinsics", "handeye") and not own.get("camera"):
        raise ProfileError(f"calibrate {cmd} needs camera=<name> (a camera of the rig, e.g. camera=front)")
    if cmd == "handeye" and own.get("mode") not in ("eye_to_hand", "eye_in_hand"):
        raise ProfileError(f"calibrate handeye needs mode=eye_to_hand (fixed camera, board held by the gripper) or "
                           f"mode=eye_in_hand (wrist camera, board fixed on the table); got {own.get('mode')!r}")
    for k, kind in (("views", int), ("samples", int), ("margin_m", float), ("min_extent_m", float)):
        if k in own:
            try:
                own[k] = kind(own[k])
            except ValueError:
                raise ProfileError(f"{k}={own[k]!r} is not a number") from None
    return cmd, own, board, rest


def board_spec(board: dict):
    from robot_stack.calibration.charuco import BoardSpec

    kinds = {"squares_x": int, "squares_y": int, "square_m": float, "marker_m": float, "dictionary": str}
    try:
        return BoardSpec(**{k: kinds[k](v) for k, v in board.items()})
    except ValueError as e:
        raise ProfileError(f"bad board setting: {e}") from None


def calibration_dir(cfg, own: dict) -> Path:
    """Where this rig's files go: calibration_dir=..., else rig.calibration_dir, else calibration/<rig name>."""
    if own.get("calibration_dir"):
        return Path(own["calibration_dir"])
    return Path(str(cfg.rig.get("calibration_dir") or f"calibration/{cfg.rig.name}"))


def _split(overrides: list[str]) -> tuple[list[str], dict]:
    hydra, tcfg = [], {"max_step_m": 0.02, "max_step_rad": 0.1, "path": ""}
    for o in overrides:
        if o.startswith("teleop."):
            k, _, v = o[len("teleop."):].partition("=")
            tcfg[k] = v
        else:
            hydra.append(o)
    return hydra, tcfg


def run_calibrate(cmd: str, own: dict, board: dict, overrides: list[str], log_dir: Path | None = None,
                  status=None, node_timeout_s: float = 90.0):
    """Start the graph, capture, save. Returns (saved path, result) where result is a WorkspaceResult for
    workspace/home and (fields, residuals) for intrinsics/handeye."""
    from robot_stack.calibration import files
    from robot_stack.cli.supervisor import Supervisor
    from robot_stack.conf import load_config
    from robot_stack.teleop.factory import make_teleop

    hydra, tcfg = _split([f"rig={own['rig']}", *overrides])
    cfg = load_config(hydra)
    calib = calibration_dir(cfg, own)
    camera = own.get("camera")
    if camera is not None and camera not in cfg.rig.cameras:
        raise ProfileError(f"rig {cfg.rig.name} has no camera {camera!r}; its cameras: {list(cfg.rig.cameras)}")
    spec = board_spec(board)
    k_dist = None
    if cmd == "handeye":  # fail before starting anything: hand-eye needs this camera's intrinsics
        from robot_stack.calibration.views import load_intrinsics

        k_dist = load_intrinsics(files.load_device(calib, camera), str(files.device_path(calib, camera)))
    profile = load_profile(launch_profile_name("collect", own["rig"]), hydra)
    # Calibration records nothing: drop the recorder (and with it any store it would create).
    profile = replace(profile, nodes=tuple(n for n in profile.nodes if n.name != "recorder"))
    device = make_teleop(own["device"], float(tcfg["max_step_m"]), float(tcfg["max_step_rad"]), str(tcfg["path"]))
    status = status or _status_line
    with Supervisor(profile, log_dir=log_dir, log=lambda line: None) as sup:
        from robot_stack.ros.rig_client import RigClient
        from robot_stack.ros.teleop_node import TeleopThread
        from robot_stack.teleop.session import TeleopLink
        from robot_stack.types import ACTION_SPACES

        client = RigClient(str(cfg.rig.namespace), name="calibrate")
        teleop = None
        try:
            if camera is not None:
                client.subscribe_camera(camera)
            client.wait_state(node_timeout_s, check=sup.check)
            device.connect()
            link = TeleopLink()
            teleop = TeleopThread(device, ACTION_SPACES[str(cfg.rig.action_space)], str(cfg.rig.namespace), link)
            link.set_live(True)
            if cmd in ("workspace", "home"):
                result = _capture_workspace(cmd, own, client, link, sup.check, status)
                fields, residuals = result.arm_yaml(), result.residuals
                device_name = "arm"
            else:
                result = _capture_views(cmd, own, spec, k_dist, camera, client, link, sup.check, status)
                fields, residuals = result
                device_name = camera
            link.set_live(False)
        finally:
            if teleop is not None:
                teleop.close()
            client.close()
    path = files.save_device(calib, device_name, fields, residuals=residuals)
    status(f"saved {sorted(fields)} to {path}")
    return path, result


def _capture_workspace(cmd, own, client, link, check, status):
    from robot_stack.calibration.workspace import WorkspaceCapture, drive_capture

    capture = WorkspaceCapture(**{k: own[k] for k in ("margin_m", "min_extent_m") if k in own})
    client.state_listeners.append(lambda r: capture.add_state(r.stamp_ns, *r.arm_joints, r.ee_pose[:3]))
    status(f"calibrate {cmd}: " + ("drive the arm to every corner the task needs, then press success (y)"
                                   if cmd == "workspace" else "drive the arm to its home pose, then press home (h)"))
    return drive_capture(capture, link.stamped_events, cmd, check=check, status=status)


def _capture_views(cmd, own, spec, k_dist, camera, client, link, check, status, poll_s: float = 0.05):
    import collections
    import queue

    from robot_stack.arms.poses import pose7_to_matrix
    from robot_stack.calibration.views import HandEyeViews, IntrinsicsViews, still_pose

    if cmd == "intrinsics":
        views = IntrinsicsViews(spec, n_views=own.get("views", 15))
        hint = "move and tilt the board through the whole image"
    else:
        views = HandEyeViews(spec, *k_dist, own["mode"], n_samples=own.get("samples", 12))
        hint = "move the arm to varied poses with the board in view, holding still at each"
        poses: collections.deque = collections.deque(maxlen=32)
        client.state_listeners.append(lambda r: poses.append((r.stamp_ns, pose7_to_matrix(r.ee_pose))))
    status(f"calibrate {cmd} {camera}: {hint}; success (y) finishes early, Esc aborts")
    last_stamp = None
    while not views.done:
        check()
        try:
            ev, _ = link.stamped_events.get(timeout=poll_s)
        except queue.Empty:
            ev = None
        if ev in ("quit", "fail", "discard"):
            raise CalibrationError(f"calibrate {cmd} aborted by the operator ({ev}); nothing was written")
        if ev == "success":
            break
        frame = client.latest_images.get(camera)
        if frame is None or frame[0] == last_stamp:
            continue
        last_stamp, image = frame
        if cmd == "intrinsics":
            kept = views.offer(image)
            n = len(views.images)
        else:
            g = still_pose(list(poses), last_stamp)
            kept = g is not None and views.offer(g, image)
            n = len(views.base_gripper)
        if kept:
            status(f"calibrate {cmd} {camera}: view {n} kept")
    return views.finish()


def _status_line(line: str) -> None:
    sys.stdout.write("\r\033[K" + line + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    # `calibrate <what> --help` too: the sub-commands' arguments are key=value, so the flag is never an override.
    if argv and (argv[0] in ("-h", "--help", "help") or any(a in ("-h", "--help") for a in argv[1:])):
        print(USAGE)
        return 0
    cmd, own, board, overrides = parse_args(argv)
    t0 = time.monotonic()
    path, _ = run_calibrate(cmd, own, board, overrides)
    print(f"calibrate {cmd}: wrote {path} in {time.monotonic() - t0:.0f} s")
    return 0
