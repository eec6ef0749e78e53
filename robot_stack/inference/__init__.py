"""robot_stack.inference."""
