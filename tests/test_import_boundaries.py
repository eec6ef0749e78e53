"""DESIGN.md §2: only robot_stack/ros imports rclpy or message packages, and `import robot_stack` is light."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "robot_stack"
ROS_IMPORT = re.compile(r"^\s*(import rclpy|from rclpy|from (sensor|std|geometry|diagnostic|builtin_interfaces)\w*)", re.M)


def test_no_ros_imports_outside_ros_package():
    offenders = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")
                 if "ros" not in p.relative_to(ROOT).parts[:1] and ROS_IMPORT.search(p.read_text())]
    assert offenders == []


def test_import_robot_stack_pulls_nothing_heavy():
    code = ("import sys, robot_stack, robot_stack.types, robot_stack.arms.controller, robot_stack.cli.main;"
            "heavy = [m for m in ('torch', 'rclpy', 'mujoco', 'cv2') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_learner_services_do_not_import_their_registry():
    # The registry (learn/services.py) builds the services lazily; the services take their shared thread control
    # from learn/background.py, so there is no services <-> bc / rl_service import circle (issue 14).
    for name in ("bc.py", "rl_service.py", "background.py"):
        text = (ROOT / "learn" / name).read_text()
        assert "robot_stack.learn.services" not in text, f"learn/{name} imports the service registry"
