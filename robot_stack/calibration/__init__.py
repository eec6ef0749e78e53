"""Calibration: ChArUco intrinsics and board poses (charuco), hand-eye (handeye), per-device YAML files (files).

Submodules import OpenCV lazily; `import robot_stack.calibration` stays light.
"""
