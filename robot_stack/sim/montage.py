"""Montage of an expert rollout: rows = cameras (front, wrist), columns = a few steps of the scripted expert.

Used by `robot-stack sim view` and for the per-task pictures in docs/sim/.
"""

from __future__ import annotations

import numpy as np


def expert_montage(arm: str, task: str, size_px: int = 128, n_frames: int = 5, seed: int = 0,
                   cameras: tuple[str, ...] = ("front", "wrist"), sim_kwargs: dict | None = None) -> np.ndarray:
    """uint8 (len(cameras) * size_px, n_frames * size_px, 3): frames evenly spaced over one expert episode."""
    from robot_stack.sim.env import SimConfig, TabletopSim
    from robot_stack.sim.expert import ScriptedExpert

    if n_frames < 2:
        raise ValueError(f"n_frames must be >= 2 (first and last step), got {n_frames}")
    sim = TabletopSim(SimConfig(arm=arm, task=task, image_size_px=size_px, cameras=cameras, seed=seed,
                                **(sim_kwargs or {})))
    try:
        expert = ScriptedExpert(task, seed=seed)
        frames = [[sim.render(c) for c in cameras]]
        while not expert.done and len(frames) <= sim.max_episode_steps:
            sim.apply_ee_delta(expert.act(sim))
            frames.append([sim.render(c) for c in cameras])
        picks = np.linspace(0, len(frames) - 1, n_frames).round().astype(int)
        rows = [np.concatenate([frames[i][r] for i in picks], axis=1) for r in range(len(cameras))]
        return np.concatenate(rows, axis=0)
    finally:
        sim.close()


def save_png(image: np.ndarray, path) -> None:
    from PIL import Image

    Image.fromarray(image).save(str(path), optimize=True)
