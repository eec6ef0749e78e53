import os

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")


@pytest.fixture
def rig_client():
    """A RigClient in this test process; its ROS context is shut down afterwards."""
    from robot_stack.ros.rig_client import RigClient

    clients = []

    def make(namespace="/wx250s"):
        c = RigClient(namespace, name="hil_test")
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()
