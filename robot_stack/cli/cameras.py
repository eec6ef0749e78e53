"""`robot-stack cameras list`: connected RealSense devices (serials) and V4L2 cameras (stable by-id paths).

Copy the serial or /dev/v4l/by-id path into calibration/<rig>/<camera>.yaml.
"""

from __future__ import annotations

import argparse
import glob
import os


def list_cameras(fake_realsense: list[str] | None = None) -> list[dict]:
    found: list[dict] = []
    if fake_realsense:
        from robot_stack.cameras.factory import CAMERA_MODULES
        from robot_stack.cameras.realsense import list_devices
        from robot_stack.registry import import_registering_module

        # The fake SDK is test support (robot_stack_testing): named by the camera factory, imported only here.
        fake = import_registering_module(CAMERA_MODULES["fake_realsense"][0], "camera type 'fake_realsense'")

        for s in fake_realsense:
            fake.add_device(s)
        found += [{"type": "fake_realsense", **d} for d in list_devices(fake.module())]
    else:
        try:
            from robot_stack.cameras.realsense import import_pyrealsense2, list_devices

            found += [{"type": "realsense", **d} for d in list_devices(import_pyrealsense2())]
        except ImportError as e:
            found.append({"type": "realsense", "note": str(e).split(",")[0]})
    # by-id paths survive reboots and re-plugging; /dev/videoN numbers do not.
    by_id = {os.path.realpath(p): p for p in glob.glob("/dev/v4l/by-id/*-video-index0")}
    for dev in sorted(glob.glob("/dev/video*")):
        found.append({"type": "opencv", "device": by_id.get(os.path.realpath(dev), dev)})
    return found


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="robot-stack cameras", description=__doc__)
    p.add_argument("action", choices=["list"])
    p.add_argument("--fake-realsense", nargs="*", default=None, help="list fake RealSense serials (tests, demos)")
    args = p.parse_args(argv)
    rows = list_cameras(args.fake_realsense)
    for r in rows:
        if r["type"].endswith("realsense") and "serial" in r:
            print(f"{r['type']:15s} serial={r['serial']}  {r['name']}  fw {r['firmware']}")
        elif "note" in r:
            print(f"{r['type']:15s} (not available: {r['note']})")
        else:
            print(f"{r['type']:15s} device={r['device']}")
    if not rows:
        print("no cameras found")
    return 0
