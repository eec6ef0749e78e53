"""robot_stack.algos."""
