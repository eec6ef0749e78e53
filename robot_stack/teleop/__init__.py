"""robot_stack.teleop."""
