"""robot_stack.learn."""
