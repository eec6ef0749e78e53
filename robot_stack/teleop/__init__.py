"""Teleoperation: devices (keyboard, SpaceMouse, gamepad, file replay) and the collection session.

Device modules import their vendor library lazily; use `robot_stack.teleop.factory.make_teleop`.
"""
