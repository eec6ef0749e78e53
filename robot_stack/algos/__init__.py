"""robot_stack.algos: learning algorithms (registered by name in `robot_stack.algos.base.ALGOS`)."""
