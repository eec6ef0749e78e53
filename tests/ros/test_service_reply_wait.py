"""A service reply must survive the discovery race right after bring-up (CI lost recorder/start's reply this way).

rmw_fastrtps drops a reply when the client's response reader is not matched within the response writer's
max_blocking_time (100 ms by default). robot_stack/ros/fastdds_profiles.xml raises it; this test shows the file is
the one every node loads and that rmw_fastrtps really uses it: a client whose response reader can never match
(it asks for TRANSIENT_LOCAL, the server's writer is VOLATILE) holds the server in send_response for the
profile's time, not 100 ms. The test fails if the profile is not loaded or rmw_fastrtps stops reading it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

from robot_stack.ros.qos import FASTDDS_PROFILES

PROBE = r"""
import os, threading, time
from robot_stack.ros.qos import configure_dds_environment
configure_dds_environment()
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_srvs.srv import Trigger

rclpy.init()
server, client_node = rclpy.create_node("reply_wait_server"), rclpy.create_node("reply_wait_client")
handled = []
server.create_service(Trigger, "probe", lambda req, resp: (handled.append(time.monotonic()), resp)[1])
never_matches = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
client = client_node.create_client(Trigger, "probe", qos_profile=never_matches)
spin_client = SingleThreadedExecutor()
spin_client.add_node(client_node)
threading.Thread(target=spin_client.spin, daemon=True).start()
time.sleep(1.0)  # the request writer matches the server's reader
client.call_async(Trigger.Request())
spin_server = SingleThreadedExecutor()
spin_server.add_node(server)
deadline = time.monotonic() + 20
while not handled and time.monotonic() < deadline:
    spin_server.spin_once(timeout_sec=0.1)  # handles the request, then blocks in send_response
assert handled, "the request never reached the server"
print("BLOCKED", time.monotonic() - handled[0], flush=True)
os._exit(0)
"""


def _profile_wait_s() -> float:
    root = ET.parse(FASTDDS_PROFILES).getroot()
    ns = {"d": root.tag.split("}")[0].strip("{")} if root.tag.startswith("{") else {}
    p = "d:" if ns else ""
    pub = root.find(f"{p}profiles/{p}publisher[@profile_name='service']", ns)
    assert pub is not None, "fastdds_profiles.xml has no 'service' publisher profile"
    t = pub.find(f"{p}qos/{p}reliability/{p}max_blocking_time", ns)
    return float(t.find(f"{p}sec", ns).text) + float(t.find(f"{p}nanosec", ns).text) * 1e-9


def test_profile_gives_service_replies_seconds_to_find_their_client():
    wait_s = _profile_wait_s()
    assert wait_s >= 1.0  # 10x the rmw default, far above discovery on a loaded 2-core machine
    env = {k: v for k, v in os.environ.items() if k != "FASTDDS_DEFAULT_PROFILES_FILE"}
    env["ROS_DOMAIN_ID"] = str(100 + os.getpid() % 100)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=90)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("BLOCKED")]
    assert lines, f"probe failed (rc {out.returncode}):\n{out.stdout}\n{out.stderr[-2000:]}"
    blocked_s = float(lines[0].split()[1])
    # With the rmw default the server gives up after 0.1 s; with the profile it waits the profile's time. Only a lower
    # bound: a loaded machine can make the wait longer, never shorter.
    assert blocked_s >= wait_s - 0.5, blocked_s
