"""Batch mixing of data pools: PTR's prior/target schedule (§1 "Data mixing") and Cal-QL's offline/online mix (§0).

    pools [A, B], ratio r ─► floor(r·B_size) samples from A, the rest from B ─► one concatenated batch
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def split_batch(batch_size: int, ratio: float) -> tuple[int, int]:
    """(n_first, n_second) with n_first = floor(ratio·batch_size) (PTR MixingReplayBufferParallel: floor(0.9·B) prior)."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"mixing ratio must be in [0, 1], got {ratio}")
    n_first = int(math.floor(ratio * batch_size + 1e-9))
    return n_first, batch_size - n_first


@dataclass
class PriorTargetSchedule:
    """PTR: 100 % prior (multi-task) data for the first `switch_step` steps, then `ratio_after` prior (0.9 → 90/10).

    `ratio_at(step)` is the fraction of each batch drawn from the prior pool."""

    switch_step: int = 160_000           # PTR offline_finetuning_start
    ratio_before: float = 1.0
    ratio_after: float = 0.9             # PTR target_mixing_ratio

    def ratio_at(self, step: int) -> float:
        return self.ratio_before if step < self.switch_step else self.ratio_after


def offline_online_ratio(mixing_ratio: float, n_offline: int, n_online: int) -> float:
    """Fraction of each online-phase batch drawn from offline data: `mixing_ratio` (Cal-QL default 0.5), or, when
    negative, N_off / (N_off + N_on) (§0: "If mixing_ratio<0, the ratio becomes N_off/(N_off+N_on)")."""
    if mixing_ratio >= 0:
        return mixing_ratio
    total = n_offline + n_online
    return n_offline / total if total else 1.0
