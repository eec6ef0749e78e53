"""The diffusion policy's interface: shapes, K-batching, deterministic DDIM, the action queue, the gripper decision,
windows from the BC dataset, EMA, and checkpoint save → load → PolicyRunner hot swap."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY_IMAGE, TINY_STATE, build, make_normalizer, make_obs, make_schema

from robot_stack.inference.manifest import make_update
from robot_stack.inference.runner import PolicyRunner
from robot_stack.policies.checkpoint import load_policy, save_checkpoint
from robot_stack.policies.diffusion.policy import ema_decay
from robot_stack.types import ACTION_KEY, ENV_STATE_KEY, GRIPPER_INDEX, STATE_KEY, image_key

T_O, T_P, T_A, A = 2, TINY_STATE["horizon"], TINY_STATE["n_action_steps"], 7


def history(obs_seed: int = 0) -> dict[str, np.ndarray]:
    frames = [make_obs(obs_seed), make_obs(obs_seed + 1)]
    return {k: np.stack([f[k] for f in frames]) for k in frames[0]}


def window_batch(b: int = 6, seed: int = 0, image: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    batch = {STATE_KEY: torch.randn(b, T_O, 14, generator=g), ENV_STATE_KEY: torch.randn(b, T_O, 5, generator=g)}
    if image:
        batch[image_key("front")] = torch.randint(0, 256, (b, T_O, 24, 32, 3), generator=g, dtype=torch.uint8)
    action = 0.01 * torch.randn(b, T_P, A, generator=g)
    action[..., GRIPPER_INDEX] = (torch.rand(b, T_P, generator=g) > 0.5).float()
    batch[ACTION_KEY] = action
    return batch


@pytest.mark.parametrize("config", [TINY_STATE, TINY_IMAGE], ids=["state", "image"])
def test_shapes_range_and_binary_gripper(config):
    policy = build(config)
    obs = make_obs(0)
    low, high = policy.action_bounds()
    chunks = policy.sample_chunks(history(), 5)
    assert chunks.shape == (5, T_A, A) and chunks.dtype == np.float32
    actions = policy.sample_actions(obs, 3)
    assert actions.shape == (3, A) and actions.dtype == np.float32
    a = policy.select_action(obs)
    assert a.shape == (A,) and np.all(np.isfinite(a))
    for x in (chunks.reshape(-1, A), actions, a[None]):
        assert np.all(x >= low - 1e-6) and np.all(x <= high + 1e-6)      # x̂_0 clipped to [-1, 1]: inside the range
        assert set(np.unique(x[:, GRIPPER_INDEX])) <= {0.0, 1.0}          # the gripper is a decision
    loss, info = policy.train().compute_loss(window_batch(image=config is TINY_IMAGE))
    assert loss.ndim == 0 and torch.isfinite(loss) and info["loss"] == pytest.approx(float(loss.detach()))
    loss.backward()
    assert all(p.grad is None for p in policy.ema_net.parameters())        # the EMA copy never trains


def test_k_batch_equals_k_separate_calls_with_the_same_noise(state_policy):
    noise = torch.randn(4, T_P, A, generator=torch.Generator().manual_seed(3))
    batched = state_policy.sample_chunks(history(), 4, noise=noise)
    for i in range(4):
        single = state_policy.sample_chunks(history(), 1, noise=noise[i:i + 1])
        np.testing.assert_allclose(batched[i], single[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(batched[0], batched[1])          # different noise, different samples


def test_ddim_sampling_is_reproducible(state_policy):
    noise = torch.randn(3, T_P, A, generator=torch.Generator().manual_seed(5))
    first = state_policy.sample_normalized({k: torch.tensor(v) for k, v in history().items()}, 3, noise)
    again = state_policy.sample_normalized({k: torch.tensor(v) for k, v in history().items()}, 3, noise)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    torch.manual_seed(9)
    a = state_policy.sample_chunks(history(), 2)
    torch.manual_seed(9)
    np.testing.assert_array_equal(a, state_policy.sample_chunks(history(), 2))


def test_action_queue_samples_once_per_executed_chunk_and_reset_clears_it(state_policy, monkeypatch):
    calls = []
    real = state_policy.sample_chunks

    def counting(hist, k, noise=None):
        calls.append({key: v.copy() for key, v in hist.items()})
        return real(hist, k, noise)

    monkeypatch.setattr(state_policy, "sample_chunks", counting)
    first = make_obs(0)
    torch.manual_seed(0)
    executed = [state_policy.select_action(make_obs(i)) for i in range(2 * T_A + 1)]
    assert len(calls) == 3                                  # ticks 0, T_A and 2·T_A sample; the rest pop the queue
    # An empty history is filled with copies of the first frame (training pads episode starts the same way) ...
    np.testing.assert_array_equal(calls[0][STATE_KEY], np.stack([first[STATE_KEY]] * T_O))
    # ... and later histories are the last T_o observations, oldest first.
    np.testing.assert_array_equal(calls[1][STATE_KEY], np.stack([make_obs(T_A - 1)[STATE_KEY],
                                                                 make_obs(T_A)[STATE_KEY]]))
    # The executed actions are the queued chunk in order.
    torch.manual_seed(0)
    chunk = real({k: np.stack([first[k]] * T_O) for k in first if k in state_policy.observation_keys()}, 1)[0]
    np.testing.assert_allclose(np.stack(executed[:T_A])[:, :GRIPPER_INDEX], chunk[:, :GRIPPER_INDEX], atol=1e-6)
    state_policy.reset()
    assert not state_policy._action_queue and not state_policy._obs_history
    state_policy.select_action(make_obs(7))
    assert len(calls) == 4
    np.testing.assert_array_equal(calls[3][STATE_KEY], np.stack([make_obs(7)[STATE_KEY]] * T_O))


def test_executed_gripper_does_not_flicker(state_policy, monkeypatch):
    """Chunks whose gripper toggles every step (a sampled decision near 0) must not toggle the fingers every tick:
    the actor that executes the policy (evaluation's PolicyActor, like the PolicyRunner) holds each change for
    gripper_hold_steps (3 here) ticks."""
    from robot_stack.learn.evaluate import PolicyActor

    flicker = np.zeros((T_A, A), np.float32)
    flicker[:, GRIPPER_INDEX] = np.arange(T_A) % 2
    monkeypatch.setattr(state_policy, "sample_chunks", lambda hist, k, noise=None: flicker[None].repeat(k, 0))
    actor = PolicyActor(state_policy, gripper_hold_steps=3)
    actor.reset("task", 0, "")
    out = np.array([actor.act(make_obs(0), None)[GRIPPER_INDEX] for _ in range(3 * T_A)])
    changes = np.flatnonzero(np.diff(out))
    assert set(out) <= {0.0, 1.0}
    assert len(changes) <= len(out) // 3 and np.all(np.diff(changes) >= 3), out    # raw: a change every tick
    assert len(changes) >= 2                                  # ... but it still follows a sustained decision


def test_compute_loss_takes_single_frames_and_refuses_unchunked_actions(state_policy):
    batch = window_batch()
    single = {k: (v[:, -1] if k != ACTION_KEY else v) for k, v in batch.items()}
    assert torch.isfinite(state_policy.compute_loss(single)[0])
    with pytest.raises(ValueError, match="data_window"):
        state_policy.compute_loss({**batch, ACTION_KEY: batch[ACTION_KEY][:, 0]})
    with pytest.raises(KeyError, match="environment_state"):
        state_policy.compute_loss({k: v for k, v in batch.items() if k != ENV_STATE_KEY})
    with pytest.raises(KeyError, match="environment_state"):
        state_policy.select_action({STATE_KEY: make_obs()[STATE_KEY]})


def test_fixed_dims_and_config_errors():
    policy = build(TINY_STATE, fixed_action_dims=[3, 4])
    assert np.all(policy.sample_chunks(history(), 3)[..., [3, 4]] == 0.0)
    with pytest.raises(ValueError, match="not the gripper"):
        build(TINY_STATE, fixed_action_dims=[GRIPPER_INDEX])
    with pytest.raises(ValueError, match="horizon"):
        build(TINY_STATE, horizon=4, n_action_steps=4)
    with pytest.raises(ValueError, match="cameras: \\[\\]"):
        build(TINY_STATE, cameras=["front"])
    with pytest.raises(ValueError, match="divisible"):
        build(TINY_STATE, horizon=9, n_action_steps=4).compute_loss(
            {**window_batch(), ACTION_KEY: torch.zeros(2, 9, A)})


def test_ema_follows_diffusion_policy_warmup(state_policy):
    assert ema_decay(0) == 0.0 and ema_decay(10**9) == 0.9999
    assert ema_decay(5000) == pytest.approx(1 - 5001 ** -0.75)
    policy = state_policy.train()
    opt = torch.optim.SGD([p for p in policy.parameters() if p.requires_grad], lr=0.1)
    for _ in range(3):
        loss, _ = policy.compute_loss(window_batch())
        opt.zero_grad()
        loss.backward()
        opt.step()
        before = [p.clone() for p in policy.ema_net.parameters()]
        decay = ema_decay(int(policy.ema_step))
        policy.after_optimizer_step()
        for b, e, p in zip(before, policy.ema_net.parameters(), policy.net.parameters(), strict=True):
            torch.testing.assert_close(e, decay * b + (1 - decay) * p)
    assert int(policy.ema_step) == 3


def test_dataset_windows_stay_inside_their_episode():
    from robot_stack.learn.dataset import FrameDataset

    class Store:
        def get_episode(self, i, keys):
            n = 3 + i
            return {STATE_KEY: np.full((n, 1), 100 * i, np.float32) + np.arange(n)[:, None],
                    ACTION_KEY: np.full((n, 1), 100 * i, np.float32) + np.arange(n)[:, None]}

    ds = FrameDataset.from_store(Store(), [0, 1, 2], [STATE_KEY, ACTION_KEY])
    policy = build(TINY_STATE)
    obs_off, act_off = policy.data_window()
    assert obs_off == (-1, 0) and act_off == tuple(range(-1, T_P - 1))

    def check(batch, n_samples, episodes):
        assert batch[STATE_KEY].shape == (n_samples, T_O, 1) and batch[ACTION_KEY].shape == (n_samples, T_P, 1)
        for s, a in zip(batch[STATE_KEY][..., 0].numpy(), batch[ACTION_KEY][..., 0].numpy(), strict=True):
            episode, t = divmod(int(s[-1]), 100)
            assert episode in episodes
            n = 3 + episode
            assert s[0] == 100 * episode + max(t - 1, 0)                         # padded with the first frame
            expected = [100 * episode + min(max(t + o, 0), n - 1) for o in act_off]  # ... and the last action
            np.testing.assert_array_equal(a, expected)

    check(ds.sample_window(64, np.random.default_rng(0), "cpu", obs_off, act_off), 64, {0, 1, 2})
    # The learner tails a growing store: windows drawn after new episodes arrive respect the new boundaries too.
    ds.add_episodes(Store(), [3, 4])
    check(ds.sample_window(256, np.random.default_rng(1), "cpu", obs_off, act_off), 256, {0, 1, 2, 3, 4})


def test_checkpoint_round_trip_and_runner_hot_swap(tmp_path):
    from robot_stack.policies.checkpoint import PolicySchema

    schema = make_schema()
    v1, v2 = build(TINY_IMAGE, seed=1), build(TINY_IMAGE, seed=2)
    root = tmp_path / "ckpt"
    p1 = save_checkpoint(v1, v1.normalizer, schema, root, 1, step=10)
    p2 = save_checkpoint(v2, v2.normalizer, schema, root, 2, step=20, parent=1)
    loaded, manifest = load_policy(p1)
    assert manifest.policy_type == "diffusion" and type(loaded) is type(v1)
    noise = torch.randn(2, T_P, A, generator=torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(loaded.sample_chunks(history(), 2, noise), v1.sample_chunks(history(), 2, noise))
    assert int(loaded.ema_step) == int(v1.ema_step)
    live = PolicySchema(schema.observation, schema.action, schema.action_space)
    runner = PolicyRunner(live)
    try:
        runner.request_load(make_update(p1))
        assert runner.wait_idle(60)
        obs = make_obs(0)
        assert runner.step(obs).shape == (A,) and runner.active_version == 1
        runner.request_load(make_update(p2))
        assert runner.wait_idle(60)
        a2 = runner.step(obs)
        assert runner.active_version == 2 and runner.stats.swaps == 2 and runner.stats.rejected == 0
        assert a2.shape == (A,) and np.all(np.isfinite(a2))
    finally:
        runner.close()


def test_image_mode_normaliser_without_env_state_is_refused_for_env_config():
    from robot_stack.policies.base import make_policy
    from robot_stack.policies.normalizer import Normalizer

    n = make_normalizer()
    no_env = Normalizer(n.action_q01, n.action_q99, n.state_mean, n.state_std)
    with pytest.raises(ValueError, match="environment-state statistics"):
        make_policy("diffusion", TINY_STATE, no_env)


@pytest.mark.parametrize("recipe", ["diffusion", "diffusion_state"])
def test_shipped_policy_recipes_compose_into_a_diffusion_config(recipe):
    from omegaconf import OmegaConf

    from robot_stack.conf import load_config
    from robot_stack.learn.bc import LearnerConfig
    from robot_stack.policies.diffusion import DiffusionConfig

    cfg = load_config(["learner=diffusion", f"policy={recipe}"])
    assert cfg.policy.type == "diffusion"
    config = DiffusionConfig.from_dict(OmegaConf.to_container(cfg.policy.config, resolve=True))
    config.validate()
    learner = {k: v for k, v in OmegaConf.to_container(cfg.learner, resolve=True).items() if k != "torch_threads"}
    assert LearnerConfig.from_dict(learner).algo == "bc"


def test_batched_sampling_equals_one_history_at_a_time_with_the_same_noise(state_policy):
    """sample_normalized_batch (PA-RL's N samples for each of B states) draws x_T as (B·K, T_p, A) and row block b
    is exactly sample_normalized of history b given that noise (η = 0: deterministic DDIM)."""
    b, k = 3, 4
    hists = [{key: torch.as_tensor(v) for key, v in history(s).items()} for s in range(b)]
    batch = {key: torch.stack([h[key] for h in hists]) for key in hists[0]}
    torch.manual_seed(7)
    out = state_policy.sample_normalized_batch(batch, k)
    torch.manual_seed(7)
    noise = torch.randn(b * k, T_P, A)
    assert out.shape == (b, k, T_P, A) and out.abs().max() <= 1.0
    for i, h in enumerate(hists):
        one = state_policy.sample_normalized(h, k, noise=noise[i * k:(i + 1) * k])
        assert torch.allclose(out[i], one, atol=1e-5)
    assert not torch.allclose(out[0], out[1])          # each row block is conditioned on its own history
    with pytest.raises(ValueError, match="k must be"):
        state_policy.sample_normalized_batch(batch, 0)
