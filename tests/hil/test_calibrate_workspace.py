"""HIL: `robot-stack calibrate workspace` on the sim rig, driven by the replay device through the real teleop
node and arm node; the written arm.yaml bounds contain the driven path and home = the joints at the key press."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.hil


def test_calibrate_workspace_and_home_on_sim(tmp_path):
    from robot_stack.calibration.files import load_device
    from robot_stack.cli.calibrate import parse_args, run_calibrate

    zero = {"action": [0, 0, 0, 0, 0, 0, 1], "events": []}
    rows = [zero] * 2
    rows += [{"action": [0.01, 0, 0, 0, 0, 0, 1], "events": []}] * 5
    rows += [zero] * 2 + [{"action": [0, 0, 0, 0, 0, 0, 1], "events": ["home"]}] + [zero] * 2
    rows += [{"action": [0, 0.01, 0, 0, 0, 0, 1], "events": []}] * 4
    rows += [{"action": [0, 0, -0.01, 0, 0, 0, 1], "events": []}] * 4
    rows += [zero, {"action": [0, 0, 0, 0, 0, 0, 1], "events": ["success"]}]
    replay = tmp_path / "drive.jsonl"
    replay.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    calib = tmp_path / "calib"
    cmd, own, board, overrides = parse_args(["workspace", "rig=sim_widowx", "device=replay", "margin_m=0.01",
                                             f"calibration_dir={calib}", f"teleop.path={replay}"])
    lines: list[str] = []
    path, result = run_calibrate(cmd, own, board, overrides, log_dir=tmp_path / "logs", status=lines.append)

    assert path == calib / "arm.yaml"
    saved = load_device(calib, "arm")
    assert saved["date"] and saved["residuals"]["margin_m"] == 0.01
    lo, hi = np.array(saved["workspace_min_m"]), np.array(saved["workspace_max_m"])
    path_m = np.array([s.ee_xyz_m for s in result.samples])
    assert len(path_m) >= 15, lines[-5:]
    assert (path_m >= lo - 1e-6).all() and (path_m <= hi + 1e-6).all()
    np.testing.assert_allclose(lo, path_m.min(axis=0) - 0.01, atol=1e-4)  # margin applied, not more
    extent = path_m.max(axis=0) - path_m.min(axis=0)
    assert extent[0] > 0.03 and extent[1] > 0.02 and extent[2] > 0.02, extent  # the replayed motion

    # home = the joints of the state the "home" row answered: after the +x motion, before the +y motion
    at_press = [s for s in result.samples if s.stamp_ns == result.home_stamp_ns]
    assert len(at_press) == 1
    assert saved["home_joints_rad"] == pytest.approx(list(at_press[0].joints_rad), abs=1e-9)
    assert len(saved["home_joints_rad"]) == 6
    first, last = np.array(result.samples[0].joints_rad), np.array(result.samples[-1].joints_rad)
    home = np.array(saved["home_joints_rad"])
    assert np.abs(home - first).max() > 0.01 and np.abs(home - last).max() > 0.01
