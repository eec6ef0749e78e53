"""Incremental per-key statistics: a small partial summary per committed episode, combined on read.

    commit ──► partial_stats(x (T, D)) ──► meta/episode_stats[i] (JSON)        one small row per episode
    stats() ──► combine(partials of the non-excluded episodes) ──► mean, std, min, max, q01, q99, count

Why partials: recomputing statistics over the whole store for every training run reads every action and state
again; the partials are a few KB per episode and combining them is O(n_episodes). count/sum/sumsq/min/max
combine exactly. Quantiles cannot be combined exactly from a fixed-size summary: each partial keeps the
episode's own values when T <= SKETCH_SIZE (exact then) and otherwise ~SKETCH_SIZE order statistics of each
dimension at bin centres (finer bins in the tails), each weighted by its bin's share of T; the combined weighted quantile is then within
about one sketch bin of the exact value (tests/store/test_stats.py checks it against numpy).
"""

from __future__ import annotations

import json

import numpy as np

SKETCH_SIZE = 128  # order statistics kept per dimension per episode
# Bin edges in probability: uniform over [0, 1] plus finer bins in both 3% tails, where q01/q99 live (the
# normaliser's clip range), so the tails are resolved ~5x better than with uniform bins of the same count.
_EDGES = np.unique(np.round(np.concatenate([np.linspace(0, 1, SKETCH_SIZE - 31),
                                             np.linspace(0, 0.03, 17), np.linspace(0.97, 1, 17)]), 12))


def stats_keys(features: dict) -> list[str]:
    """Keys that get partial statistics: float features (action, state, reward...), never images/timestamps."""
    return [k for k, spec in features.items() if np.dtype(spec.dtype).kind == "f"]


def partial_stats(x: np.ndarray) -> dict:
    """x: (T, *shape) -> a JSON-able partial summary (values flattened to (T, D))."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    t = len(x)
    srt = np.sort(x, axis=0)
    if t <= SKETCH_SIZE:
        sketch, exact = srt, True
    else:
        # order statistics at the centres of the probability bins, each weighted by its bin's share of T
        centres = (_EDGES[1:] + _EDGES[:-1]) / 2
        pos = np.minimum((centres * t).astype(np.int64), t - 1)
        sketch, exact = srt[pos], False
    weights = np.ones(len(sketch)) if exact else np.diff(_EDGES) * t
    return {"count": t, "sum": x.sum(0).tolist(), "sumsq": np.square(x).sum(0).tolist(),
            "min": srt[0].tolist(), "max": srt[-1].tolist(), "sketch": sketch.tolist(),
            "weights": np.round(weights, 6).tolist(), "exact": exact}


def dumps(partials: dict[str, dict]) -> str:
    return json.dumps(partials, allow_nan=False, separators=(",", ":"))


def loads(s: str) -> dict[str, dict]:
    return json.loads(s) if s else {}


def combine(parts: list[dict], shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Combine partial summaries of one key into mean, std, min, max, q01, q99 (each `shape`) and count."""
    if not parts:
        raise ValueError("no partial statistics to combine")
    count = sum(int(p["count"]) for p in parts)
    s = np.sum([p["sum"] for p in parts], axis=0)
    ss = np.sum([p["sumsq"] for p in parts], axis=0)
    mean = s / count
    # sumsq/count - mean^2 loses precision when |mean| >> std; fine for actions/states (|mean| ~ std), and
    # clipped at 0 so rounding can never give a NaN std.
    var = np.maximum(ss / count - mean**2, 0.0)
    mn = np.min([p["min"] for p in parts], axis=0)
    mx = np.max([p["max"] for p in parts], axis=0)
    if all(p["exact"] for p in parts):
        allx = np.concatenate([np.asarray(p["sketch"], dtype=np.float64).reshape(-1, len(mean)) for p in parts])
        q01, q99 = np.quantile(allx, [0.01, 0.99], axis=0)
    else:
        q01, q99 = _weighted_quantiles(parts, len(mean), (0.01, 0.99))
    out = {"mean": mean, "std": np.sqrt(var), "min": mn, "max": mx, "q01": q01, "q99": q99}
    out = {k: np.asarray(v, dtype=np.float64).reshape(shape) for k, v in out.items()}
    out["count"] = np.int64(count)
    return out


def _weighted_quantiles(parts: list[dict], dim: int, qs: tuple[float, ...]) -> list[np.ndarray]:
    vals = np.concatenate([np.asarray(p["sketch"], dtype=np.float64).reshape(-1, dim) for p in parts])
    w = np.concatenate([np.asarray(p["weights"], dtype=np.float64) for p in parts])
    out = [np.empty(dim) for _ in qs]
    for d in range(dim):
        order = np.argsort(vals[:, d], kind="stable")
        v, cw = vals[order, d], np.cumsum(w[order])
        # each sketch value stands for the centre of its weight mass (the same midpoint rule it was taken with)
        centres = (cw - w[order] / 2) / cw[-1]
        for j, q in enumerate(qs):
            out[j][d] = np.interp(q, centres, v)
    return out
