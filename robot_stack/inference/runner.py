"""PolicyRunner: acts every control tick and swaps in new checkpoints between two ticks, never blocking one.

    policy_update ─► request_load(update) ─► [loader thread] path an http(s) URL? fetch_checkpoint into the cache
                       ─► manifest sha256 == update.sha256?
                       ─► load_policy (file hashes, schema vs live robot, safetensors)
                       ─► first forward pass on a synthetic observation (finite, within action bounds)
                       ─► staged  ──or──►  "rejected" event (the active policy stays)
    control tick  ─► step(obs): staged? swap it in atomically ("activated" event)
                       ─► select_action(obs) ─► float32 (A,) physical action, or None (no policy / non-finite)

Downloading (a learner on another machine, robot_stack.policies.remote), loading, hashing and the first
forward pass run on the loader thread, so a tick only ever pays for one pointer swap; a dead or slow
learner server is a rejected update, never a late tick.

Admission (checked in request_load, before anything is read; DESIGN §3 "Checkpoints"):
  - the checkpoint directory, and every file in it after resolving symlinks and `..`, lies under one of the
    configured `checkpoint_roots` (a path outside them is refused, naming the path and the roots); an
    http(s) URL instead lies under one of `checkpoint_urls` and is downloaded into `checkpoint_cache_dir`
    (the policy_update's sha256 pins every downloaded byte);
  - its policy_type is the configured one (or, if none is configured, the active one's);
  - its version is above every version activated so far for that policy type: versions only move forward,
    and `rollback()` is the only way back.

Runtime faults (DESIGN §3 "Policy interface": never kill the node). An exception in select_action, or
`max_bad_actions` non-finite / misshapen / out-of-limits actions in a row, make step() return None for
that tick (the arm's watchdog holds) and fall back to the version that ran before the last swap ("fault"
event, then "activated" for the fallback). With no such version the runner disables itself and holds
until a new version is loaded; `health()` says which and why. Events go to `events` (a queue the ROS node drains) and to the optional `on_event(kind,
payload)` callback; "activated" is emitted on the control thread inside step(), "rejected" on the loader
thread, so a callback must be quick and thread-safe (a ROS publish is). ROS-free; the inference node is
an adapter over this class.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from robot_stack.inference.manifest import STATUS_OK, STATUS_REJECTED, PolicyActive, PolicyUpdate, make_active
from robot_stack.policies.checkpoint import (
    CRITIC_KIND,
    MANIFEST_FILE,
    POLICY_KIND,
    CheckpointError,
    Manifest,
    PolicySchema,
    checkpoint_kind,
    load_critic,
    load_policy,
    sha256_file,
)
from robot_stack.policies.gripper import GripperHold
from robot_stack.policies.remote import fetch_checkpoint, is_remote, url_allowed

if TYPE_CHECKING:
    from robot_stack.inference.selection import ActionSelector
    from robot_stack.policies.base import Policy

log = logging.getLogger(__name__)

EVENT_ACTIVATED = "activated"
EVENT_REJECTED = "rejected"
EVENT_FAULT = "fault"          # the active version failed at runtime; it was replaced or the runner disabled

STATE_NO_POLICY = "no_policy"  # nothing loaded yet
STATE_ACTING = "acting"
STATE_DISABLED = "disabled_holding"  # the active version faulted and there was no good version to go back to
# Slack on the first-action bounds check: float32 round-off at the ends of [q01, q99], not a safety margin.
_BOUND_TOLERANCE = 1e-4

Loader = Callable[..., "tuple[Policy, Manifest]"]


@dataclass
class RunnerStats:
    ticks: int = 0                  # step() calls
    swaps: int = 0                  # policies activated
    rejected: int = 0               # updates refused (hash, schema, load or first forward pass)
    held_nonfinite: int = 0         # ticks whose action was non-finite, misshapen or out of limits, so not returned
    policy_exceptions: int = 0      # ticks whose select_action raised
    fallbacks: int = 0              # runtime faults that replaced the active version (or disabled the runner)
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
    checkpoint_roots: directories every policy_update path must resolve into (see module docstring). None
    disables the confinement (offline tools and tests that build their own checkpoints); the inference node
    always passes the profile's roots.
    policy_type: the only policy type accepted; None pins the type of the first activated version.
    max_bad_actions: non-finite / out-of-limits actions in a row before the runner falls back (>= 1).
    checkpoint_cache_dir: where checkpoints announced by URL are downloaded (None: URLs are refused).
    checkpoint_urls: URL prefixes a policy_update URL must lie under (None: any http(s) URL; the inference
    node always passes the configured list). fetch_timeout_s bounds one whole download.
    selector: an ActionSelector (robot_stack/inference/selection.py: V-GPS re-ranking, PA-RL) that picks the greedy
    action from the policy's samples instead of select_action; exploration still draws one sample. Its info dict of
    the last tick is `last_selection`.
    checkpoint_kind: "policy" (default) or "critic": a runner holding a critic (the V-GPS selector's critic slot,
    swapped independently of the policy) loads with load_critic and refuses policy checkpoints, and vice versa.
    """

    def __init__(self, expected_schema: PolicySchema, device: str = "cpu",
                 on_event: Callable[[str, PolicyActive], None] | None = None,
                 action_limits: tuple[np.ndarray, np.ndarray] | None = None, loader: Loader = load_policy,
                 checkpoint_roots: Sequence[str | Path] | None = None, policy_type: str | None = None,
                 max_bad_actions: int = 3, checkpoint_cache_dir: str | Path | None = None,
                 checkpoint_urls: Sequence[str] | None = None, fetch_timeout_s: float = 60.0,
                 selector: ActionSelector | None = None, checkpoint_kind: str = POLICY_KIND):
        if int(max_bad_actions) < 1:
            raise ValueError(f"max_bad_actions must be >= 1, got {max_bad_actions}; 1 falls back on the first bad "
                             "action, 3 tolerates two isolated glitches")
        self.checkpoint_roots = None if checkpoint_roots is None else tuple(
            os.path.realpath(os.fspath(r)) for r in checkpoint_roots)
        if self.checkpoint_roots is not None and not self.checkpoint_roots:
            raise ValueError("checkpoint_roots is empty, so every policy_update would be refused; name at least "
                             "one directory (inference.checkpoint_roots) or pass None to disable confinement")
        self.checkpoint_cache_dir = None if checkpoint_cache_dir is None else Path(checkpoint_cache_dir)
        self.checkpoint_urls = None if checkpoint_urls is None else tuple(str(u) for u in checkpoint_urls)
        self.fetch_timeout_s = float(fetch_timeout_s)
        self.policy_type = policy_type or None
        self.max_bad_actions = int(max_bad_actions)
        if checkpoint_kind not in (POLICY_KIND, CRITIC_KIND):
            raise ValueError(f"checkpoint_kind {checkpoint_kind!r}; known: {POLICY_KIND!r}, {CRITIC_KIND!r}")
        self.checkpoint_kind = checkpoint_kind
        if checkpoint_kind == CRITIC_KIND and loader is load_policy:
            loader = load_critic
        self.selector = selector
        self.last_selection: dict = {}
        self.expected_schema = expected_schema
        self.device = device
        self.on_event = on_event
        self.action_limits = None if action_limits is None else tuple(np.asarray(x, np.float64) for x in action_limits)
        self.events: queue.Queue[tuple[str, PolicyActive]] = queue.Queue()
        self._loader = loader
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: PolicyUpdate | None = None      # newest requested, not yet picked up by the loader
        self._pending_rollback: tuple[bool, str] = (False, "")  # (is it a rollback, reason) of `_pending`
        self._loading = False
        self._staged: tuple[Policy, PolicyUpdate, str, bool] | None = None
        self._policy: Policy | None = None
        self._active: PolicyUpdate | None = None
        # The version that ran before the last swap, kept loaded so a runtime fault falls back within a tick.
        self._previous: tuple[Policy, PolicyUpdate] | None = None
        self._good: list[PolicyUpdate] = []            # activated and not faulted, oldest first (rollback targets)
        self._max_version: dict[str, int] = {}         # highest version ever activated, per policy type
        self._bad_in_row = 0
        self._state = STATE_NO_POLICY
        self._reason = ""
        self._stats = RunnerStats()
        # Episode mode (practice): the task language a multi-task policy is conditioned on, and exploration
        # (one sampled action per tick with the gripper decision held, never a flickering grasp).
        self._language: str | None = None
        self._explore = False
        self._gripper = GripperHold(5)
        self._mode_dirty = True
        self._mode_policy: Policy | None = None
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
            action = self._act(obs)
        latency = time.perf_counter() - t0
        self._stats.ticks += 1
        self._stats.last_step_latency_s = latency
        self._stats.max_step_latency_s = max(self._stats.max_step_latency_s, latency)
        return action

    def set_episode_mode(self, language: str | None = None, explore: bool = False, gripper_hold_steps: int = 5) -> None:
        """Condition the next ticks on `language` (a multi-task policy's task; None = the policy's own default) and
        act greedily or explore (`sample_actions` + GripperHold). Takes effect at the next tick, also across swaps;
        call it at each episode start (it resets the held gripper). Any thread."""
        hold = GripperHold(gripper_hold_steps)  # validates the hold length here, in the caller's thread
        policy = self._policy
        tasks = tuple(getattr(policy.config, "tasks", ()) or ()) if policy is not None else ()
        if language and tasks and language not in tasks:  # refused now; a later swap is checked at its first tick
            raise ValueError(f"the active policy was not trained on task {language!r}; its tasks: {list(tasks)}")
        with self._lock:
            self._language = language or None
            self._explore = bool(explore)
            self._gripper = hold
            self._mode_dirty = True

    def _apply_mode(self, policy: Policy) -> None:
        """Put the episode mode into the active policy (control thread). A language the policy was not trained on
        or exploration with a policy that cannot sample is a wiring fault: raised, naming the fix."""
        with self._lock:
            language, explore, dirty = self._language, self._explore, self._mode_dirty
            self._mode_dirty = False
        swapped = policy is not self._mode_policy
        if not (dirty or swapped):
            return
        self._mode_policy = policy  # a swap mid-episode gets the language too, but keeps the held gripper
        cfg = policy.config
        tasks = tuple(getattr(cfg, "tasks", ()) or ())
        if language is not None:
            if tasks and language not in tasks:
                raise KeyError(f"policy v{self._active.version} was not trained on task {language!r}; its tasks: "
                               f"{list(tasks)}")
            if hasattr(cfg, "deploy_task"):
                cfg.deploy_task = language
        if explore and not callable(getattr(policy, "sample_actions", None)):
            raise TypeError(f"policy type {self._active.policy_type} cannot sample actions, so it cannot explore; "
                            "practise with a policy that has sample_actions (actor_critic)")
        if dirty:
            policy.reset()
            self._gripper.reset()
            if self.selector is not None:
                self.selector.reset()
                self.selector.set_task(language)

    def _select(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        # The gripper decision is held in both modes (DESIGN.md §3): a greedy policy's gripper flickers too where its
        # logit sits near 0 at the grasp, and loses the object (learning_findings.md, RLPD 18/30 -> 27/30 held).
        if self._explore:
            return self._gripper.apply(np.asarray(self._policy.sample_actions(obs, 1)[0], dtype=np.float32))
        if self.selector is not None:
            # Re-ranking picks among samples; the held gripper then applies to the chosen sample as to any action.
            action, self.last_selection = self.selector.select(self._policy, obs)
            return self._gripper.apply(np.asarray(action, dtype=np.float32))
        return self._gripper.apply(np.asarray(self._policy.select_action(obs), dtype=np.float32))

    def _act(self, obs: dict[str, np.ndarray]) -> np.ndarray | None:
        active = self._active
        self._apply_mode(self._policy)
        needed = self._policy.observation_keys()
        missing = [k for k in needed if k not in obs]
        if missing:
            # The caller's wiring fault (assembler vs schema), not the policy's: raised so it is fixed,
            # instead of retiring a good checkpoint.
            raise KeyError(f"observation lacks {missing}; policy v{active.version} reads {sorted(needed)}")
        try:
            action = np.asarray(self._select(obs), dtype=np.float32)
        except Exception as e:  # noqa: BLE001 - a policy bug must never kill the control loop
            self._stats.policy_exceptions += 1
            log.exception("policy %s v%d raised in select_action; holding this tick", active.policy_type,
                          active.version)
            self._fault(f"select_action raised {type(e).__name__}: {e}")
            return None
        problem = self._action_problem(action)
        if problem is None:
            self._bad_in_row = 0
            return action
        self._stats.held_nonfinite += 1
        self._bad_in_row += 1
        log.error("policy v%d produced %s (%s, %d in a row); holding (no action this tick)", active.version,
                  action.tolist(), problem, self._bad_in_row)
        if self._bad_in_row >= self.max_bad_actions:
            self._fault(f"{self._bad_in_row} bad actions in a row, last {problem}")
        return None

    def _action_problem(self, action: np.ndarray) -> str | None:
        if action.shape != self.expected_schema.action.shape:
            return f"shape {action.shape}, expected {self.expected_schema.action.shape}"
        if not np.all(np.isfinite(action)):
            return "non-finite"
        if self.action_limits is not None:
            low, high = self.action_limits
            tol = _BOUND_TOLERANCE * (1.0 + np.maximum(np.abs(low), np.abs(high)))
            bad = np.flatnonzero((action < low - tol) | (action > high + tol))
            if bad.size:
                return f"outside the runner's action limits in dims {bad.tolist()}"
        return None

    def _fault(self, reason: str) -> None:
        """The active version failed at runtime: fall back to the one before it, or disable and hold."""
        bad = self._active
        self._stats.fallbacks += 1
        self._bad_in_row = 0
        with self._lock:
            self._good = [u for u in self._good if u != bad]
        self._emit(EVENT_FAULT, make_active(bad, STATUS_REJECTED, reason))
        if self._previous is not None:
            policy, update = self._previous
            self._previous = None
            policy.reset()
            self._policy, self._active = policy, update
            self._state = STATE_ACTING
            self._reason = f"v{bad.version} faulted ({reason}); fell back to v{update.version}"
            log.error("policy %s v%d faulted (%s); fell back to v%d", bad.policy_type, bad.version, reason,
                      update.version)
            self._emit(EVENT_ACTIVATED, make_active(update, STATUS_OK, self._reason))
        else:
            self._policy = None
            self._state = STATE_DISABLED
            self._reason = (f"v{bad.version} faulted ({reason}) and no earlier good version is loaded; holding "
                            "with no policy until a new version arrives on policy_update")
            log.error("policy %s", self._reason)

    def health(self) -> dict:
        """{"state": no_policy | acting | disabled_holding, "reason": why (after a fault or rollback),
        "good_versions": rollback targets} for inference/status."""
        return {"state": self._state, "reason": self._reason, "good_versions": sorted(u.version for u in self._good)}

    def activate_staged(self) -> bool:
        """Swap in a verified, staged policy now. Call only from the control thread between ticks: `step()`
        does so first thing; a node whose policy is idle (not ticking) calls it so the new version is
        reported active before anyone enables control. Returns True if a swap happened."""
        with self._lock:
            staged, self._staged = self._staged, None
        if staged is None:
            return False
        policy, update, reason, rollback = staged
        policy.reset()
        # After an explicit rollback the version rolled back from is not a fallback target.
        self._previous = None if rollback or self._policy is None else (self._policy, self._active)
        self._policy, self._active = policy, update
        with self._lock:  # admission reads these on the loader thread
            self._max_version[update.policy_type] = max(update.version,
                                                        self._max_version.get(update.policy_type, 0))
            self._good = [u for u in self._good if u.version != update.version] + [update]
            if self.policy_type is None:
                self.policy_type = update.policy_type
        self._bad_in_row = 0
        self._state, self._reason = STATE_ACTING, reason
        self._stats.swaps += 1
        log.info("activated policy %s v%d (%s)%s", update.policy_type, update.version, update.path,
                 f": {reason}" if reason else "")
        self._emit(EVENT_ACTIVATED, make_active(update, STATUS_OK, reason))
        return True

    @property
    def active(self) -> PolicyUpdate | None:
        return self._active

    @property
    def policy(self) -> Policy | None:
        """The active model (control thread only: it changes at activate_staged). A critic runner's selector reads
        its critic here."""
        return self._policy

    @property
    def active_version(self) -> int | None:
        return None if self._active is None else self._active.version

    @property
    def stats(self) -> RunnerStats:
        return replace(self._stats)

    # ---- loading ----------------------------------------------------------------------------------
    def request_load(self, update: PolicyUpdate) -> bool:
        """Queue `update` for loading in the background; a newer request replaces one not yet started.
        Re-announcements of the active version (transient-local topics replay) are ignored. An update that
        fails admission (root, policy type, version; see module docstring) is refused right here with a
        "rejected" event. Returns True if the update was queued."""
        with self._lock:
            if self._closed:
                raise RuntimeError("PolicyRunner is closed")
            if self._active is not None and (update.version, update.sha256) == (self._active.version,
                                                                                 self._active.sha256):
                log.debug("policy v%d is already active; ignoring the repeated update", update.version)
                return False
            refusal = self._admission_problem(update, rollback=False)
        if refusal is not None:
            self._refuse(update, refusal)
            return False
        self._queue(update, rollback=False)
        return True

    def rollback(self, version: int | None = None, caller: str = "unknown") -> PolicyUpdate:
        """Go back to an earlier good version: the one before the active one, or `version`. The only way a
        version can move backwards; logged with `caller`. The load is verified like any other and swapped in
        between two ticks. Returns the update being loaded; raises ValueError naming the choices if none fits."""
        with self._lock:
            active = self._active
            candidates = [u for u in self._good if active is None or u.version != active.version]
            if version is not None:
                candidates = [u for u in candidates if u.version == version]
            if not candidates:
                have = sorted(u.version for u in self._good)
                raise ValueError(f"no good version to roll back to{f' named v{version}' if version else ''}: "
                                 f"active v{None if active is None else active.version}, good versions {have}; "
                                 "announce a checkpoint on policy_update instead")
            target = candidates[-1] if version is None else candidates[0]
            refusal = self._admission_problem(target, rollback=True)
        if refusal is not None:
            raise ValueError(f"rollback to v{target.version} refused: {refusal}")
        log.warning("rollback requested by %s: v%s -> v%d (%s)", caller, None if active is None else active.version,
                    target.version, target.path)
        self._queue(target, rollback=True, reason=f"rollback by {caller} from v"
                                                  f"{None if active is None else active.version}")
        return target

    def _admission_problem(self, update: PolicyUpdate, rollback: bool) -> str | None:
        """Why `update` may not be loaded (None if it may). Called with the lock held; reads no files
        other than resolving the path."""
        if self.policy_type is not None and update.policy_type != self.policy_type:
            return (f"policy_type {update.policy_type!r} is not the configured {self.policy_type!r}; deploy a "
                    f"{self.policy_type} checkpoint or restart inference with inference.policy_type="
                    f"{update.policy_type}")
        if not rollback:
            ceiling = self._max_version.get(update.policy_type, 0)
            if update.version <= ceiling:
                return (f"version {update.version} is not newer than v{ceiling}, the newest {update.policy_type} "
                        "already activated; versions only move forward, go back with the inference/rollback "
                        "service")
        return self._confinement_problem(update.path)

    def _confinement_problem(self, path: str) -> str | None:
        if is_remote(path):
            if self.checkpoint_cache_dir is None:
                return (f"path {path!r} is a URL but this runner has no checkpoint_cache_dir to download it into; "
                        "set inference.checkpoint_cache_dir")
            if self.checkpoint_urls is not None and not url_allowed(path, self.checkpoint_urls):
                return (f"URL {path!r} is not under the allowed checkpoint URLs {list(self.checkpoint_urls)}; add "
                        "the learner's server (http://HOST:PORT) to inference.checkpoint_urls")
            return None
        if self.checkpoint_roots is None:
            return None
        if not os.path.isabs(path):
            return (f"path {path!r} is relative; policy_update must carry an absolute path under one of the "
                    f"checkpoint roots {list(self.checkpoint_roots)}")
        real = os.path.realpath(path)
        if not any(_is_within(real, root) for root in self.checkpoint_roots):
            return (f"path {path!r} (resolves to {real!r}) is outside the allowed checkpoint roots "
                    f"{list(self.checkpoint_roots)}; save checkpoints under one of them or add its root to "
                    "inference.checkpoint_roots")
        return None

    def _refuse(self, update: PolicyUpdate, reason: str) -> None:
        self._stats.rejected += 1
        log.error("refused policy %s v%d (%s): %s; keeping v%s", update.policy_type, update.version, update.path,
                  reason, self.active_version)
        self._emit(EVENT_REJECTED, make_active(update, STATUS_REJECTED, reason))

    def _queue(self, update: PolicyUpdate, rollback: bool, reason: str = "") -> None:
        with self._lock:
            self._pending = update
            self._pending_rollback = (rollback, reason)
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
                rollback, reason = self._pending_rollback
                self._loading = True
            try:
                with self._lock:  # re-checked: a newer version may have been activated since it was queued
                    refusal = self._admission_problem(update, rollback=rollback)
                if refusal is not None:
                    raise CheckpointError(refusal)
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
                    self._staged = (policy, update, reason, rollback)
                self._loading = False
                self._wake.notify_all()

    def _load_and_check(self, update: PolicyUpdate) -> Policy:
        path = Path(update.path)
        if is_remote(update.path):
            # A directory this runner wrote into its own cache (no links, every hash checked against the
            # announced manifest), so the roots confinement below is for filesystem paths only.
            path = fetch_checkpoint(update.path, self.checkpoint_cache_dir, self.fetch_timeout_s,
                                    expected_sha256=update.sha256)
        elif self.checkpoint_roots is not None:
            # Resolve once and load from the resolved directory, so a symlink swapped after the admission
            # check cannot redirect the load; every file in it must resolve under the roots too (a symlinked
            # model.safetensors pointing elsewhere is refused).
            path = Path(os.path.realpath(path))
            problem = self._confinement_problem(str(path))
            for f in sorted(path.rglob("*")) if problem is None else ():
                if not any(_is_within(os.path.realpath(f), r) for r in self.checkpoint_roots):
                    problem = (f"{f} resolves to {os.path.realpath(f)!r}, outside the allowed checkpoint roots "
                               f"{list(self.checkpoint_roots)}; copy the file into the checkpoint instead of linking")
                    break
            if problem is not None:
                raise CheckpointError(problem)
        actual = sha256_file(path / MANIFEST_FILE) if (path / MANIFEST_FILE).is_file() else "(missing)"
        if actual != update.sha256:
            raise CheckpointError(f"{path / MANIFEST_FILE}: sha256 {actual[:12]}… is not the announced "
                                  f"{update.sha256[:12]}…; the directory changed after it was announced, "
                                  "re-announce it from the learner")
        policy, manifest = self._loader(path, expected_schema=self.expected_schema, device=self.device)
        if (manifest.version, manifest.policy_type) != (update.version, update.policy_type):
            raise CheckpointError(f"{path}: manifest says {manifest.policy_type} v{manifest.version}, the update "
                                  f"announced {update.policy_type} v{update.version}; re-announce it")
        kind = checkpoint_kind({"config": policy.config.to_dict()})
        if kind != self.checkpoint_kind:
            raise CheckpointError(f"{path} is a {kind} checkpoint but this runner holds a {self.checkpoint_kind}; "
                                  f"announce critics on critic_update and policies on policy_update")
        self._check_first_action(policy)
        return policy

    def _check_first_action(self, policy: Policy) -> None:
        obs = synthetic_observation(self.expected_schema)
        action = np.asarray(policy.select_action(obs), dtype=np.float64)
        policy.reset()
        if self.checkpoint_kind == CRITIC_KIND:  # what the critic is used for: scoring actions, finite
            q = np.asarray(policy.q_values(obs, action[None].astype(np.float32)), dtype=np.float64)
            if q.shape != (1,) or not np.all(np.isfinite(q)):
                raise CheckpointError(f"critic's first q_values is {q.tolist()} (shape {q.shape}), expected one finite "
                                      "value; the weights are broken, retrain or deploy an earlier critic")
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


def _is_within(path: str, root: str) -> bool:
    """True if the (already resolved) `path` is `root` or below it."""
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives / mixed absolute and relative
        return False
