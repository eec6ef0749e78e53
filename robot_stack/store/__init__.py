"""robot_stack.store."""
