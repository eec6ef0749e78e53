"""PolicyRunner: acts every control tick and swaps in new checkpoints between two ticks, never blocking one.

    policy_update ─► request_load(update) ─► [loader thread] manifest sha256 == update.sha256?
                       ─► load_policy (file hashes, schema vs live robot, safetensors)
                       ─► first forward pass on a synthetic observation (finite, within action bounds)
                       ─► staged  ──or──►  "rejected" event (the active policy stays)
    control tick  ─► step(obs): staged? swap it in atomically ("activated" event)
                       ─► select_action(obs) ─► float32 (A,) physical action, or None (no policy / non-finite)

Loading, hashing and the first forward pass run on the loader thread, so a tick only ever pays for one
pointer swap. Events go to `events` (a queue the ROS node drains) and to the optional `on_event(kind,
payload)` callback; "activated" is emitted on the control thread inside step(), "rejected" on the loader
thread, so a callback must be quick and thread-safe (a ROS publish is). ROS-free; the inference node is
an adapter over this class.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from robot_stack.inference.manifest import STATUS_OK, STATUS_REJECTED, PolicyActive, PolicyUpdate, make_active
from robot_stack.policies.checkpoint import (
    MANIFEST_FILE,
    CheckpointError,
    Manifest,
    PolicySchema,
    load_policy,
    sha256_file,
)

if TYPE_CHECKING:
    from robot_stack.policies.base import Policy

log = logging.getLogger(__name__)

EVENT_ACTIVATED = "activated"
EVENT_REJECTED = "rejected"
# Slack on the first-action bounds check: float32 round-off at the ends of [q01, q99], not a safety margin.
_BOUND_TOLERANCE = 1e-4

Loader = Callable[..., "tuple[Policy, Manifest]"]


@dataclass
class RunnerStats:
    ticks: int = 0                  # step() calls
    swaps: int = 0                  # policies activated
    rejected: int = 0               # updates refused (hash, schema, load or first forward pass)
    held_nonfinite: int = 0         # ticks whose action was non-finite or misshapen, so not returned
    max_step_latency_s: float = 0.0
    last_step_latency_s: float = 0.0


def synthetic_observation(schema: PolicySchema, seed: int = 0) -> dict[str, np.ndarray]:
    """An observation with every key of `schema`: random uint8 images, zeros for float keys (state).

    The first forward pass only has to show that the weights produce finite, in-range actions for an
    input of the right shapes; it does not need realistic content."""
    rng = np.random.default_rng(seed)
    obs = {}
    for key, spec in schema.observation.items():
        dtype = np.dtype(spec.dtype)
        if dtype.kind in "ui":
            obs[key] = rng.integers(0, min(np.iinfo(dtype).max, 255) + 1, size=spec.shape, dtype=dtype)
        else:
            obs[key] = np.zeros(spec.shape, dtype=dtype)
    return obs


class PolicyRunner:
    """Runs the active policy each tick and swaps checkpoints in between ticks (see module docstring).

    expected_schema: the live robot's observation/action schema; checkpoints must match it.
    action_limits: optional physical (low, high), (A,) each, every first action must lie in (e.g. the arm's
    per-step clamp); the policy's own normaliser bounds are always checked.
    loader: how a checkpoint is loaded (`load_policy`); tests wrap it to control timing.
    """

    def __init__(self, expected_schema: PolicySchema, device: str = "cpu",
                 on_event: Callable[[str, PolicyActive], None] | None = None,
                 action_limits: tuple[np.ndarray, np.ndarray] | None = None, loader: Loader = load_policy):
        self.expected_schema = expected_schema
        self.device = device
        self.on_event = on_event
        self.action_limits = None if action_limits is None else tuple(np.asarray(x, np.float64) for x in action_limits)
        self.events: queue.Queue[tuple[str, PolicyActive]] = queue.Queue()
        self._loader = loader
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: PolicyUpdate | None = None      # newest requested, not yet picked up by the loader
        self._loading = False
        self._staged: tuple[Policy, PolicyUpdate] | None = None
        self._policy: Policy | None = None
        self._active: PolicyUpdate | None = None
        self._stats = RunnerStats()
        self._closed = False
        self._thread: threading.Thread | None = None

    # ---- control thread ---------------------------------------------------------------------------
    def step(self, obs: dict[str, np.ndarray]) -> np.ndarray | None:
        """One control tick: swap in a staged policy first, then act. Returns float32 (A,) physical action,
        or None when there is no policy yet or its action is non-finite (the arm's watchdog then holds)."""
        t0 = time.perf_counter()
        self.activate_staged()
        action = None
        if self._policy is not None:
            action = np.asarray(self._policy.select_action(obs), dtype=np.float32)
            if action.shape != self.expected_schema.action.shape or not np.all(np.isfinite(action)):
                self._stats.held_nonfinite += 1
                log.error("policy v%d produced %s; holding (no action this tick)", self._active.version, action)
                action = None
        latency = time.perf_counter() - t0
        self._stats.ticks += 1
        self._stats.last_step_latency_s = latency
        self._stats.max_step_latency_s = max(self._stats.max_step_latency_s, latency)
        return action

    def activate_staged(self) -> bool:
        """Swap in a verified, staged policy now. Call only from the control thread between ticks: `step()`
        does so first thing; a node whose policy is idle (not ticking) calls it so the new version is
        reported active before anyone enables control. Returns True if a swap happened."""
        with self._lock:
            staged, self._staged = self._staged, None
        if staged is None:
            return False
        policy, update = staged
        policy.reset()
        self._policy, self._active = policy, update
        self._stats.swaps += 1
        log.info("activated policy %s v%d (%s)", update.policy_type, update.version, update.path)
        self._emit(EVENT_ACTIVATED, make_active(update, STATUS_OK))
        return True

    @property
    def active(self) -> PolicyUpdate | None:
        return self._active

    @property
    def active_version(self) -> int | None:
        return None if self._active is None else self._active.version

    @property
    def stats(self) -> RunnerStats:
        return replace(self._stats)

    # ---- loading ----------------------------------------------------------------------------------
    def request_load(self, update: PolicyUpdate) -> None:
        """Queue `update` for loading in the background; a newer request replaces one not yet started.
        Re-announcements of the active version (transient-local topics replay) are ignored."""
        with self._lock:
            if self._closed:
                raise RuntimeError("PolicyRunner is closed")
            if self._active is not None and (update.version, update.sha256) == (self._active.version,
                                                                                 self._active.sha256):
                log.debug("policy v%d is already active; ignoring the repeated update", update.version)
                return
            self._pending = update
            if self._thread is None:
                self._thread = threading.Thread(target=self._load_loop, name="policy-loader", daemon=True)
                self._thread.start()
            self._wake.notify_all()

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Block until no load is pending or running; True if idle (staged policies swap at the next step)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._lock:
            while self._pending is not None or self._loading:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._wake.wait(remaining)
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        with self._lock:
            self._closed = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _load_loop(self) -> None:
        while True:
            with self._lock:
                while self._pending is None and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                update, self._pending = self._pending, None
                self._loading = True
            try:
                policy = self._load_and_check(update)
            except Exception as e:  # noqa: BLE001 - any failure rejects this checkpoint, never the runner
                reason = f"{type(e).__name__}: {e}"
                self._stats.rejected += 1
                log.error("rejected policy %s v%d (%s): %s; keeping v%s", update.policy_type, update.version,
                          update.path, reason, self.active_version)
                self._emit(EVENT_REJECTED, make_active(update, STATUS_REJECTED, reason))
                policy = None
            with self._lock:
                if policy is not None:
                    self._staged = (policy, update)
                self._loading = False
                self._wake.notify_all()

    def _load_and_check(self, update: PolicyUpdate) -> Policy:
        path = Path(update.path)
        actual = sha256_file(path / MANIFEST_FILE) if (path / MANIFEST_FILE).is_file() else "(missing)"
        if actual != update.sha256:
            raise CheckpointError(f"{path / MANIFEST_FILE}: sha256 {actual[:12]}… is not the announced "
                                  f"{update.sha256[:12]}…; the directory changed after it was announced, "
                                  "re-announce it from the learner")
        policy, manifest = self._loader(path, expected_schema=self.expected_schema, device=self.device)
        if (manifest.version, manifest.policy_type) != (update.version, update.policy_type):
            raise CheckpointError(f"{path}: manifest says {manifest.policy_type} v{manifest.version}, the update "
                                  f"announced {update.policy_type} v{update.version}; re-announce it")
        self._check_first_action(policy)
        return policy

    def _check_first_action(self, policy: Policy) -> None:
        action = np.asarray(policy.select_action(synthetic_observation(self.expected_schema)), dtype=np.float64)
        policy.reset()
        if action.shape != self.expected_schema.action.shape:
            raise CheckpointError(f"first action has shape {action.shape}, the robot expects "
                                  f"{self.expected_schema.action.shape}")
        if not np.all(np.isfinite(action)):
            raise CheckpointError(f"first action is not finite: {action.tolist()}; the weights are broken, "
                                  "retrain or deploy an earlier version")
        bounds = [("the policy's normaliser range", policy.action_bounds())]
        if self.action_limits is not None:
            bounds.append(("the runner's action limits", self.action_limits))
        for what, (low, high) in bounds:
            tol = _BOUND_TOLERANCE * (1.0 + np.maximum(np.abs(low), np.abs(high)))
            bad = np.flatnonzero((action < low - tol) | (action > high + tol))
            if bad.size:
                raise CheckpointError(f"first action {action.tolist()} leaves {what} in dims {bad.tolist()} "
                                      f"(low {np.asarray(low)[bad].tolist()}, high {np.asarray(high)[bad].tolist()})")

    def _emit(self, kind: str, payload: PolicyActive) -> None:
        self.events.put((kind, payload))
        if self.on_event is not None:
            try:
                self.on_event(kind, payload)
            except Exception:  # a failing reporter must not stop control or loading
                log.exception("on_event callback failed for %s", kind)
