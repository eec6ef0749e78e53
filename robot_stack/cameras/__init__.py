"""robot_stack.cameras."""
