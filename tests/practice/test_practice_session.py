"""Reset-free practice (robot_stack.practice) in-process over the real MuJoCo sim and a real zarr store.

The scripted expert stands in for a policy that can do both directions (so the loop's bookkeeping is checked
against attempts that really succeed); the ground-truth judge stands in for the classifier (its own tests are in
test_classifier*.py). What is checked: alternation without resets, what each episode records, restart-safe counts,
resets practice asks for (irreversible, stuck) and how they are counted, and pause/resume/stop from another thread.
"""

import threading
import time

import numpy as np
import pytest

from robot_stack.learn.evaluate import ExpertActor
from robot_stack.practice.counts import PracticeCounts
from robot_stack.practice.judge import GroundTruthJudge
from robot_stack.practice.session import PAUSED, STOPPED, PracticeConfig, PracticeSession, TaskPair
from robot_stack.practice.sim_rig import SimPracticeRig
from robot_stack.sim.env import SimConfig, TabletopSim
from robot_stack.sim.generate import store_schema
from robot_stack.store import TrajectoryStore

PAIR = TaskPair.from_sim_tasks("put_cube_in_bowl")


@pytest.fixture(scope="module")
def sim():
    s = TabletopSim(SimConfig(image_size_px=32, cameras=("front",), reset_free=True, task="put_cube_in_bowl", seed=3))
    yield s
    s.close()


def _store(path):
    TrajectoryStore.create(path, store_schema("widowx", 32, ("front",)), fsync=False).close()
    return path


class Idle:
    """A policy that holds still (keeps the gripper open)."""

    def reset(self, task, seed, language):
        pass

    def act(self, obs, sim):
        return np.array([0, 0, 0, 0, 0, 0, 1.0], np.float32)


class MovesCubeTo(Idle):
    """Holds still, but the first step of attempt `at` puts the cube at `xyz` (kitchen frame), as a policy that
    flings it would."""

    def __init__(self, at, xyz):
        self.at, self.xyz, self.n = at, np.asarray(xyz, float), -1

    def reset(self, task, seed, language):
        self.n += 1
        self.first = True

    def act(self, obs, sim):
        if self.first and self.n == self.at:
            adr = sim._free_qadr["cube"]
            sim.data.qpos[adr:adr + 3] = self.xyz + sim.kitchen_origin_m
            sim.data.qvel[:] = 0
        self.first = False
        return super().act(obs, sim)


def test_expert_practice_alternates_records_and_resumes_counts_from_the_store(sim, tmp_path):
    path = _store(tmp_path / "s.zarr")
    sim.intervene(seed=0)
    rig = SimPracticeRig(sim, ExpertActor(), path, PAIR.forward[0], version=lambda: "calql@v3")
    seen = []
    session = PracticeSession(rig, GroundTruthJudge(sim), PAIR, PracticeConfig(horizon_steps=60, max_attempts=4),
                              on_attempt=seen.append)
    final = session.run()
    rig.close()
    assert [r.phase for r in seen] == ["forward", "backward", "forward", "backward"]
    assert sim.n_interventions == 1  # only the one above: no resets between attempts
    store = TrajectoryStore.open(path, mode="r")
    metas = [store.episode_meta(i) for i in range(store.n_episodes)]
    assert [m.attempt for m in metas] == [0, 1, 2, 3]
    assert {m.source for m in metas} == {"practice"} and {m.policy_version for m in metas} == {"calql@v3"}
    assert [m.task for m in metas] == [PAIR.forward[1], PAIR.backward[1]] * 2
    assert all(m.success == m.true_success for m in metas)  # the ground-truth judge labels them
    assert sum(m.success for m in metas) >= 3, [m.success for m in metas]  # the expert mostly succeeds
    assert final["state"] == "finished" and final["attempts"] == 4 and final["interventions"] == 0
    assert final["result"]["attempt"] == 3 and final["phase"] == "forward"
    # A restarted node rebuilds the same numbers from the store, and continues the numbering and alternation.
    again = PracticeCounts.from_store(store, window=20)
    for key in ("attempts", "attempts_by_phase", "successes_by_phase", "success_rate", "classifier", "interventions"):
        assert again.to_json()[key] == final[key], key
    store.close()
    rig = SimPracticeRig(sim, ExpertActor(), path, PAIR.forward[0])
    resumed = PracticeSession(rig, GroundTruthJudge(sim), PAIR, PracticeConfig(horizon_steps=60, max_attempts=1),
                              counts=again)
    assert resumed.status()["attempt"] == 4 and resumed.status()["phase"] == "forward"
    resumed.run()
    rig.close()
    assert TrajectoryStore.open(path, mode="r").episode_meta(4).attempt == 4


def test_irreversible_and_stuck_states_ask_for_a_reset_that_is_counted(sim, tmp_path):
    path = _store(tmp_path / "s.zarr")
    sim.intervene(seed=1)
    before = sim.n_interventions
    # Attempt 1 throws the cube off the table.
    actor = MovesCubeTo(1, (0.35, 0.0, -0.5))
    rig = SimPracticeRig(sim, actor, path, PAIR.forward[0])
    cfg = PracticeConfig(horizon_steps=3, max_attempts=3, stuck_attempts=2)
    final = PracticeSession(rig, GroundTruthJudge(sim), PAIR, cfg).run()
    assert final["resets_by_kind"]["irreversible"] == 1 and final["interventions"] == 1
    assert sim.n_interventions == before + 1
    rig.close()
    store = TrajectoryStore.open(path, mode="r")
    # The reset rides on the attempt after it (kind and reason in the notes), and the session restarts forward.
    assert [store.episode_meta(i).interventions for i in range(3)] == [0, 0, 1]
    assert store.episode_meta(2).phase == "forward" and "fell off the table" in store.episode_meta(2).notes
    assert PracticeCounts.from_store(store).resets_by_kind["irreversible"] == 1
    store.close()

    # Stacked on the block: neither in the bowl (the goal) nor on the table (the start), for 2 attempts in a row.
    block = sim.kitchen_poses()["block"]
    rig = SimPracticeRig(sim, MovesCubeTo(0, (*block[:2], 2 * block[2] + 0.025)), path, PAIR.forward[0])
    with TrajectoryStore.open(path, mode="r") as store:
        counts = PracticeCounts.from_store(store)
    final = PracticeSession(rig, GroundTruthJudge(sim), PAIR, cfg, counts=counts).run()
    rig.close()
    assert final["resets_by_kind"]["stuck"] == 1, final
    assert final["interventions_per_100_attempts"] == pytest.approx(100 * 2 / 6)


def test_scheduled_resets_are_counted_apart(sim, tmp_path):
    path = _store(tmp_path / "s.zarr")
    rig = SimPracticeRig(sim, Idle(), path, PAIR.forward[0])
    final = PracticeSession(rig, GroundTruthJudge(sim), PAIR,
                            PracticeConfig(horizon_steps=4, max_attempts=4, scheduled_reset_steps=8)).run()
    rig.close()
    assert final["scheduled_resets"] == 1 and final["interventions"] == 0


def test_pause_resume_stop_from_another_thread(sim, tmp_path):
    """The loop runs on this thread (MuJoCo's EGL context is bound to it); an operator thread pauses, resumes, stops."""
    path = _store(tmp_path / "s.zarr")
    rig = SimPracticeRig(sim, Idle(), path, PAIR.forward[0])
    session = PracticeSession(rig, GroundTruthJudge(sim), PAIR, PracticeConfig(horizon_steps=5))
    seen = {}

    def operator():
        deadline = time.monotonic() + 20
        while session.status()["attempts"] < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        session.pause()
        while session.state != PAUSED and time.monotonic() < deadline:
            time.sleep(0.01)
        seen["paused_at"] = session.status()["attempts"]
        time.sleep(0.3)
        seen["after_wait"] = (session.state, session.status()["attempts"])
        session.resume()
        while session.status()["attempts"] < seen["paused_at"] + 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        session.stop()

    t = threading.Thread(target=operator, daemon=True)
    t.start()
    final = session.run()
    t.join(timeout=10)
    assert seen["after_wait"] == (PAUSED, seen["paused_at"])  # nothing ran while paused
    assert final["state"] == STOPPED and final["attempts"] >= seen["paused_at"] + 1
    rig.close()
    store = TrajectoryStore.open(path, mode="r")
    assert store.n_episodes == final["attempts"]  # attempts cut short by pause/stop were not committed
    assert all(store.episode_slice(i).stop - store.episode_slice(i).start == 5 for i in range(store.n_episodes))


def test_bad_configuration_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="horizon_steps"):
        PracticeConfig(horizon_steps=0)
    with pytest.raises(ValueError, match="forward task"):
        TaskPair.from_sim_tasks("take_cube_out_of_bowl")
    with pytest.raises(ValueError, match="reset-free"):
        SimPracticeRig(TabletopSim(SimConfig(image_size_px=32, cameras=("front",))), Idle(), "x", "put_cube_in_bowl")
