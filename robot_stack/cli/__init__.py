"""robot_stack.cli."""
