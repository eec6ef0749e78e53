"""robot_stack.sim: the MuJoCo WidowX 250s table-top simulation, its tasks and a scripted expert.

    from robot_stack.sim import SimConfig, TabletopSim, ScriptedExpert

MuJoCo is imported lazily (first use of those names), so `robot_stack.sim.tasks` stays light.
"""

import os

# Offscreen rendering on CPU-only machines: EGL (Mesa) unless the caller chose a backend. This must be
# set before mujoco is first imported.
os.environ.setdefault("MUJOCO_GL", "egl")

_LAZY = {
    "SimConfig": "robot_stack.sim.env",
    "TabletopSim": "robot_stack.sim.env",
    "ScriptedExpert": "robot_stack.sim.expert",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'robot_stack.sim' has no attribute {name!r}")
