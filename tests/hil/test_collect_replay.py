"""HIL: a whole teleoperated collection session on the sim rig (profile sim_collect) driven by the
file-replay device through the real teleop node, recorder services and store; then resume."""

from __future__ import annotations

import json

import pytest

from robot_stack.cli.collect import parse_args, run_collect

pytestmark = pytest.mark.hil


def _episode(final: str, n: int = 10, dx: float = 0.01) -> list[dict]:
    rows = [{"action": [0, 0, 0, 0, 0, 0, 1], "events": ["start"]}]
    rows += [{"action": [dx, 0, -0.005, 0, 0, 0, 1 if i < n // 2 else 0], "events": []} for i in range(n)]
    rows.append({"action": [0, 0, 0, 0, 0, 0, 0], "events": [final]})
    return rows


def test_collect_session_with_replay_device_then_resume(tmp_path):
    from robot_stack.store import TrajectoryStore

    replay = tmp_path / "session.jsonl"
    rows = _episode("success") + _episode("discard") + _episode("fail", dx=-0.01)
    replay.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    store = tmp_path / "store.zarr"
    lines: list[str] = []
    own, overrides = parse_args(["rig=sim_widowx", "task=put the cube in the bowl", "episodes=2", "device=replay",
                                 f"store={store}", f"teleop.path={replay}"])
    report = run_collect(own, overrides, log_dir=tmp_path / "logs", status=lines.append)
    assert report.committed == [0, 1] and report.discarded == 1 and report.successes == 1, (report, lines[-5:])
    assert any("episode 1/2" in ln and "Hz" in ln for ln in lines)  # the live status line

    s = TrajectoryStore.open(str(store), mode="r")
    metas = [s.episode_meta(i) for i in range(s.n_episodes)]
    assert s.n_episodes == 2
    assert [m.source for m in metas] == ["teleop", "teleop"] and [m.success for m in metas] == [True, False]
    assert all(m.task == "put the cube in the bowl" for m in metas)
    ep = s.get_episode(0)
    assert 3 <= ep["action"].shape[0] <= 11  # replayed motion rows that arrived while recording
    assert ep["action"][:, 0].max() > 0.005  # the replayed +x motion, as executed after clamping
    assert ep["action"][:, 6].min() == 0.0 and ep["action"][:, 6].max() == 1.0  # the gripper closed mid-episode

    # Resume: both requested episodes exist for this task, so a rerun collects nothing and starts no graph.
    lines.clear()
    report = run_collect(own, overrides, log_dir=tmp_path / "logs2", status=lines.append)
    assert report.committed == [] and "already" in lines[-1]


def test_real_rig_node_over_fake_sdks_faults_into_estop(tmp_path):
    """rig_node.build with the real drivers over the Interbotix and pyrealsense2 fakes, site values from
    calibration files; an overload engages the latched e-stop and arm/recover brings the arm back."""
    import time

    import rclpy
    import yaml

    from robot_stack.conf import load_config
    from robot_stack.ros import rig_node

    calib = tmp_path / "calib"
    calib.mkdir()
    (calib / "arm.yaml").write_text(yaml.safe_dump({"date": "2020-01-01", "home_joints_rad": [0, -0.5, 0.5, 0, 0.6, 0],
                                                    "max_effort": [600] * 6, "workspace_min_m": [0.1, -0.2, 0.05],
                                                    "workspace_max_m": [0.45, 0.25, 0.35]}))
    for cam in ("front", "wrist"):
        (calib / f"{cam}.yaml").write_text(yaml.safe_dump({"date": "2020-01-01", "type": "fake_realsense",
                                                            "serial": f"sn-{cam}"}))
    cfg = load_config(["rig=widowx", "rig.driver=fake_interbotix", f"rig.calibration_dir={calib}",
                       "rig.cameras.front.height=48", "rig.cameras.front.width=64",
                       "rig.cameras.wrist.height=48", "rig.cameras.wrist.width=64"])
    arm_s, cams_s, safety = rig_node.site_settings(cfg.rig)
    assert safety["workspace_max_m"] == [0.45, 0.25, 0.35] and cams_s["front"]["serial"] == "sn-front"
    rclpy.init()
    nodes = []
    try:
        nodes = rig_node.build(cfg)
        arm_node, camera_node, control = nodes
        ctl = arm_node.controller
        names = list(ctl.arm.action_names)
        from std_srvs.srv import SetBool

        now = time.time_ns()
        ctl.submit(names, [0.01, 0, 0, 0, 0, 0, 1], now, now, "teleop:test")
        arm_node._tick()
        assert ctl.n_executed == 0 and ctl.status == "disabled"  # real rigs start disabled
        assert arm_node._on_enable_srv(SetBool.Request(data=True), SetBool.Response()).success
        now = time.time_ns()
        ctl.submit(names, [0.01, 0, 0, 0, 0, 0, 1], now, now, "teleop:test")
        arm_node._tick()
        assert ctl.n_executed == 1 and ctl.status == "ok"
        camera_node._publish("front")
        assert camera_node.frames_published["front"] == 1
        ctl.arm.bot.inject_effort("shoulder", 2000)
        now = time.time_ns()
        ctl.submit(names, [0.01, 0, 0, 0, 0, 0, 1], now, now, "teleop:test")
        arm_node._tick()
        control._watch()
        assert ctl.estopped and "overload" in ctl.reason
        ctl.arm.bot.inject_effort("shoulder", 0)
        from std_srvs.srv import Trigger

        resp = control._on_recover(Trigger.Request(), Trigger.Response())
        assert resp.success and ctl.arm.fault is None
    finally:
        for n in nodes:
            getattr(n, "close", lambda: None)()
            n.destroy_node()
        rclpy.try_shutdown()
