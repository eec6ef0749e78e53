"""PA-RL (robot_stack/algos/parl.py): the action optimisation against hand-made critics (the reference's own linear-Q
check, top-k, best-iterate, selection), and tiny end-to-end PA-RL iterations on real stores with each base policy
(the diffusion policy in state mode on the point-mass sim; the tiny OpenVLA on a camera store)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from robot_stack.algos.parl import (
    ActionOptConfig,
    PARLLearnerConfig,
    PARLLearnerService,
    PARLSelector,
    local_optimize,
    optimize_actions,
    select_index,
)
from robot_stack.policies.checkpoint import CheckpointError, load_critic, load_policy, save_checkpoint


# ------------------------------------------------------------------------------------------ hand-made critics
def linear_q(w: torch.Tensor, heads: int = 2):
    """Q_i(s, a) = w·a for every head: (B, K, A) -> (E, B, K); ∇_a Q = w everywhere."""
    return lambda a: (a * w).sum(-1).unsqueeze(0).expand(heads, -1, -1)


def test_local_step_on_a_linear_q_moves_actions_by_steps_times_eta_times_grad():
    """PA-RL action_optimization.py test_local_optimization_steps: a + steps·η·∇Q (inside the box)."""
    torch.manual_seed(0)
    w = torch.tensor([2.0, -1.0, 0.5])
    a0 = 0.1 * torch.randn(4, 3, 3)
    best, value, it = local_optimize(linear_q(w), a0, num_steps=10, step_size=0.01, low=-1.0, high=1.0)
    assert torch.allclose(best, a0 + 10 * 0.01 * w, atol=1e-6)
    assert torch.allclose(value, (best * w).sum(-1), atol=1e-6)
    assert torch.all(it == 10)                         # Q rises every step: the final iterate is the best


def test_local_step_clips_to_the_box_and_never_moves_frozen_dims():
    w = torch.tensor([1.0, -1.0, 3.0])
    a0 = torch.tensor([[[0.95, -0.95, 0.2]]])
    frozen = torch.tensor([False, False, True])        # e.g. the gripper decision
    best, _, _ = local_optimize(linear_q(w), a0, num_steps=10, step_size=0.01, low=-1.0, high=1.0, frozen=frozen)
    assert torch.allclose(best, torch.tensor([[[1.0, -1.0, 0.2]]]))


def test_local_step_keeps_each_samples_best_iterate():
    """Q(a) = −(a − 0.05)²·100 with a step too large: the iterates overshoot and oscillate, and the kept action
    is the best-valued one seen, not the last (keep_action_with_max_value)."""
    q = lambda a: (-(a[..., 0] - 0.05) ** 2 * 100).unsqueeze(0)   # noqa: E731
    a0 = torch.tensor([[[0.0], [0.3]]])
    best, value, it = local_optimize(q, a0, num_steps=6, step_size=0.019, low=-1.0, high=1.0)
    # Replay the same iteration by hand.
    for j in range(2):
        xs, x = [], float(a0[0, j, 0])
        for _ in range(7):
            xs.append(x)
            x = min(1.0, max(-1.0, x + 0.019 * (-200 * (x - 0.05))))
        vals = [-(v - 0.05) ** 2 * 100 for v in xs]
        k = max(range(7), key=lambda i: (vals[i], i))
        assert best[0, j, 0].item() == pytest.approx(xs[k], abs=1e-6) and int(it[0, j]) == k
        assert value[0, j].item() == pytest.approx(max(vals), abs=1e-6)
        assert k != 6 or vals[6] >= max(vals)          # the last iterate only when it is the best


def table_q(*heads: dict[float, float]):
    """Q_i(s, a) looked up by the (1-D) action's value: (B, K, 1) -> (E, B, K); constant around each entry (no
    gradient), so the global step alone decides."""
    def q(a):
        keys = [[round(float(x), 3) for x in row] for row in a[..., 0]]
        return torch.stack([torch.tensor([[h[k] for k in row] for row in keys]) for h in heads]) + 0 * a[..., 0]
    return q


def test_global_step_keeps_the_top_k_by_ensemble_mean_q():
    """Heads that disagree: the ranking is by their MEAN (PA-RL ranks with .mean(axis=0)), not by their min."""
    cand = torch.tensor([[[0.1], [0.2], [0.3], [0.4], [0.5]]])            # (B=1, N=5, A=1)
    head0 = {0.1: 10.0, 0.2: 1.0, 0.3: 1.2, 0.4: 0.0, 0.5: -3.0}
    head1 = {0.1: -7.0, 0.2: 1.0, 0.3: 0.9, 0.4: 0.5, 0.5: 0.0}          # mean 1.5, 1, 1.05, .25, −1.5; min −7, 1, .9
    res = optimize_actions(table_q(head0, head1), cand, ActionOptConfig(num_keep=3, num_steps=0))
    assert sorted(res.source[0].tolist()) == [0, 1, 2]                    # the min would have kept 0.4 over 0.1
    assert res.source[0].tolist()[-1] == 0                                # best last, as the reference orders them
    assert int(res.index[0]) == 2 and res.chosen[0, 0].item() == pytest.approx(0.1)
    assert torch.allclose(res.q_before[0], torch.tensor([1.0, 1.05, 1.5]))


def test_extra_action_replaces_the_worst_kept_sample():
    cand = torch.tensor([[[0.1], [0.2], [0.3], [0.4]]])
    q = lambda a: (a[..., 0] * 10).unsqueeze(0)                           # noqa: E731  (best = largest)
    extra = torch.tensor([[-0.5]])
    res = optimize_actions(q, cand, ActionOptConfig(num_keep=3, num_steps=0), extra=extra)
    assert sorted(round(float(x), 1) for x in res.actions[0, :, 0]) == [-0.5, 0.3, 0.4]
    assert res.source[0].tolist() == [2, 3, -1] and int(res.index[0]) == 1   # argmax: the 0.4 sample


def test_argmax_picks_the_max_q_and_softmax_matches_its_distribution():
    values = torch.tensor([[0.0, 1.0, 2.0, -1.0]])
    assert int(select_index(values, "argmax")[0]) == 2
    gen = torch.Generator().manual_seed(0)
    draws = select_index(values.expand(20000, -1), "softmax", temperature=1.0, generator=gen)
    freq = torch.bincount(draws, minlength=4).float() / 20000
    p = torch.softmax(values[0], -1)
    assert torch.allclose(freq, p, atol=0.015), (freq, p)
    draws = select_index(values.expand(20000, -1), "softmax", temperature=0.5, generator=gen)
    freq = torch.bincount(draws, minlength=4).float() / 20000
    assert torch.allclose(freq, torch.softmax(values[0] / 0.5, -1), atol=0.015)
    with pytest.raises(ValueError, match="selection"):
        select_index(values, "best")


def test_config_refuses_bad_values():
    with pytest.raises(ValueError, match="selection"):
        ActionOptConfig.from_dict({"selection": "max"})
    with pytest.raises(ValueError, match="no field"):
        ActionOptConfig.from_dict({"num_samples": 3})
    with pytest.raises(ValueError, match="base_checkpoint"):
        PARLLearnerConfig.from_dict({"algo": "parl"})


# ------------------------------------------------------------------------------------------ end to end
TINY_DIFFUSION = {"arch": "none", "cameras": [], "use_state": True, "use_environment_state": True, "latent_dim": 16,
                  "down_dims": [16], "step_embed_dim": 16, "unet_groups": 4, "horizon": 4, "n_action_steps": 2,
                  "num_inference_steps": 3}
TINY_STATE_CRITIC = {"cameras": [], "arch": "none", "use_state": True, "use_environment_state": True,
                     "latent_dim": 16, "actor_hidden_dims": [16], "critic_hidden_dims": [32, 32], "num_qs": 4,
                     "critic_layer_norm": True}
TINY_OPT = {"num_base_actions": 6, "num_keep": 3, "num_steps": 2, "step_size": 0.05}


def parl_cfg(base_checkpoint, policy_config, **kw) -> PARLLearnerConfig:
    d = dict(algo="parl", base_checkpoint=str(base_checkpoint), policy_config=policy_config,
             algo_config={"action_opt": TINY_OPT, "cql_n_actions": 3}, offline_steps=4, batch_size=8,
             distill_batch_size=8, sources=["sim"], min_episodes=1, checkpoint_every_steps=1000,
             val_every_episode=0, val_every_steps=0, log_every_steps=2, poll_interval_s=0.05,
             reward={"num_final_reward_steps": 1, "scale": 1.0, "bias": -1.0}, cache_block_states=16)
    d.update(kw)
    return PARLLearnerConfig.from_dict(d)


@pytest.fixture(scope="module")
def point_mass_base(tmp_path_factory):
    """A few BC updates of a tiny diffusion policy on 4 point-mass demos, as a published checkpoint."""
    from robot_stack.learn.bc import LearnerConfig, train_bc
    from robot_stack.policies.checkpoint import PolicySchema
    from robot_stack.sim.point_mass import generate_point_mass
    from robot_stack.store import TrajectoryStore

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("parl_base")
    generate_point_mass(root / "demos.zarr", 4, seed=1)
    with TrajectoryStore.open(root / "demos.zarr", mode="r") as store:
        res = train_bc(store, LearnerConfig(sources=("sim",), batch_size=8, seed=0, log_every_steps=10**6), 10,
                       policy_type="diffusion", policy_config=TINY_DIFFUSION)
        save_checkpoint(res.policy, res.normalizer, PolicySchema.from_store_schema(store.schema), root / "base", 1,
                        res.step)
    return root / "base"


def test_one_parl_iteration_with_the_diffusion_policy(point_mass_base, tmp_path):
    """Offline critic updates, one online round acted by the PA-RL selector (episode into the store), distillation
    (UTD 1) and critic updates (UTD 1); published base and critic versions load, and the new base differs from
    the BC start."""
    from robot_stack.learn.evaluate import observe
    from robot_stack.learn.online import run_online
    from robot_stack.sim.point_mass import TASK, PointMassSim, generate_point_mass
    from robot_stack.store import TrajectoryStore

    torch.manual_seed(0)
    store_path = tmp_path / "store.zarr"
    generate_point_mass(store_path, 3, seed=2)
    updates = []
    svc = PARLLearnerService(store_path, tmp_path / "ckpt", parl_cfg(point_mass_base, TINY_STATE_CRITIC),
                             announce=updates.append)
    start, _ = load_policy(point_mass_base)
    rounds = run_online(svc, PointMassSim(), TASK, store_path, rounds=1, episodes_per_round=1, seed=0,
                        make_actor=lambda s: s.make_actor())
    with TrajectoryStore.open(store_path, mode="r") as store:
        online = store.episodes(source="policy")
        assert len(online) == 1
        n_online = len(store.get_episode(online[0], keys=["action"])["action"])
    assert rounds[0].updates == n_online                                  # critic UTD 1
    assert len(svc.distill_history) == n_online                           # base-policy UTD 1
    assert svc.step == 4 + n_online
    for m in svc.metrics_history + svc.distill_history:
        assert all(math.isfinite(v) for v in m.values()), m
    assert {"critic/cql_diff", "critic/bound_rate", "parl/value_gain"} <= set(svc.metrics_history[-1])
    assert 0.0 <= np.mean([m["distill/data_action_chosen"] for m in svc.distill_history]) <= 1.0

    base_updates = [u for u in updates if u.policy_type == "diffusion"]
    critic_updates = [u for u in updates if u.policy_type == "actor_critic"]
    assert [u.version for u in base_updates] == [1] and critic_updates
    base, manifest = load_policy(tmp_path / "ckpt")
    critic, _ = load_critic(tmp_path / "ckpt" / "critic")        # kind "critic", has q_values
    with pytest.raises(CheckpointError, match="not a critic"):
        load_critic(tmp_path / "ckpt")                            # the base is a policy checkpoint
    assert manifest.extra["algo"] == "parl" and manifest.step == n_online
    changed = [k for k, v in base.state_dict().items() if v.dtype.is_floating_point
               and not torch.equal(v, start.state_dict()[k])]
    assert any(k.startswith("net.") for k in changed) and any(k.startswith("ema_net.") for k in changed)

    sim = PointMassSim()
    sim.reset(seed=5)
    obs = observe(sim, (), environment_state=True)
    base.reset()
    assert base.select_action(obs).shape == (7,)
    action, info = PARLSelector(critic, TINY_OPT, seed=0).select(base, obs)
    low, high = base.action_bounds()
    assert action.shape == (7,) and np.all(np.isfinite(action))
    assert np.all(action[:6] >= np.minimum(low, critic.action_bounds()[0])[:6] - 1e-5)
    assert 0 <= info["index"] < TINY_OPT["num_base_actions"] and info["k"] == TINY_OPT["num_keep"]
    assert action[6] in (0.0, 1.0)


def test_the_recipes_compose_and_build_the_parl_learner(tmp_path):
    """`robot-stack learn learner=parl_*` builds PARLLearnerService with the reference's numbers (§5)."""
    from robot_stack.conf import load_config
    from robot_stack.learn.services import build_service

    common = [f"store={tmp_path / 's.zarr'}", f"checkpoints={tmp_path / 'ckpt'}"]
    with pytest.raises(ValueError, match="learner.base_checkpoint"):
        build_service(load_config(["learner=parl_diffusion_state", *common]))
    svc = build_service(load_config(["learner=parl_diffusion_state", *common, "learner.base_checkpoint=/b"]))
    assert isinstance(svc, PARLLearnerService) and svc.base_dir == tmp_path / "ckpt"
    opt = ActionOptConfig.from_dict(svc.algo_cfg.action_opt)
    assert (opt.num_base_actions, opt.num_keep, opt.num_steps, opt.step_size) == (32, 10, 10, 3e-4)
    assert (svc.cfg.base_lr, svc.cfg.base_policy_utd, svc.cfg.utd_ratio, svc.cfg.distill_argmax) == (5e-5, 1, 1, False)
    assert svc.cfg.distill_mixing_ratio == -1.0                 # N_off / (N_off + N_online), as train.py
    assert svc.cfg.policy_config["num_qs"] == 10 and svc.algo_cfg.critic_subsample == 2
    svc = build_service(load_config(["learner=parl_openvla", *common, "learner.base_checkpoint=/b"]))
    opt = ActionOptConfig.from_dict(svc.algo_cfg.action_opt)
    assert (opt.num_base_actions, opt.num_keep) == (8, 4)
    assert (svc.cfg.base_lr, svc.cfg.distill_batch_size, svc.cfg.mixing_ratio, svc.cfg.distill_mixing_ratio) == \
        (2e-5, 16, 0.0, 0.0)


@pytest.mark.parametrize("layer_norm,cond", [(True, 0), (False, 3)])
def test_state_conditioned_heads_equal_the_critic(layer_norm, cond):
    """The optimisation's precomputed-state critic is the actor_critic critic, value and action gradient."""
    from robot_stack.algos.parl import StateConditionedHeads
    from robot_stack.policies.actor_critic import CriticHeads

    torch.manual_seed(0)
    heads = CriticHeads(3, 16, cond, 7, (32, 24, 8), 0.5, layer_norm)
    z, c = torch.randn(5, 16), (torch.randn(5, cond) if cond else None)
    a = torch.randn(5, 4, 7, requires_grad=True)
    ref = heads(z, c, a)
    fast = StateConditionedHeads(heads, z, c)(a)
    assert fast.shape == ref.shape == (3, 5, 4) and torch.allclose(fast, ref, atol=1e-5)
    g_ref, g_fast = (torch.autograd.grad(q.mean(0).sum(), a)[0] for q in (ref, fast))
    assert torch.allclose(g_fast, g_ref, atol=1e-5)


def test_selector_without_or_with_a_broken_critic_executes_the_first_sample(point_mass_base):
    """No critic yet / a critic that cannot read the observation: the tick still acts (the policy's first sample) and
    info says why, as VGPSSelector does; a policy hot swap needs nothing from the selector."""
    from robot_stack.learn.evaluate import observe
    from robot_stack.sim.point_mass import PointMassSim

    base, _ = load_policy(point_mass_base)
    sim = PointMassSim()
    sim.reset(seed=1)
    obs = observe(sim, (), environment_state=True)
    action, info = PARLSelector(None, TINY_OPT).select(base, obs)
    assert action.shape == (7,) and info["index"] == 0 and "no critic" in info["fallback"]
    torch.manual_seed(0)
    from robot_stack.policies.base import make_policy

    camera_critic = make_policy("actor_critic", {"arch": "resnet_tiny", "base_width": 8, "latent_dim": 16,
                                                 "image_size_px": 32, "cameras": ["front"], "actor_hidden_dims": [16],
                                                 "critic_hidden_dims": [16]}, base.normalizer)
    selector = PARLSelector(camera_critic, TINY_OPT, seed=0)
    action, info = selector.select(base, obs)                  # the critic reads a camera this rig lacks
    assert "KeyError" in info["fallback"] and selector.critic_fallbacks == 1 and action.shape == (7,)
    critic = make_policy("actor_critic", {**TINY_STATE_CRITIC, "extra": {"kind": "critic"}}, base.normalizer)
    action, info = PARLSelector(critic, TINY_OPT, seed=0).select(base, obs)
    assert "fallback" not in info and 0 <= info["index"] < TINY_OPT["num_base_actions"]
    assert info["k"] == TINY_OPT["num_keep"] and info["beta"] == 0.0 and info["select_ms"] >= info["sample_ms"]
