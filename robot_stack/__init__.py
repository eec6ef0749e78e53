"""robot_stack: a ROS 2 + PyTorch learning stack for WidowX 250 and Franka arms.

Importing this package pulls in nothing heavy: torch, mujoco, rclpy and vendor SDKs are imported
lazily by the sub-packages that need them (DESIGN.md §4.2).
"""

__version__ = "0.1.0"
