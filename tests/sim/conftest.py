"""Shared fixtures for the MuJoCo sim tests (real MuJoCo, offscreen EGL rendering, no mocks)."""

import pytest

from robot_stack.sim import SimConfig, TabletopSim


@pytest.fixture(scope="module")
def sim():
    s = TabletopSim(SimConfig(image_size_px=64))
    yield s
    s.close()
