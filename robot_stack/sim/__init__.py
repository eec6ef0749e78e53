"""robot_stack.sim."""
