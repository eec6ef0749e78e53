"""Camera node: publishes each camera's frames as `camera/<name>/image_raw` + `camera_info` at its rate.

Thin adapter over `robot_stack.cameras.Camera`. Frames are stamped with their capture time; receivers
add their own receive time (both are recorded, DESIGN.md §3 Observations).
"""

from __future__ import annotations

from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String

from robot_stack.cameras.camera import Camera
from robot_stack.ros import conversions as conv
from robot_stack.ros.qos import SENSOR, STATUS


class CameraNode(Node):
    def __init__(self, cameras: dict[str, Camera], fps_hz: dict[str, float], namespace: str,
                 fov_y_deg: dict[str, float] | None = None, intrinsics: dict[str, dict] | None = None):
        super().__init__("cameras", namespace=namespace)
        self.cameras = cameras
        self.fov_y_deg = fov_y_deg or {}
        # Calibrated intrinsics (calibration/<rig>/<camera>.yaml) win over the FoV-derived sim pinhole.
        self.intrinsics = intrinsics or {}
        for name, intr in self.intrinsics.items():  # a bad file fails at start, not on every frame
            cam = cameras[name]
            conv.camera_info_msg(cam.height, cam.width, 0, name, intrinsics=intr)
        self.frames_published = {name: 0 for name in cameras}
        self._pubs = {}
        for name in cameras:
            self._pubs[name] = (self.create_publisher(Image, f"camera/{name}/image_raw", SENSOR),
                                self.create_publisher(CameraInfo, f"camera/{name}/camera_info", SENSOR))
            self.create_timer(1.0 / fps_hz[name], lambda name=name: self._publish(name))
        # Published-frame counters let any subscriber measure its own drop rate exactly.
        self.pub_status = self.create_publisher(String, "camera/status", STATUS)
        self.create_timer(1.0, lambda: self.pub_status.publish(conv.json_msg({"published": self.frames_published})))

    def _publish(self, name: str) -> None:
        cam = self.cameras[name]
        frame = cam.read()
        img_pub, info_pub = self._pubs[name]
        frame_id = f"{name}_optical_frame"
        img_pub.publish(conv.image_to_msg(frame.image, frame.capture_ns, frame_id))
        info_pub.publish(conv.camera_info_msg(cam.height, cam.width, frame.capture_ns, frame_id,
                                              self.fov_y_deg.get(name), self.intrinsics.get(name)))
        self.frames_published[name] += 1
