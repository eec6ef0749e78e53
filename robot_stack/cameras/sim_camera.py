"""A MuJoCo camera as a `Camera`: renders the shared TabletopSim offscreen (EGL/OSMesa on CPU)."""

from __future__ import annotations

import time

from robot_stack.cameras.camera import CAMERAS, Camera, Frame


@CAMERAS.register("sim")
class SimCamera(Camera):
    def __init__(self, sim, name: str, height: int, width: int):
        if (height, width) != (sim.config.image_size_px, sim.config.image_size_px):
            raise ValueError(
                f"sim camera {name!r} is {height}x{width} but the sim renders {sim.config.image_size_px}px square "
                "images; set the rig's camera height and width equal (rig.cameras.<name>.height/width)"
            )
        self.sim, self.name, self.height, self.width = sim, name, height, width

    def read(self) -> Frame:
        # The sim only changes on arm ticks, so the render reflects the state at this instant.
        return Frame(self.sim.render(self.name), time.time_ns())
