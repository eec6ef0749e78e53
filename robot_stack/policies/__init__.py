"""robot_stack.policies."""
