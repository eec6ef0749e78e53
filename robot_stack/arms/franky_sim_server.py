"""Serve a simulated FR3 over the libfranka protocol (franky-sim, MuJoCo) on one loopback address.

    python -m robot_stack.arms.franky_sim_server [HOST]     # default 127.0.0.1; prints READY when listening

What rig `sim_franky` (profile `sim_franky_collect`) and the Franka tests connect the real franky library to.
franky-sim binds an address, not a port, so parallel servers use different 127.x.y.z addresses.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    host = args[0] if args else "127.0.0.1"
    try:
        import franky_sim
        from franky_sim.mujoco_simulator import MujocoSimulator
    except ImportError:
        print("franky-sim is not installed: pip install 'robot_stack[franka]'", file=sys.stderr)
        return 2
    with MujocoSimulator(enable_visualization=False) as sim:
        sim.add_robot()
        with franky_sim.SimulationServer(sim, hostname_candidates=[host]) as server:
            print("READY", flush=True)
            server.run_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
