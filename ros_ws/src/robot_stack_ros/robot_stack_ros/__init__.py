"""ROS 2 packaging shim for robot_stack: the node code lives in the `robot_stack` Python package
(robot_stack/ros/*); this package only installs its executables and launch files for `ros2 run` and
`ros2 launch`."""
