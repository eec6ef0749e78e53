"""ChArUco board detection, camera intrinsics and board poses (OpenCV >= 4.7 aruco API).

OpenCV 5 removed `aruco.calibrateCameraCharuco`; the replacement used here is the documented path:
`CharucoDetector.detectBoard` -> `CharucoBoard.matchImagePoints` (3-D board points <-> pixels) ->
`cv2.calibrateCamera` / `cv2.solvePnP`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BoardSpec:
    squares_x: int = 5
    squares_y: int = 7
    square_m: float = 0.03
    marker_m: float = 0.022
    dictionary: str = "DICT_5X5_100"

    def board(self):
        import cv2

        d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        return cv2.aruco.CharucoBoard((self.squares_x, self.squares_y), self.square_m, self.marker_m, d)

    def image(self, px_per_square: int = 80, margin_px: int = 0) -> np.ndarray:
        """The printable board, uint8 (H, W) gray, exactly squares * px_per_square pixels plus margins."""
        size = (self.squares_x * px_per_square + 2 * margin_px, self.squares_y * px_per_square + 2 * margin_px)
        return self.board().generateImage(size, marginSize=margin_px)


def detect(spec: BoardSpec, image: np.ndarray, min_corners: int = 6):
    """(object_points (N, 3) m, image_points (N, 2) px) of the visible ChArUco corners, or None."""
    import cv2

    board = spec.board()
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    corners, ids, _, _ = cv2.aruco.CharucoDetector(board).detectBoard(gray)
    if ids is None or len(ids) < min_corners:
        return None
    obj, img = board.matchImagePoints(corners, ids)
    return obj.reshape(-1, 3).astype(np.float64), img.reshape(-1, 2).astype(np.float64)


def calibrate_intrinsics(spec: BoardSpec, images: list[np.ndarray]) -> dict:
    """Camera matrix + distortion from several board views. Returns {K, dist_coeffs, rms_px, n_views}."""
    import cv2

    obj_pts, img_pts, size = [], [], None
    for im in images:
        found = detect(spec, im)
        size = (im.shape[1], im.shape[0])
        if found is not None:
            obj_pts.append(found[0].astype(np.float32))
            img_pts.append(found[1].astype(np.float32))
    if len(obj_pts) < 4:
        raise ValueError(f"the board was found in {len(obj_pts)} of {len(images)} images; need >= 4 varied views "
                         "(tilt the board, fill the image corners)")
    rms, k, dist, _, _ = cv2.calibrateCamera(obj_pts, img_pts, size, None, None)
    return {"K": np.asarray(k), "dist_coeffs": np.asarray(dist).ravel(), "rms_px": float(rms),
            "n_views": len(obj_pts), "width": size[0], "height": size[1]}


def board_pose(spec: BoardSpec, image: np.ndarray, k: np.ndarray, dist: np.ndarray | None = None):
    """T_camera_board (4, 4) (OpenCV camera frame: x right, y down, z forward) and reprojection rms px, or None."""
    import cv2

    found = detect(spec, image)
    if found is None:
        return None
    obj, img = found
    dist = np.zeros(5) if dist is None else np.asarray(dist, dtype=np.float64)
    ok, rvec, tvec = cv2.solvePnP(obj, img, k, dist, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return None
    proj, _ = cv2.projectPoints(obj, rvec, tvec, k, dist)
    rms = float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - img) ** 2, axis=1))))
    t = np.eye(4)
    t[:3, :3] = cv2.Rodrigues(rvec)[0]
    t[:3, 3] = tvec.ravel()
    return t, rms
