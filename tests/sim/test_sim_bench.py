"""Sim speed (run by `make bench`): one control step + two 128 px renders must beat real time by far."""

import logging
import time

import numpy as np
import pytest

from robot_stack.sim import SimConfig, TabletopSim

log = logging.getLogger(__name__)


def _rate_hz(fn, n: int) -> float:
    fn()  # warm-up: creates the renderer / GL context
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


@pytest.mark.bench
def test_sim_runs_well_above_real_time():
    sim = TabletopSim(SimConfig(image_size_px=128))
    hold = np.array([0, 0, 0, 0, 0, 0, 1.0])
    steps_hz = _rate_hz(lambda: sim.apply_ee_delta(hold), 100)
    frames_128_hz = 2 * _rate_hz(lambda: (sim.render("front"), sim.render("wrist")), 50)
    frames_256_hz = 2 * _rate_hz(lambda: (sim.render("front", 256), sim.render("wrist", 256)), 30)

    def step_and_render():
        sim.apply_ee_delta(hold)
        sim.render("front")
        sim.render("wrist")

    loop_hz = _rate_hz(step_and_render, 50)
    sim.close()
    log.warning("sim speed: %.0f steps/s, %.0f frames/s at 128 px, %.0f frames/s at 256 px, "
                "step + 2 renders at 128 px: %.0f Hz = %.0fx real time",
                steps_hz, frames_128_hz, frames_256_hz, loop_hz, loop_hz / sim.config.control_hz)
    assert loop_hz > 4 * sim.config.control_hz
