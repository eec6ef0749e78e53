"""robot_stack.calibration."""
