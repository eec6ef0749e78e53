"""The adversarial streams of robot_stack/arms/stress.py over a running rig's real topics (ROS side)."""

from __future__ import annotations

import numpy as np

from robot_stack.arms.safety import SafetyConfig
from robot_stack.arms.stress import ROS_MEASURED_TOL_M, ROS_MEASURED_TOL_RAD, LimitMeter, commands

ROS_STREAMS = ("random", "malformed", "wall", "corner", "rotation")  # start poses cannot be set over topics


def run_ros_streams(client, cfg: SafetyConfig, kinds, n: int, control_hz: float, seed: int = 0,
                    check=None, timeout_s: float = 120.0) -> dict[str, LimitMeter]:
    """Drive a running rig over its real `action` topic, one command per published state (stamp = that
    state's stamp, as a policy answers observations); judge the published ee_pose stream with a LimitMeter.

    client: a robot_stack.ros.rig_client.RigClient on the rig's namespace. Only pairs of consecutive states one
    control period apart are judged (the state topics are best-effort: a lost message must not read as a
    double step). Returns one meter per stream kind.
    """
    import threading
    import time

    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import JointState

    from robot_stack.ros import conversions as conv

    pub = client.node.create_publisher(JointState, "action", QoSProfile(depth=5))
    deadline = time.monotonic() + 10
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    meters = {}
    period_ns = 1e9 / control_hz
    for kind in kinds:
        stream = iter(list(commands(kind, cfg, n, seed)))
        readings: list = []
        done = threading.Event()

        def on_state(reading, stream=stream, readings=readings, done=done, kind=kind):
            readings.append((reading.stamp_ns, np.asarray(reading.ee_pose, dtype=np.float64)))
            try:
                names, values = next(stream)
            except StopIteration:
                done.set()
                return
            pub.publish(conv.action_to_msg(list(names), [float(v) for v in values], reading.stamp_ns,
                                           f"stress:{kind}"))

        client.state_listeners.append(on_state)
        end = time.monotonic() + timeout_s
        while not done.is_set():
            if check is not None:
                check()
            if time.monotonic() > end:
                raise TimeoutError(f"stream {kind}: {len(readings)} states in {timeout_s:.0f} s; is the rig running?")
            time.sleep(0.05)
        client.state_listeners.remove(on_state)
        time.sleep(2.5 / control_hz)  # the last command's step
        meter = LimitMeter(cfg, measured_tol_m=ROS_MEASURED_TOL_M, measured_tol_rad=ROS_MEASURED_TOL_RAD)
        for (t0, p0), (t1, p1) in zip(readings, readings[1:], strict=False):
            if abs((t1 - t0) - period_ns) <= 0.5 * period_ns:
                meter.step(p0, p1, None, True, f"{kind}@{t1}")
        meters[kind] = meter
    client.node.destroy_publisher(pub)
    return meters
