"""Test support installed alongside robot_stack (same distribution, its own top-level package): fakes at the
vendor SDK boundaries (DESIGN.md §4.8), registered in the real registries under their own names.

    arm driver  fake_interbotix   robot_stack_testing.fake_interbotix   (the Interbotix SDK, wx250s kinematics)
    camera type fake_realsense    robot_stack_testing.fake_realsense    (the pyrealsense2 module)

`rig.driver=fake_interbotix` or a calibration file with `type: fake_realsense` runs the real-rig nodes
without hardware (HIL tests, trying a profile before the robot arrives). The product package never imports
this one: its factories (robot_stack/arms/factory.py, robot_stack/cameras/factory.py) name these modules by
dotted path and import them only when a config asks for a fake (tests/test_import_boundaries.py).
"""
