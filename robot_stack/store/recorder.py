"""EpisodeRecorder: turns executed actions + assembled observations into committed store episodes.

    action_executed(stamp s, source) ──► ObservationAssembler.observation(s) ──► EpisodeWriter.add_step
        (incomplete yet: the step waits up to `obs_grace_s`, in order, for its frames; then it is dropped and counted)
    stop(success) ──► EpisodeWriter.commit (episode_ends written last = committed)

What gets recorded is what the arm node actually sent after clamping (DESIGN.md §3), paired with the
observation that command answered. Plain Python; the ROS recorder node is an adapter over it.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import deque
from typing import TYPE_CHECKING

import numpy as np

from robot_stack.store.align import ObservationAssembler
from robot_stack.store.schema import StoreError, StoreSchemaError
from robot_stack.store.writer import WriterOverrunError
from robot_stack.types import ACTION_KEY, SOURCES, capture_ns_key

if TYPE_CHECKING:
    from robot_stack.store import StoreSchema

log = logging.getLogger(__name__)


def parse_source(tag: str) -> tuple[str, str | None]:
    """'policy:bc_conv@v3' -> ('policy', 'bc_conv@v3'); 'sim:scripted_expert' -> ('sim', None)."""
    kind, _, detail = tag.partition(":")
    if kind not in SOURCES:
        raise ValueError(f"action source {tag!r} does not start with one of {SOURCES}")
    return kind, (detail or None) if kind == "policy" else None


class RecorderError(RuntimeError):
    """An episode command that does not fit the recorder's state; the message says what to do."""


class EpisodeRecorder:
    def __init__(self, store, assembler: ObservationAssembler, task: str, phase: str | None = None,
                 flush_every: int | None = None, obs_grace_s: float = 0.0):
        if obs_grace_s < 0:
            raise ValueError(f"obs_grace_s must be >= 0, got {obs_grace_s}")
        self.store = store
        self.assembler = assembler
        self.task = task
        self.phase = phase
        self.flush_every = flush_every  # None: the writer aligns background flushes to the image shard length
        self._active = False
        self._writer = None  # created at the first step, when the source (sim/teleop/policy) is known
        self._meta: dict = {}
        self.n_dropped = 0  # executed actions with no matching observation (a camera stalled)
        # On a live graph an action can overtake the frames it answered: a camera image is a large message on another
        # topic, the action a small one, and a loaded CPU delivers them out of order (CI lost the first step of a
        # practice attempt this way). Such a step waits, in order, up to obs_grace_s for them (0: decided at once).
        self.obs_grace_s = obs_grace_s
        self._pending: deque[tuple[np.ndarray, int, str, float]] = deque()
        self.last_committed: int | None = None
        # Set when the store failed (disk full, read-only disk): recording stopped, the reason says how to
        # resume. A failing store must not take the recorder process, and with it the rig, down (review C4).
        self.fault: str | None = None
        # Uncompressed bytes of one step: the free space asked for before recording resumes is this many
        # steps' worth (compression makes the real need smaller; a margin, not an estimate).
        self.step_bytes = sum(int(np.prod(f.shape, dtype=np.int64)) * np.dtype(f.dtype).itemsize
                              for f in store.schema.features.values())
        self.resume_steps = 1000

    @property
    def recording(self) -> bool:
        return self._active

    def start(self, notes: str = "") -> None:
        from robot_stack.store import EpisodeWriter

        if self.recording:
            raise RecorderError("an episode is already being recorded; stop or discard it first")
        if self.fault is not None:
            need, free = self.step_bytes * self.resume_steps, self._free_bytes()
            if free is not None and free < need:
                raise RecorderError(f"{self.fault} (still only {_mb(free)} free, need {_mb(need)})")
            log.info("resuming recording after: %s", self.fault)
            self.fault = None
        self._writer_cls = EpisodeWriter
        self._meta = {"task": self.task, "source": None, "phase": self.phase, "policy_version": None,
                      "interventions": 0, "start_time_ns": time.time_ns(), "notes": notes}
        self._active, self._writer = True, None
        self._pending.clear()
        self._versions: list[str] = []
        self._last_kind: str | None = None
        self.n_dropped = 0

    def on_executed(self, action: np.ndarray, stamp_ns: int, source: str, now: float | None = None) -> bool:
        """Record one step; True when it was recorded now. With obs_grace_s 0 a missing observation drops the step
        at once (returns False, counts a drop); otherwise the step waits for it (flush_pending)."""
        if not self.recording:
            return False
        parse_source(source)   # a bad tag is refused now, not when the step leaves the queue
        if self.obs_grace_s <= 0:
            return self._record(action, stamp_ns, source, self.assembler.observation(stamp_ns))
        self._pending.append((np.asarray(action), int(stamp_ns), source, time.monotonic() if now is None else now))
        recorded = self.flush_pending(now)
        # It cannot have expired on arrival: it left the queue only if it (and all before it) was recorded.
        return recorded > 0 and not (self._pending and self._pending[-1][1] == stamp_ns)

    @property
    def n_pending(self) -> int:
        """Executed steps waiting for their observation."""
        return len(self._pending)

    def flush_pending(self, now: float | None = None, final: bool = False) -> int:
        """Record the waiting steps whose observation is complete now, in order; a step still incomplete after
        obs_grace_s (or at all, when final) is dropped and counted. Returns the steps recorded."""
        now = time.monotonic() if now is None else now
        recorded = 0
        while self._pending and self.recording:
            action, stamp_ns, source, arrived = self._pending[0]
            obs = self.assembler.observation(stamp_ns)
            if obs is None and not (final or now - arrived >= self.obs_grace_s):
                break   # later steps wait behind it: episodes keep their order
            self._pending.popleft()
            recorded += self._record(action, stamp_ns, source, obs)
        return recorded

    def _record(self, action, stamp_ns: int, source: str, obs: dict | None) -> bool:
        """Write one step with its observation (None: counted as dropped)."""
        if obs is None:
            self.n_dropped += 1
            log.warning("no complete observation for stamp %d%s (dropped %d so far); is a camera stalled?",
                        stamp_ns, f" within {self.obs_grace_s * 1000:.0f} ms" if self.obs_grace_s else "",
                        self.n_dropped)
            return False
        kind, version = parse_source(source)
        if self._writer is None:
            self._meta.update(source=kind, policy_version=version)
            try:
                self._writer = self._writer_cls(self.store, dict(self._meta), flush_every=self.flush_every)
            except (StoreError, OSError) as e:
                self._store_failed(e, "starting the episode")
                return False
        elif kind != self._last_kind and kind != self._meta["source"]:
            # A takeover: someone other than the episode's controller (a person over the policy) starts
            # acting. One intervention per takeover, however many steps it lasts (per-episode metadata).
            self._meta["interventions"] += 1
        self._last_kind = kind
        if version is not None and version not in self._versions:
            # A hot swap mid-episode: the episode records every version that acted, in order.
            self._versions.append(version)
        obs[ACTION_KEY] = np.asarray(action, dtype=np.float32)
        obs[capture_ns_key("action")] = np.int64(stamp_ns)
        try:
            self._writer.add_step(obs)
        except (StoreError, OSError) as e:
            self._store_failed(e, "writing a step")
            return False
        return True

    def _free_bytes(self) -> int | None:
        try:
            return shutil.disk_usage(self.store.path).free
        except OSError:
            return None

    def _store_failed(self, e: BaseException, during: str) -> None:
        """Stop recording after a store failure: discard the episode, keep the reason for status and start()."""
        self._pending.clear()
        writer, self._writer, self._active = self._writer, None, False
        if writer is not None:
            try:
                writer.discard()
            except Exception as d:  # noqa: BLE001 - reopening the store cuts the partial episode back anyway
                log.error("could not discard the partial episode (%r); the next open in mode 'a' cuts it back", d)
        free = self._free_bytes()
        self.fault = (f"recording stopped: {during} failed on {self.store.path}: {e}. The episode in progress was "
                      f"discarded; committed episodes are intact. Free space on that disk (about "
                      f"{_mb(self.step_bytes * self.resume_steps)} per {self.resume_steps} steps before compression; "
                      f"{'unknown' if free is None else _mb(free)} free now), then call recorder/start to resume")
        log.error("%s", self.fault)

    def writer_stats(self) -> dict[str, int]:
        """The episode writer's health: steps it refused (disk too slow) and how full its buffer is."""
        w = self._writer
        if w is None:
            return {"writer_dropped_steps": 0, "writer_buffered_steps": 0, "writer_max_buffered_steps": 0}
        return {"writer_dropped_steps": int(w.n_dropped_steps), "writer_buffered_steps": int(w.buffered_steps),
                "writer_max_buffered_steps": int(w.max_buffered_steps)}

    @property
    def n_steps(self) -> int:
        return 0 if self._writer is None else self._writer.n_steps

    def stop(self, success: bool | None, meta_updates: dict | None = None) -> int | None:
        """Commit the episode (returns its index) or, if it recorded nothing, drop it (returns None).

        meta_updates: EpisodeMeta fields the conductor knows (practice: source, phase, attempt, true_success,
        policy_version, interventions = the resets before the attempt, notes); the recorder's own count of
        takeovers is added to `interventions`, and its policy versions are used unless the update names one."""
        if not self.recording:
            raise RecorderError("no episode is being recorded; call start first")
        self.flush_pending(final=True)   # what is still incomplete now will not be completed by the episode's end
        writer, self._writer, self._active = self._writer, None, False
        if writer is None or writer.n_steps == 0:
            log.warning("episode recorded no steps; nothing committed")
            if writer is not None:
                writer.discard()
            return None
        updates = dict(meta_updates or {})
        fields = {"success": success, "end_time_ns": time.time_ns(),
                  "policy_version": updates.pop("policy_version", None) or ",".join(self._versions) or None,
                  **updates,
                  "interventions": self._meta["interventions"] + int(updates.get("interventions", 0))}
        try:
            writer.meta.replace(**fields)  # labels checked before anything is written: a bad one loses nothing
        except StoreSchemaError as e:
            self._writer, self._active = writer, True
            raise RecorderError(f"episode labels refused ({e}); the episode is still being recorded: stop it "
                                "again with valid labels, or discard it") from e
        try:
            idx = writer.commit(**fields)
        except (StoreError, OSError) as e:
            if isinstance(e, WriterOverrunError):
                raise  # the disk was slow, not failed: this episode has a hole, the store is fine
            self._writer, self._active = writer, True
            self._store_failed(e, "committing the episode")
            raise RecorderError(self.fault) from e
        self.last_committed = idx
        return idx

    def discard(self) -> None:
        self._pending.clear()
        if not self.recording:
            return
        writer, self._writer, self._active = self._writer, None, False
        if writer is not None:
            writer.discard()


def schema_for_rig(rig) -> StoreSchema:
    """The store schema a rig config records: its cameras, joints, action space and control rate."""
    from robot_stack.store import StoreSchema
    from robot_stack.types import rig_features

    cams = {name: (int(c.height), int(c.width)) for name, c in rig.cameras.items()}
    return StoreSchema(robot=str(rig.robot), control_hz=float(rig.control_hz), action_space=str(rig.action_space),
                       features=rig_features(cams, n_joints=int(rig.n_joints)), cameras=tuple(cams))


def _mb(n: int) -> str:
    return f"{n / 1e6:.0f} MB"
