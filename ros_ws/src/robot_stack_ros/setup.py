"""ament_python package for robot_stack: `colcon build` in ros_ws, then `ros2 run robot_stack_ros sim_rig`
or `ros2 launch robot_stack_ros deploy.launch.py rig:=sim_widowx`.

The executables import the `robot_stack` package, which is not built here: install it into the Python
that ROS uses first (`pip install -e /path/to/robot_stack[learn,sim]`). The launch files live in the
repository's top-level launch/ folder (shared with the docs and tests) and are installed from there.
"""

import os
from glob import glob
from pathlib import Path

from setuptools import setup

PACKAGE = "robot_stack_ros"
# data_files sources must be relative paths (wheel/egg builds reject absolute ones); colcon runs setup.py
# from this folder, but compute <repo>/launch relative to the working directory in case it does not.
LAUNCH_DIR = os.path.relpath(Path(__file__).resolve().parent / ".." / ".." / ".." / "launch")

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=[PACKAGE],
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", sorted(glob(os.path.join(LAUNCH_DIR, "*.launch.py")))),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="robot_stack maintainers",
    maintainer_email="robot-stack@example.com",
    description="ROS 2 executables and launch files for robot_stack",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "sim_rig = robot_stack.ros.sim_rig_node:main",
            "recorder = robot_stack.ros.recorder_node:main",
            "learner = robot_stack.ros.learner_node:main",
            "inference = robot_stack.ros.inference_node:main",
            "rig = robot_stack.ros.rig_node:main",
            "teleop = robot_stack.ros.teleop_node:main",
            "dashboard = robot_stack.ros.dashboard_node:main",
            "practice = robot_stack.ros.practice_node:main",
        ],
    },
)
