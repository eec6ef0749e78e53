"""robot_stack.arms."""
