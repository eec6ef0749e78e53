"""In-process practice with learning: offline Cal-QL on forward + backward demos, then reset-free practice whose
attempts the learner takes in between attempts (real sim, real store, real learner service; tiny sizes)."""

from omegaconf import OmegaConf

from robot_stack.practice.inprocess import run_practice
from robot_stack.practice.judge import GroundTruthJudge
from robot_stack.practice.session import PracticeConfig, TaskPair
from robot_stack.sim.generate import generate
from robot_stack.store import TrajectoryStore


def _learner_cfg():
    from hydra import compose, initialize_config_module

    from robot_stack.learn.rl_service import RLLearnerConfig

    with initialize_config_module("robot_stack.conf", version_base=None):
        c = compose("robot_stack", overrides=["learner=calql_state", "data_dir=/tmp"])
    d = OmegaConf.to_container(c.learner, resolve=True)
    d.pop("torch_threads", None)
    d.update(task=None, sources=["sim"], min_episodes=1, offline_steps=20, batch_size=16, tensorboard_dir=None,
             val_every_episode=0, val_every_steps=0, checkpoint_every_steps=1000, log_every_steps=1000,
             online=True, utd_ratio=0.5, poll_interval_s=0.1)
    d["policy_config"] = {**d["policy_config"], "latent_dim": 16, "actor_hidden_dims": [16], "critic_hidden_dims": [16],
                          "conditioning": "onehot"}
    return RLLearnerConfig.from_dict(d)


def _learner_and_sim(tmp_path, demos_per_direction, cameras=(), image_px=32):
    """A real store of scripted forward + backward demos (object state; cameras only if asked), a tiny Cal-QL learner
    service on it and a reset-free sim."""
    import torch

    from robot_stack.learn.rl_service import RLLearnerService
    from robot_stack.sim.env import SimConfig, TabletopSim

    torch.set_num_threads(1)
    store = tmp_path / "s.zarr"
    generate(store, tasks=["put_cube_in_bowl", "take_cube_out_of_bowl"], episodes=demos_per_direction,
             failure_share=0.0, workers=1, cameras=cameras, image_size_px=image_px, environment_state=True, seed=0,
             progress=False)
    svc = RLLearnerService(store, tmp_path / "ckpt", _learner_cfg())
    return store, svc, TabletopSim(SimConfig(cameras=cameras, image_size_px=image_px, reset_free=True,
                                             task="put_cube_in_bowl", seed=5))


def test_practice_attempts_feed_the_learner_and_new_versions_act(tmp_path):
    store, svc, sim = _learner_and_sim(tmp_path, 4)
    rounds = []
    try:
        final = run_practice(svc, sim, store, TaskPair.from_sim_tasks("put_cube_in_bowl"), GroundTruthJudge,
                             PracticeConfig(horizon_steps=10, max_attempts=4), attempts_per_update=2,
                             on_update=rounds.append)
    finally:
        sim.close()
    assert final["attempts"] == 4 and final["state"] == "finished"
    ticks = final["policy_ticks"]   # one timed policy step per executed control step
    assert ticks["ticks"] == 4 * 10 and 0 <= ticks["over_period"] <= ticks["ticks"] and ticks["period_ms"] == 200.0
    assert 0 < ticks["median_ms"] <= ticks["p99_ms"] <= ticks["max_ms"]
    assert [r.attempts for r in rounds] == [2, 4]
    assert rounds[0].updates == 10 and rounds[-1].step == 20 + 20  # utd 0.5 x 2 attempts x 10 steps, per round
    assert rounds[-1].version > rounds[0].version >= 1  # a checkpoint per round
    with TrajectoryStore.open(store, mode="r") as s:
        practice = [s.episode_meta(i) for i in s.episodes(source="practice")]
    assert [m.phase for m in practice] == ["forward", "backward", "forward", "backward"]
    assert practice[2].policy_version != practice[0].policy_version  # the new version acted after the round


class _NeverSeesSuccess:
    """A judge with every false negative a classifier can have: practice sees neither goal nor start, ever."""

    name = "never"

    def judge(self, obs, task, language):
        from robot_stack.practice.judge import Verdict

        return Verdict(False, 0.0)


def test_a_review_at_each_intervention_corrects_the_judges_labels_in_the_store(tmp_path):
    """At a stuck reset the person (the sim's truth here) reviews the last attempts; each label that disagrees with
    the truth is corrected in the store, counted, and handed to on_corrections (the classifier's re-training)."""
    store, svc, sim = _learner_and_sim(tmp_path, 2)
    handed: list[dict] = []
    try:
        final = run_practice(svc, sim, store, TaskPair.from_sim_tasks("put_cube_in_bowl"), _NeverSeesSuccess(),
                             PracticeConfig(horizon_steps=6, max_attempts=4, stuck_attempts=2, review_attempts=2),
                             attempts_per_update=2, on_corrections=lambda c, r: handed.append((c, r)))
    finally:
        sim.close()
    assert final["resets_by_kind"]["stuck"] == 2
    with TrajectoryStore.open(store, mode="r") as s:
        practice = s.episodes(source="practice")
        truth = {i: s.episode_meta(i).true_success for i in practice}
        corrected = s.corrected_episodes()
        assert all(s.recorded_meta(i).success is False for i in practice)   # what the judge said stays recorded
    # A backward attempt after a failed forward one finds the cube out of the bowl: the truth says success there.
    assert corrected and corrected == {i: True for i, t in truth.items() if t}
    assert final["label_corrections"] == len(corrected) == sum(len(c) for c, _ in handed)
    assert all(set(c) <= set(r) and len(r) == 2 for c, r in handed)   # each review saw the last 2 attempts


def test_the_classifier_is_fine_tuned_only_on_labels_a_person_has_seen(tmp_path):
    """The re-training callback of the practice experiment: after each review the classifier is fine-tuned on the
    demos and the reviewed attempts, never on the judge's own unreviewed labels (which taught it its false negatives
    back, practice.md). Review only the last of every 2 attempts, so unreviewed practice attempts exist."""
    import torch

    from robot_stack.practice.classifier import train_classifier
    from robot_stack.practice.classifier.review import RetrainOnReview

    store, svc, sim = _learner_and_sim(tmp_path, 2, cameras=("front",))
    pair = TaskPair.from_sim_tasks("put_cube_in_bowl")
    with TrajectoryStore.open(store, mode="r") as s:
        demos = set(s.episodes())
        clf = train_classifier(s, pair.languages, config={"camera": "front", "image_size_px": 32}, steps=2)
    weights = {k: v.clone() for k, v in clf.state_dict().items()}
    retrain = RetrainOnReview(clf, store, pair.languages, steps=3, log=lambda m: None)
    try:
        final = run_practice(svc, sim, store, pair, _NeverSeesSuccess(),
                             PracticeConfig(horizon_steps=6, max_attempts=4, stuck_attempts=2, review_attempts=1),
                             attempts_per_update=2, on_corrections=retrain)
    finally:
        sim.close()
    assert final["resets_by_kind"]["stuck"] == 2 and len(retrain.rounds) == 2
    with TrajectoryStore.open(store, mode="r") as s:
        practice = s.episodes(source="practice")
    assert len(practice) == 4 and retrain.reviewed == {practice[1], practice[3]}
    assert set(retrain.rounds[0]["episodes"]) == demos | {practice[1]}
    assert set(retrain.rounds[1]["episodes"]) == demos | {practice[1], practice[3]}   # reviews add up
    assert not any(torch.equal(weights[k], v) for k, v in clf.state_dict().items() if v.is_floating_point())


def test_review_attempts_is_validated():
    import pytest

    with pytest.raises(ValueError, match="review_attempts"):
        PracticeConfig(review_attempts=-1)
