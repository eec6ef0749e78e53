"""V-GPS critic training (robot_stack/algos/vgps.py, conf/learner/vgps*.yaml): the label scheme by hand, the recipe's
guards, FiLM on the state encoder, and tiny end-to-end runs: training on a real zarr store, then selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robot_stack.algos.vgps import VGPS_REWARD, check_vgps_config, critic_service, vgps_labels
from robot_stack.learn.rl_dataset import RewardConfig, TransitionDataset
from robot_stack.learn.rl_service import RLLearnerConfig
from robot_stack.policies.actor_critic import LowDimEncoder
from robot_stack.policies.base import make_policy, policy_class
from robot_stack.policies.checkpoint import CRITIC_KIND, latest_checkpoint, load_critic, load_policy
from robot_stack.policies.normalizer import Normalizer
from robot_stack.store import StoreSchema, TrajectoryStore
from robot_stack.types import ACTION_KEY, STATE_KEY, rig_features

TASKS = ("put the cube in the bowl", "put the cube on the plate")


def composed_learner(name: str = "vgps_state") -> dict:
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module("robot_stack.conf", version_base=None):
        c = compose("robot_stack", overrides=[f"learner={name}", "task=put_cube_in_bowl", "data_dir=/tmp"])
    d = OmegaConf.to_container(c.learner, resolve=True)
    d.pop("torch_threads", None)
    return d


# ---- labels --------------------------------------------------------------------------------------------------
def test_label_scheme_on_hand_computed_episodes():
    # success, T = 5, γ = 0.9: the last 3 steps are the goal (r 0, no bootstrap), before them −1 per step
    r, m, g = vgps_labels(5, True, 0.9)
    np.testing.assert_array_equal(r, [-1, -1, 0, 0, 0])
    np.testing.assert_array_equal(m, [1, 1, 0, 0, 0])
    np.testing.assert_allclose(g, [-1.9, -1.0, 0.0, 0.0, 0.0], atol=1e-6)   # G_1 = −1 + .9·0, G_0 = −1 + .9·G_1
    # a success shorter than the 3 goal steps: all of it is goal
    r, m, g = vgps_labels(2, True, 0.9)
    np.testing.assert_array_equal(r, [0, 0]) and np.testing.assert_array_equal(m, [0, 0])
    np.testing.assert_array_equal(g, [0, 0])
    # failure: −1 everywhere, bootstrapped everywhere, and the pessimistic infinite-horizon value −1/(1−γ)
    r, m, g = vgps_labels(4, False, 0.9)
    np.testing.assert_array_equal(r, [-1, -1, -1, -1])
    np.testing.assert_array_equal(m, [1, 1, 1, 1])
    np.testing.assert_allclose(g, [-10.0] * 4, atol=1e-5)


def test_the_shipped_recipes_train_on_that_scheme():
    """conf/learner/vgps*.yaml give the learner's TransitionDataset exactly vgps_labels (what the critic sees)."""
    for name in ("vgps", "vgps_state"):
        d = composed_learner(name)
        check_vgps_config(RLLearnerConfig.from_dict(d))
        discount = d["algo_config"]["discount"]
        assert discount == 0.98
        ds = TransitionDataset([STATE_KEY], RewardConfig.from_dict(d["reward"]), discount)
        for n, success in ((7, True), (7, False), (2, True)):
            for a, b in zip(ds.episode_arrays(n, success), vgps_labels(n, success, discount), strict=True):
                np.testing.assert_array_equal(a, b)
        assert d["policy_config"]["conditioning"] == "language" and d["policy_config"]["extra"]["kind"] == CRITIC_KIND


@pytest.mark.parametrize("change, match", [
    ({"algo": "cql"}, "V-GPS's critic is Cal-QL"),
    ({"policy_config": {"conditioning": "language"}}, "policy_config.extra.kind is None"),
    ({"policy_config": {"conditioning": "onehot", "extra": {"kind": "critic"}}}, "conditioned on the task language"),
    ({"reward": {}}, "differs from V-GPS's label scheme"),     # RewardConfig's defaults are PTR's (+10/−1)
])
def test_recipes_that_would_not_give_a_vgps_critic_are_refused(change, match):
    d = {**composed_learner(), **change}
    with pytest.raises(ValueError, match=match):
        check_vgps_config(RLLearnerConfig.from_dict(d))
    assert VGPS_REWARD["scale"] == 1.0 and VGPS_REWARD["bias"] == -1.0


# ---- FiLM on the state encoder ----------------------------------------------------------------------------------
def test_low_dim_film_starts_as_identity_and_then_modulates():
    torch.manual_seed(0)
    film = LowDimEncoder(5, 8, film_dim=3)
    plain = LowDimEncoder(5, 8)
    plain.load_state_dict({k: v for k, v in film.state_dict().items() if not k.startswith("film_")})
    x, c1, c2 = torch.randn(4, 5), torch.randn(4, 3), torch.randn(4, 3)
    torch.testing.assert_close(film(x, c1), plain(x))           # zero-initialised γ, β: FiLM is the identity
    loss = (film(x, c1) - torch.ones(4, 8)).pow(2).mean()
    loss.backward()
    assert film.film_scale.weight.grad.abs().sum() > 0 and film.film_shift.weight.grad.abs().sum() > 0
    with torch.no_grad():
        film.film_scale.weight.normal_()
    assert not torch.allclose(film(x, c1), film(x, c2))        # now the conditioning changes the latent
    with pytest.raises(ValueError, match="built with FiLM"):
        film(x)


def test_state_critic_routes_the_task_through_film():
    """With the MLPs' direct task input zeroed, Q still depends on the task: the FiLM path carries it."""
    rng = np.random.default_rng(0)
    norm = Normalizer.fit(rng.normal(0, 0.01, (50, 7)), rng.normal(size=(50, 14)))
    cfg = {"cameras": [], "arch": "none", "use_state": True, "latent_dim": 16, "critic_hidden_dims": [32],
           "actor_hidden_dims": [32], "conditioning": "language", "tasks": list(TASKS), "task_embedding_dim": 4,
           "low_dim_film": True}
    torch.manual_seed(0)
    p = make_policy("actor_critic", cfg, norm).eval()
    assert p.critic.encoder.film_dim == 4 and p.actor_encoder.film_dim == 4
    with torch.no_grad():
        p.task_embeddings.copy_(torch.eye(2, 4))
        p.critic.heads.weights[0][:, :4].zero_()              # the heads' cond columns: no direct task input
        p.critic.encoder.film_shift.weight.normal_()
    obs = {STATE_KEY: rng.normal(size=14).astype(np.float32)}
    a = np.zeros((3, 7), np.float32)
    q = []
    for t in TASKS:
        p.config.deploy_task = t
        q.append(p.q_values(obs, a))
    assert not np.allclose(q[0], q[1])
    with torch.no_grad():
        p.critic.encoder.film_shift.weight.zero_()
    p.config.deploy_task = TASKS[0]
    q0 = p.q_values(obs, a)
    p.config.deploy_task = TASKS[1]
    np.testing.assert_allclose(q0, p.q_values(obs, a), atol=1e-6)   # FiLM off: the task no longer matters


# ---- end to end -------------------------------------------------------------------------------------------------
def _state_store(path, n_episodes: int, n_steps: int = 10):
    """Episode i: task TASKS[i % 2]; episodes with i % 4 < 2 succeed by moving +x, the others fail by moving −x. All
    start from the same state s0 (state[1] = 0) and the move decides which track (state[1] ≷ 0) they go down, so at s0
    only the action tells success from failure: a critic that learned anything ranks +x above −x there."""
    schema = StoreSchema(robot="wx250s", control_hz=5.0, action_space="ee_delta", features=rig_features({}, 6),
                         cameras=())
    store = TrajectoryStore.create(path, schema, fsync=False)
    for i in range(n_episodes):
        success = i % 4 < 2
        action = np.zeros((n_steps, 7), np.float32)
        action[:, 0] = 0.02 if success else -0.02
        action[:, 6] = 1.0
        state = np.zeros((n_steps, 14), np.float32)
        state[:, 1] = (1.0 if success else -1.0) * np.arange(n_steps) / n_steps   # where the +x / −x moves lead
        state[:, 2] = np.arange(n_steps) / n_steps                                 # progress
        ep = {STATE_KEY: state, ACTION_KEY: action}
        for k, spec in schema.features.items():
            if spec.dtype == "int64":
                ep[k] = np.arange(n_steps, dtype=np.int64) * 200_000_000
        store.append_episode(ep, {"task": TASKS[i % 2], "source": "sim", "success": success})
    store.close()
    return path


def _critic_cfg(**overrides) -> RLLearnerConfig:
    d = composed_learner()
    d["policy_config"] = {**d["policy_config"], "use_environment_state": False, "latent_dim": 32,
                          "actor_hidden_dims": [64, 64], "critic_hidden_dims": [64, 64], "low_dim_noise_std": 0.0}
    d.update(batch_size=64, tensorboard_dir=None, val_every_episode=0, val_every_steps=0, min_episodes=1,
             checkpoint_every_steps=10_000, log_every_steps=1000, sources=["sim"], poll_interval_s=0.1,
             text_encoder={"name": "hashing", "dim": 16})
    d.update(overrides)
    return RLLearnerConfig.from_dict(d)


def test_training_on_a_store_gives_a_critic_that_steers_selection(tmp_path):
    from robot_stack.inference.selection import VGPSSelector

    torch.set_num_threads(1)
    store = _state_store(tmp_path / "store.zarr", 16, n_steps=5)
    # The recipe at test speed: critic lr 1e-3 and τ 0.05 (V-GPS: 3e-4, 5e-3) so values propagate in 300 updates.
    cfg = _critic_cfg(offline_steps=300, checkpoint_every_steps=300)
    cfg.algo_config = {**cfg.algo_config, "critic_lr": 1e-3, "tau": 0.05}
    svc = critic_service(store, tmp_path / "ckpt" / "critic", cfg)
    svc.run()
    ckpt = latest_checkpoint(tmp_path / "ckpt" / "critic")
    critic, manifest = load_critic(ckpt)
    assert manifest.version == 1 and critic.config.extra["kind"] == CRITIC_KIND
    assert list(critic.config.tasks) == sorted(TASKS)
    m = svc.metrics_history[-50:]
    assert np.mean([x["critic/bound_rate"] for x in m]) >= 0.0 and np.isfinite(np.mean([x["critic/td_loss"] for x in m]))

    # At s0, Q ranks the successful move (MC return −1.98) far above the failing one (−1/(1−γ) = −50), per task
    rng = np.random.default_rng(1)
    s0 = {STATE_KEY: np.zeros(14, np.float32)}
    plus, minus = np.zeros(7, np.float32), np.zeros(7, np.float32)
    plus[0], minus[0], plus[6], minus[6] = 0.02, -0.02, 1.0, 1.0
    for task in TASKS:
        critic.config.deploy_task = task
        q = critic.q_values(s0, np.stack([plus, minus]))
        assert q[0] > -5.0 and q[1] < q[0] - 10.0, q

    # selection with that critic over a stochastic generalist's samples picks the most +x sample
    norm = critic.normalizer
    torch.manual_seed(0)
    gen = make_policy("actor_critic", {"cameras": [], "arch": "none", "use_state": True, "latent_dim": 16,
                                       "actor_hidden_dims": [32], "critic_hidden_dims": [32],
                                       "conditioning": "none", "init_temperature": 1.0}, norm).eval()
    with torch.no_grad():
        gen.actor_log_std.bias.fill_(1.5)            # wide samples: some go +x, some −x
    sel = VGPSSelector(critic, k=10)
    sel.set_task(TASKS[0])
    chosen_plus, sample_plus = 0, []
    for _ in range(20):
        torch.manual_seed(int(rng.integers(1 << 30)))
        state = torch.get_rng_state()
        action, info = sel.select(gen, s0)
        torch.set_rng_state(state)
        samples = gen.sample_actions(s0, 10)              # the same ten samples, to compare against
        chosen_plus += action[0] > 0
        sample_plus.append(float((samples[:, 0] > 0).mean()))
    assert 0.2 < np.mean(sample_plus) < 0.8, sample_plus    # the generalist alone goes either way
    assert chosen_plus >= 18, (chosen_plus, sample_plus)    # V-GPS goes the successful way


def test_vgps_on_a_sim_store_then_the_runner_acts_in_the_sim(tmp_path):
    """The shipped state recipe end to end at tiny sizes: sim episodes in a zarr store -> critic checkpoint of kind
    critic -> the PolicyRunner with a diffusion generalist and the critic runner acts in the sim."""
    from robot_stack.inference.manifest import make_update
    from robot_stack.inference.runner import PolicyRunner
    from robot_stack.inference.selection import VGPSSelector
    from robot_stack.learn.bc import dataset_keys, fit_normalizer
    from robot_stack.learn.dataset import FrameDataset, eligible_episodes
    from robot_stack.learn.evaluate import observe
    from robot_stack.policies.checkpoint import PolicySchema, save_checkpoint
    from robot_stack.sim.env import SimConfig, TabletopSim
    from robot_stack.sim.generate import generate

    torch.set_num_threads(1)
    store = tmp_path / "store.zarr"
    generate(store, tasks=["put_cube_in_bowl", "put_cube_on_plate"], episodes=4, failure_share=0.5, seed=3,
             cameras=(), workers=1, environment_state=True, progress=False)
    d = composed_learner()
    d.update(batch_size=32, offline_steps=20, checkpoint_every_steps=20, tensorboard_dir=None, val_every_episode=0,
             val_every_steps=0, min_episodes=1, sources=["sim"], poll_interval_s=0.1)
    critic_service(store, tmp_path / "ckpt" / "critic", RLLearnerConfig.from_dict(d)).run()

    diff_cfg = {"cameras": [], "arch": "none", "use_state": True, "use_environment_state": True, "latent_dim": 16,
                "n_obs_steps": 2, "horizon": 8, "n_action_steps": 4, "down_dims": [16, 32], "unet_groups": 4,
                "num_inference_steps": 3, "fixed_action_dims": [3, 4]}
    with TrajectoryStore.open(store, mode="r") as st:
        schema = PolicySchema.from_store_schema(st.schema)
        ds = FrameDataset.from_store(st, eligible_episodes(st, ("sim",), False, None),
                                     dataset_keys(policy_class("diffusion").config_class.from_dict(diff_cfg)))
    gen = make_policy("diffusion", diff_cfg, fit_normalizer(ds))
    gen_dir = save_checkpoint(gen, gen.normalizer, schema, tmp_path / "ckpt", 1, step=0)
    assert load_policy(gen_dir)[1].policy_type == "diffusion"

    critic_runner = PolicyRunner(schema, checkpoint_roots=[tmp_path / "ckpt" / "critic"], checkpoint_kind=CRITIC_KIND)
    runner = PolicyRunner(schema, selector=VGPSSelector(k=6, beta=1.0, seed=0, critic_runner=critic_runner),
                          checkpoint_roots=[tmp_path / "ckpt"])
    sim = TabletopSim(SimConfig(task="put_cube_on_plate", cameras=()))
    try:
        runner.request_load(make_update(gen_dir))
        critic_runner.request_load(make_update(latest_checkpoint(tmp_path / "ckpt" / "critic")))
        assert runner.wait_idle(60) and critic_runner.wait_idle(60)
        sim.reset(seed=5)
        runner.set_episode_mode(sim.language)
        for _ in range(6):
            action = runner.step(observe(sim, (), environment_state=True))
            assert action is not None and action.shape == (7,) and np.isfinite(action).all()
            sim.apply_ee_delta(action)
            info = runner.last_selection
            assert info["critic_version"] == 1 and 0 <= info["index"] < 6 and info["q_spread"] >= 0
            assert "fallback" not in info
    finally:
        sim.close()
        runner.close()
        critic_runner.close()
