"""Hardware-in-the-loop with the REAL Franka driver: the rig node (real rclpy process, profile
sim_franky_collect, rig sim_franky) drives a franky-sim MuJoCo FR3 through franky-control 2.0 over the libfranka
protocol on loopback. ee_delta commands on the action topic must move the arm; adversarial streams (5x-clamp
steps, wall/corner driving past the box, continuous rotation, NaN/malformed) must produce no commanded step
over the limits and no measured pose outside the box beyond the impedance tracking error.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from robot_stack.arms.safety import SafetyConfig
from robot_stack.ros.safety_streams import ROS_STREAMS, run_ros_streams

pytestmark = pytest.mark.hil
pytest.importorskip("franky", reason="franky-control not installed: pip install robot_stack[franka]")
pytest.importorskip("franky_sim", reason="franky-sim not installed: pip install robot_stack[franka]")

CONTROL_HZ = 10.0


def _stop(proc):
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_rig_node_drives_franky_sim_within_limits(rig_client, monkeypatch, tmp_path):
    from robot_stack.conf import load_config

    host = f"127.{random.randint(1, 250)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    server = subprocess.Popen([sys.executable, "-m", "robot_stack.arms.franky_sim_server", host], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    line = server.stdout.readline()
    if "READY" not in line:
        _stop(server)
        pytest.fail(f"franky-sim did not start on {host}: {line}{server.stdout.read()}")
    monkeypatch.setenv("ROS_DOMAIN_ID", str(random.randint(60, 99)))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    overrides = ["rig=sim_franky", f"rig.arm.ip={host}", f"rig.control_hz={CONTROL_HZ}"]
    rig = load_config(overrides).rig
    cfg = SafetyConfig.from_mapping(OmegaConf.to_container(rig.safety, resolve=True))
    log = open(tmp_path / "rig.log", "w")  # noqa: SIM115 - the rig process writes it; closed in finally
    proc = subprocess.Popen([sys.executable, "-m", "robot_stack.ros.rig_node", *overrides],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ})

    def alive():
        if proc.poll() is not None:
            raise AssertionError(f"rig node exited ({proc.returncode}): {(tmp_path / 'rig.log').read_text()[-3000:]}")
        if server.poll() is not None:
            raise AssertionError(f"franky-sim exited ({server.returncode})")

    try:
        client = rig_client(str(rig.namespace))
        client.wait_state(90, check=alive)
        meters = run_ros_streams(client, cfg, ROS_STREAMS, n=30, control_hz=CONTROL_HZ, check=alive)
        summaries = {k: m.summary() for k, m in meters.items()}
        print(summaries)  # the measured impedance tracking error, for the record (pytest -s)
        for kind, m in meters.items():
            assert m.violations == [], (kind, summaries[kind])
            assert m.n_commands >= 15, (kind, summaries[kind])
        st = client.arm_status
        assert int(st.get("rejected", 0)) >= 10, st  # the malformed ones were refused, and counted
        assert int(st["cmd_over_limit"]) == 0, st
        assert float(st["cmd_max_step_m"]) <= cfg.max_delta_m + 2e-4, st
        assert float(st["cmd_max_step_rad"]) <= cfg.max_delta_rad + 2e-3, st
        assert float(st["cmd_max_box_excess_m"]) <= 0.005, st  # impedance sag below the floor: a few mm
        assert meters["wall"].max_meas_step_m > 0.3 * cfg.max_delta_m  # the arm did move: not a dead rig
    finally:
        _stop(proc)
        log.close()
        _stop(server)
