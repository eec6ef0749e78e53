"""calibration/<rig>/<device>.yaml: per-device site data (serials, IPs, intrinsics, extrinsics, home pose,
workspace bounds), each written with the date it was measured and its residuals.

    calibration/widowx/arm.yaml      {date, home_joints_rad, workspace_min_m, workspace_max_m, max_effort, ...}
    calibration/widowx/front.yaml    {date, type, serial, intrinsics: {...}, T_base_camera: 4x4, residuals: {...}}

Code never holds these values (DESIGN.md §4.3); a missing file is an operator error naming the fix, and
an old calibration logs a warning (cameras get bumped, arms get re-homed).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import yaml

from robot_stack.conf import ConfigError

log = logging.getLogger(__name__)
DEFAULT_MAX_AGE_DAYS = 30.0


class CalibrationError(ConfigError):
    """Missing or unusable calibration data; the message names the file and how to produce it."""


def device_path(calib_dir: str | os.PathLike, device: str) -> Path:
    return Path(calib_dir) / f"{device}.yaml"


def load_device(calib_dir: str | os.PathLike, device: str, max_age_days: float = DEFAULT_MAX_AGE_DAYS,
                today: dt.date | None = None) -> dict:
    """Read one device's calibration; warn when older than max_age_days. Raises CalibrationError if missing."""
    path = device_path(calib_dir, device)
    if not path.is_file():
        raise CalibrationError(
            f"no calibration for {device!r}: {path} does not exist. Copy the template from "
            f"calibration/examples/<rig>/{device}.yaml and fill in the site values (serials, IPs), then run "
            "`robot-stack calibrate workspace|home|intrinsics|handeye rig=...` to measure the rest")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise CalibrationError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise CalibrationError(f"{path}: expected a mapping")
    todo = [k for k, v in data.items() if isinstance(v, str) and v.strip().upper() == "FILL_ME"]
    if todo:
        raise CalibrationError(f"{path}: fill in the site values for {todo}")
    age = staleness_days(data, today)
    if age is None:
        log.warning("%s has no `date`: cannot tell how old this calibration is", path)
    elif age > max_age_days:
        log.warning("%s is %.0f days old (> %.0f): re-run the calibration if the camera or arm was moved",
                    path, age, max_age_days)
    data["_path"] = str(path)
    return data


def staleness_days(data: dict, today: dt.date | None = None) -> float | None:
    raw = data.get("date")
    if raw is None:
        return None
    date = raw if isinstance(raw, dt.date) else dt.date.fromisoformat(str(raw)[:10])
    return float(((today or dt.date.today()) - date).days)


def save_device(calib_dir: str | os.PathLike, device: str, data: dict, residuals: dict | None = None,
                today: dt.date | None = None) -> Path:
    """Write (atomically) data + date + residuals; merges into an existing file (keeps serials etc.)."""
    path = device_path(calib_dir, device)
    path.parent.mkdir(parents=True, exist_ok=True)
    merged = {}
    if path.is_file():
        merged = yaml.safe_load(path.read_text()) or {}
    merged.update(_plain(data))
    merged["date"] = (today or dt.date.today()).isoformat()
    if residuals is not None:
        merged["residuals"] = _plain(residuals)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".yaml.tmp")
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(merged, f, sort_keys=False)
    os.replace(tmp, path)
    return path


def _plain(v):
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.ndarray):
        return _plain(v.tolist())
    if isinstance(v, np.generic):
        return v.item()
    return v
