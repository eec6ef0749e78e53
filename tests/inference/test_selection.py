"""V-GPS selection (robot_stack/inference/selection.py) on real policies and critics: argmax re-ranking, the softmax
draw's distribution, the random control, critic faults, and the runner's independent critic hot swap."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robot_stack.inference.manifest import make_update
from robot_stack.inference.runner import EVENT_REJECTED, PolicyRunner
from robot_stack.inference.selection import VGPSSelector, choose_index, softmax_probabilities
from robot_stack.policies.base import make_policy
from robot_stack.policies.checkpoint import CRITIC_KIND, PolicySchema, save_checkpoint
from robot_stack.policies.normalizer import Normalizer
from robot_stack.policies.text_encoder import make_text_encoder
from robot_stack.types import STATE_KEY, rig_features

TASKS = ("put the cube in the bowl", "put the cube on the plate")
STATE_AC = {"cameras": [], "arch": "none", "use_state": True, "latent_dim": 16, "actor_hidden_dims": [32, 32],
            "critic_hidden_dims": [32, 32], "fixed_action_dims": [3, 4]}


@pytest.fixture
def schema() -> PolicySchema:
    return PolicySchema.from_features(rig_features({}, n_joints=6))


@pytest.fixture
def normalizer() -> Normalizer:
    rng = np.random.default_rng(0)
    actions = rng.normal(0.0, 0.01, size=(200, 7))
    actions[:, 6] = rng.integers(0, 2, 200)
    return Normalizer.fit(actions, rng.normal(size=(200, 14)))


def make_generalist(normalizer, seed=0):
    """An unconditioned stochastic policy (the 'generalist' whose samples get re-ranked)."""
    torch.manual_seed(seed)
    return make_policy("actor_critic", {**STATE_AC, "conditioning": "none"}, normalizer).eval()


def make_critic(normalizer, seed=1, q_scale=300.0):
    """A language-conditioned critic with FiLM (the V-GPS recipe's network). Its output layer is scaled up so Q
    differs across samples by O(1), as a trained critic's does (a fresh one's init scale 1e-2 makes Q nearly flat)."""
    torch.manual_seed(seed)
    enc = make_text_encoder({"name": "hashing", "dim": 16})
    critic = make_policy("actor_critic", {**STATE_AC, "conditioning": "language", "tasks": list(TASKS),
                                          "task_embedding_dim": 16, "low_dim_film": True,
                                          "extra": {"kind": CRITIC_KIND}}, normalizer)
    with torch.no_grad():
        critic.task_embeddings.copy_(enc.encode(list(TASKS)))
        for w in (critic.critic.heads.weights[-1], critic.target_critic.heads.weights[-1]):
            w.mul_(q_scale)
    return critic.eval()


def obs_of(rng) -> dict[str, np.ndarray]:
    return {STATE_KEY: rng.normal(size=14).astype(np.float32)}


def test_argmax_executes_the_max_q_sample(normalizer):
    gen, critic = make_generalist(normalizer), make_critic(normalizer)
    sel = VGPSSelector(critic, k=16, beta=0.0)
    sel.set_task(TASKS[1])
    rng = np.random.default_rng(3)
    chosen = []
    for trial in range(6):
        obs = obs_of(rng)
        torch.manual_seed(100 + trial)
        action, info = sel.select(gen, obs)
        torch.manual_seed(100 + trial)                     # the same K samples again, scored independently
        samples = gen.sample_actions(obs, 16)
        critic.config.deploy_task = TASKS[1]
        q = critic.q_values(obs, samples)
        best = int(np.argmax(q))
        assert info["index"] == best
        np.testing.assert_array_equal(action, samples[best])
        assert info["q_chosen"] == pytest.approx(float(q.max()), abs=1e-5)
        assert info["q_spread"] == pytest.approx(float(q.max() - q.min()), abs=1e-5)
        assert info["q_spread"] > 0.1                     # the test can tell samples apart
        assert {"sample_ms", "score_ms", "select_ms"} <= set(info)
        chosen.append(best)
    assert len(set(chosen)) > 1                           # not a fixed index that happens to be the max


def test_critic_language_changes_the_ranking(normalizer):
    """The same samples scored for the two tasks are ranked differently: the critic conditions on the episode's task."""
    gen, critic = make_generalist(normalizer), make_critic(normalizer)
    rng = np.random.default_rng(5)
    differ = 0
    for trial in range(6):
        obs = obs_of(rng)
        picks = []
        for task in TASKS:
            sel = VGPSSelector(critic, k=32)
            sel.set_task(task)
            torch.manual_seed(trial)
            picks.append(sel.select(gen, obs)[1]["index"])
        differ += picks[0] != picks[1]
    assert differ >= 1


def test_softmax_draw_matches_its_distribution(normalizer):
    gen, critic = make_generalist(normalizer), make_critic(normalizer)
    obs = obs_of(np.random.default_rng(11))
    K = 8
    torch.manual_seed(7)
    samples = gen.sample_actions(obs, K)
    critic.config.deploy_task = TASKS[0]
    q = critic.q_values(obs, samples).astype(np.float64)
    beta = 0.5 * float(q.max() - q.min())                 # a temperature at which the draw is far from uniform
    p = softmax_probabilities(q, beta)
    assert p.max() > 2.0 / K                              # a uniform draw would fail the comparison below

    sel = VGPSSelector(critic, k=K, beta=beta, seed=0)
    sel.set_task(TASKS[0])
    n = 2000
    counts = np.zeros(K)
    for _ in range(n):
        torch.manual_seed(7)                              # the same K samples every draw, so only the pick varies
        counts[sel.select(gen, obs)[1]["index"]] += 1
    freq = counts / n
    sigma = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(freq - p) < 4.5 * sigma + 1e-3), (freq.round(3), p.round(3))
    # and not the argmax: every index with non-negligible probability is drawn
    assert (counts[p > 0.05] > 0).all() and counts.max() < n


def test_softmax_is_stable_at_large_q_over_beta():
    p = softmax_probabilities(np.array([-50.0, -49.9, -60.0]), 0.01)
    assert np.isfinite(p).all() and p.sum() == pytest.approx(1.0) and int(np.argmax(p)) == 1
    assert choose_index(np.array([0.1, 0.7, 0.3]), 0.0, np.random.default_rng(0)) == 1
    with pytest.raises(ValueError, match="beta = 0 is the argmax"):
        softmax_probabilities(np.zeros(3), 0.0)


def test_random_mode_is_uniform_and_needs_no_critic(normalizer):
    gen = make_generalist(normalizer)
    sel = VGPSSelector(k=5, mode="random", seed=1)
    obs = obs_of(np.random.default_rng(0))
    n = 2000
    counts = np.bincount([sel.select(gen, obs)[1]["index"] for _ in range(n)], minlength=5)
    sigma = np.sqrt(0.2 * 0.8 / n)
    assert np.all(np.abs(counts / n - 0.2) < 4.5 * sigma), counts
    assert "q_spread" not in sel.select(gen, obs)[1]


def test_critic_faults_execute_the_policy_sample_unsteered(normalizer):
    gen, critic = make_generalist(normalizer), make_critic(normalizer)
    obs = obs_of(np.random.default_rng(0))
    sel = VGPSSelector(k=4)
    _, info = sel.select(gen, obs)
    assert info["index"] == 0 and "no critic loaded yet" in info["fallback"]
    sel = VGPSSelector(critic, k=4)
    sel.set_task("stack the blocks")                      # a task the critic never saw
    action, info = sel.select(gen, obs)
    assert info["index"] == 0 and "not trained on task 'stack the blocks'" in info["fallback"]
    assert sel.critic_fallbacks == 1 and action.shape == (7,) and np.isfinite(action).all()


@pytest.mark.parametrize("kwargs, match", [({"k": 0}, "k >= 1"), ({"beta": -1.0}, "beta must be >= 0"),
                                           ({"mode": "best"}, "selection mode 'best'")])
def test_bad_parameters_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VGPSSelector(**kwargs)


# ---- the runner: the selector acts, the critic swaps on its own ------------------------------------------------
def _save(model, normalizer, schema, root, version):
    return save_checkpoint(model, normalizer, schema, root, version, step=version, parent=version - 1 or None)


def test_runner_reranks_and_swaps_the_critic_independently(tmp_path, normalizer, schema):
    p1 = _save(make_generalist(normalizer, 0), normalizer, schema, tmp_path / "policy", 1)
    p2 = _save(make_generalist(normalizer, 5), normalizer, schema, tmp_path / "policy", 2)
    c1 = _save(make_critic(normalizer, 1), normalizer, schema, tmp_path / "critic", 1)
    c2 = _save(make_critic(normalizer, 2), normalizer, schema, tmp_path / "critic", 2)
    critic_runner = PolicyRunner(schema, checkpoint_roots=[tmp_path / "critic"], checkpoint_kind=CRITIC_KIND)
    sel = VGPSSelector(k=10, critic_runner=critic_runner)
    runner = PolicyRunner(schema, selector=sel, checkpoint_roots=[tmp_path / "policy"])
    try:
        runner.request_load(make_update(p1))
        critic_runner.request_load(make_update(c1))
        assert runner.wait_idle(30) and critic_runner.wait_idle(30)
        runner.set_episode_mode(TASKS[0])
        rng = np.random.default_rng(0)
        seen = []
        for tick in range(12):
            if tick == 4:       # a new critic mid-episode: loaded in the background, swapped at a tick's start
                critic_runner.request_load(make_update(c2))
                assert critic_runner.wait_idle(30)
            if tick == 8:       # then a new policy, while the critic stays
                runner.request_load(make_update(p2))
                assert runner.wait_idle(30)
            action = runner.step(obs_of(rng))
            assert action is not None and np.isfinite(action).all()   # no tick without an action
            info = runner.last_selection
            assert "fallback" not in info and info["k"] == 10
            seen.append((runner.active_version, info["critic_version"]))
        assert seen[:4] == [(1, 1)] * 4 and seen[4:8] == [(1, 2)] * 4 and seen[8:] == [(2, 2)] * 4
        assert runner.stats.swaps == 2 and critic_runner.stats.swaps == 2
    finally:
        runner.close()
        critic_runner.close()


def test_checkpoint_kinds_do_not_cross(tmp_path, normalizer, schema):
    """A critic announced as a policy (or the reverse) is rejected with the reason, and nothing changes."""
    policy_dir = _save(make_generalist(normalizer), normalizer, schema, tmp_path / "ckpt", 1)
    critic_dir = _save(make_critic(normalizer), normalizer, schema, tmp_path / "ckpt" / "critic", 1)
    runner = PolicyRunner(schema)
    critic_runner = PolicyRunner(schema, checkpoint_kind=CRITIC_KIND)
    try:
        runner.request_load(make_update(critic_dir))
        critic_runner.request_load(make_update(policy_dir))
        assert runner.wait_idle(30) and critic_runner.wait_idle(30)
        kind, payload = runner.events.get(timeout=5)
        assert kind == EVENT_REJECTED and "is a critic checkpoint but this runner holds a policy" in payload.reason
        kind, payload = critic_runner.events.get(timeout=5)
        assert kind == EVENT_REJECTED and "is a policy checkpoint, not a critic" in payload.reason
        runner.activate_staged()
        critic_runner.activate_staged()
        assert runner.active is None and critic_runner.active is None
    finally:
        runner.close()
        critic_runner.close()


def test_explore_mode_bypasses_the_selector(tmp_path, normalizer, schema):
    """Practice exploration draws one sample (as without V-GPS); only greedy ticks are re-ranked."""
    p1 = _save(make_generalist(normalizer), normalizer, schema, tmp_path / "policy", 1)
    runner = PolicyRunner(schema, selector=VGPSSelector(make_critic(normalizer), k=10))
    try:
        runner.request_load(make_update(p1))
        assert runner.wait_idle(30)
        runner.set_episode_mode(TASKS[0], explore=True)
        assert runner.step(obs_of(np.random.default_rng(0))) is not None and runner.last_selection == {}
        runner.set_episode_mode(TASKS[0], explore=False)
        assert runner.step(obs_of(np.random.default_rng(1))) is not None and runner.last_selection["k"] == 10
    finally:
        runner.close()


def test_selection_tag_names_the_steering_critic_for_the_store():
    from robot_stack.inference.selection import selection_tag
    from robot_stack.store.recorder import parse_source

    assert selection_tag({}) == ""
    assert selection_tag({"mode": "vgps", "k": 50, "beta": 1.0, "critic_version": 3, "index": 2}) == \
        "+vgps:critic@v3:K50:beta1"
    assert selection_tag({"mode": "vgps", "k": 10, "beta": 0.0, "index": 0, "fallback": "no critic"}) == \
        "+vgps:nocritic:K10:beta0"
    assert selection_tag({"mode": "random", "k": 10, "beta": 0.0, "index": 4}) == "+random:K10"
    assert selection_tag({"mode": "parl", "n": 32, "k": 10, "beta": 0.0, "critic_version": 4}) == \
        "+parl:critic@v4:N32:K10:beta0"       # PA-RL ticks are filed as PA-RL, not V-GPS
    tag = "policy:diffusion@v7" + selection_tag({"mode": "vgps", "k": 10, "beta": 0.1, "critic_version": 2})
    assert parse_source(tag) == ("policy", "diffusion@v7+vgps:critic@v2:K10:beta0.1") and "," not in tag
