"""ROS 2 adapters: the only package that imports rclpy and message types (DESIGN.md §2).

Each node is a thin adapter over plain-Python logic elsewhere in robot_stack; message conversions all
live in `conversions`.
"""
