"""Adversarial command streams through the real controller and the real MuJoCo arms (issue 11).

Every stream of `robot_stack.arms.stress` — random 5x-clamp steps, malformed messages, wall and corner
driving, continuous rotation (each axis and all three), a singular wrist, a start outside the box — must give
0 executed steps over the per-step limits and 0 poses outside the box, judged on the joint command's forward
kinematics (exact) and on the measured pose (servo tracking slack). The same streams run 10k+ commands in
`benchmarks/bench_safety.py`; the over-ROS version is tests/hil/test_safety_topics.py.
"""

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

import robot_stack.conf
from robot_stack.arms.safety import SafetyConfig
from robot_stack.arms.stress import STREAMS, LimitMeter, run_sim_stream

CONF_DIR = Path(robot_stack.conf.__file__).parent


def _rig_safety(rig: str) -> SafetyConfig:
    conf = OmegaConf.load(f"{CONF_DIR}/rig/{rig}.yaml")
    return SafetyConfig.from_mapping(OmegaConf.to_container(conf.safety, resolve=True))


@pytest.fixture(scope="module", params=[("widowx", "sim_widowx"), ("panda", "sim_franka")], ids=["widowx", "panda"])
def rig(request):
    from robot_stack.sim.env import SimConfig, TabletopSim

    arm, rig_name = request.param
    sim = TabletopSim(SimConfig(image_size_px=64, cameras=("front",), arm=arm))
    yield sim, _rig_safety(rig_name)
    sim.close()


@pytest.mark.parametrize("kind", STREAMS)
def test_stream_never_exceeds_the_limits(rig, kind):
    sim, cfg = rig
    m = run_sim_stream(sim, cfg, kind, n=60, seed=3)
    s = m.summary()
    assert m.violations == [], s
    assert s["max_cmd_step_m"] <= cfg.max_delta_m + 2e-4
    assert s["max_cmd_step_rad"] <= cfg.max_delta_rad + 2e-3
    if kind == "malformed":
        assert m.n_executed < m.n_commands  # the malformed ones were refused, the rest ran
    elif kind == "start_outside":
        assert m.n_executed == m.n_commands - 5  # held until the operator acknowledged (arm/enable)
    else:
        assert m.n_executed >= m.n_commands - 5


def test_meter_catches_a_step_over_the_limit():
    """The meter itself can fail: an unlimited step and a pose outside the box are both counted."""
    cfg = _rig_safety("sim_widowx")
    m = LimitMeter(cfg)
    before = np.array([0.3, 0.0, 0.2, 0, 0, 0, 1.0])
    after = before.copy()
    after[0] += 0.1
    m.step(before, after, (after[:3], np.eye(3)), True, "big")
    outside = before.copy()
    outside[2] = 0.5
    m.step(before, outside, None, True, "out")
    assert len(m.violations) >= 3, m.violations


def test_start_outside_the_box_holds_until_acknowledged(rig):
    import time

    from robot_stack.arms.controller import ArmController
    from robot_stack.arms.sim_arm import SimArm
    from robot_stack.arms.stress import start_pose
    from robot_stack.types import EE_DELTA_ACTION_NAMES

    sim, cfg = rig
    sim.reset(seed=0)
    start_pose(sim, "start_outside", cfg)
    before = sim.ee_pose()[:3].copy()
    assert cfg.box_excess_m(before) > 0.01
    ctl = ArmController(SimArm(sim), cfg)
    for _ in range(3):
        now = time.time_ns()
        ctl.submit(EE_DELTA_ACTION_NAMES, [0.0, 0, -0.04, 0, 0, 0, 1], now, now, "test")
        assert ctl.tick(time.time_ns()) is None
    assert "outside" in ctl.reason
    assert np.linalg.norm(sim.ee_pose()[:3] - before) < 0.005
    ctl.set_enabled(True, "test operator")
    excess = [cfg.box_excess_m(sim.ee_pose()[:3])]
    for _ in range(10):
        now = time.time_ns()
        ctl.submit(EE_DELTA_ACTION_NAMES, [0.0] * 6 + [1.0], now, now, "test")
        assert ctl.tick(time.time_ns()) is not None
        excess.append(cfg.box_excess_m(sim.ee_pose()[:3]))
    assert excess[-1] < excess[0]  # a zero action brings it back ...
    assert max(np.diff(excess)) < 0.002  # ... never further out ...
    assert min(np.diff(excess)) > -(cfg.max_delta_m + 0.01)  # ... at the clamped rate


def test_driver_exception_in_tick_ends_in_a_latched_fault_and_hold(rig):
    import time

    from robot_stack.arms.controller import FAULT, ArmController
    from robot_stack.arms.sim_arm import SimArm
    from robot_stack.types import EE_DELTA_ACTION_NAMES

    sim, cfg = rig
    sim.reset(seed=0)
    arm = SimArm(sim)
    ctl = ArmController(arm, cfg)

    def broken(action):
        raise OSError("servo bus timeout")

    arm.send_action = broken
    now = time.time_ns()
    ctl.submit(EE_DELTA_ACTION_NAMES, [0.01, 0, 0, 0, 0, 0, 1], now, now, "test")
    assert ctl.tick(time.time_ns()) is None  # no exception escapes
    assert ctl.status == FAULT and ctl.estopped and "servo bus timeout" in ctl.reason
    now = time.time_ns()
    ctl.submit(EE_DELTA_ACTION_NAMES, [0.01, 0, 0, 0, 0, 0, 1], now, now, "test")
    assert ctl.tick(time.time_ns()) is None  # latched until released
