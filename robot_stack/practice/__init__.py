"""robot_stack.practice."""
