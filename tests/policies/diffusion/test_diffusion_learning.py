"""Learning tests: the diffusion policy must learn, and learn what MSE behaviour cloning cannot.

1. Two modes (Chi et al. 2023 §4.1, the classic diffusion check): from every observation the demonstrations move
   +1 cm or −1 cm along x for a whole chunk, half each. MSE-BC (actor_critic's BC loss) learns the average, 0 cm:
   an action no demonstration ever took. The diffusion policy's samples land in both modes and not between them.
2. End to end on the point-mass reach-and-grasp (robot_stack.sim.point_mass, the learner tests' task): 10 expert
   demos in a zarr store, the BC learner's own `train_bc` with temporal windows and the EMA hook, evaluated with
   robot_stack.learn.evaluate on seeded resets through select_action (the action queue and the held gripper).
   The untrained policy is checked to fail first, so the threshold can fail. Thresholds sit below the worst measured
   seed (numbers in each test), so platform float differences do not flake them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import STATE_DIM

from robot_stack.policies.base import make_policy
from robot_stack.policies.normalizer import Normalizer
from robot_stack.types import ACTION_KEY, GRIPPER_INDEX, STATE_KEY

MODE_M = 0.01            # the two modes: dx = ±1 cm per step
BIMODAL_STEPS = 600
# Point mass: after 800 updates of batch 32, measured success 0.73 / 0.83 / 0.63 (learner seeds 0 / 1 / 2; batch 64:
# 0.80 / 0.80 at twice the time).
STEPS, BATCH, THRESHOLD = 800, 32, 0.5
TINY = {"arch": "none", "cameras": [], "use_state": True, "use_environment_state": False, "latent_dim": 16,
        "down_dims": [16, 32], "step_embed_dim": 16, "unet_groups": 4, "horizon": 8, "n_action_steps": 4,
        "num_inference_steps": 10, "lr": 1e-3}


# A few fixed observations (seen in training, so the test probes multi-modality, not generalisation).
OBSERVATIONS = np.random.default_rng(123).normal(size=(8, STATE_DIM)).astype(np.float32)


def bimodal_batch(rng: np.random.Generator, b: int, horizon: int) -> dict[str, torch.Tensor]:
    """Observations carry no information about the mode; each chunk is one mode throughout."""
    sign = rng.choice([-1.0, 1.0], size=(b, 1))
    action = np.zeros((b, horizon, 7), np.float32)
    action[..., 0] = sign * MODE_M + rng.normal(0.0, 0.0005, (b, horizon))
    action[..., GRIPPER_INDEX] = 1.0
    state = OBSERVATIONS[rng.integers(0, len(OBSERVATIONS), b)][:, None].repeat(2, axis=1)
    return {STATE_KEY: torch.from_numpy(state), ACTION_KEY: torch.from_numpy(action)}


def fit(policy, batches, steps: int, lr: float = 1e-3) -> None:
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=lr)
    policy.train()
    for _ in range(steps):
        loss, _ = policy.compute_loss(next(batches))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if hasattr(policy, "after_optimizer_step"):
            policy.after_optimizer_step()
    policy.eval()


def test_diffusion_samples_both_modes_where_mse_bc_averages_them():
    rng = np.random.default_rng(0)
    flat = bimodal_batch(rng, 4000, 1)
    normalizer = Normalizer.fit(flat[ACTION_KEY][:, 0].numpy(), flat[STATE_KEY][:, 0].numpy())
    torch.manual_seed(0)
    diffusion = make_policy("diffusion", TINY, normalizer)

    def chunks():
        while True:
            yield bimodal_batch(rng, 64, TINY["horizon"])

    fit(diffusion, chunks(), BIMODAL_STEPS, lr=3e-3)
    obs = {STATE_KEY: OBSERVATIONS[0]}
    torch.manual_seed(1)
    dx = diffusion.sample_actions(obs, 200)[:, 0]
    share_plus = float(np.mean(dx > 0))
    between = float(np.mean(np.abs(dx) < MODE_M / 2))
    # Measured after 600 updates at lr 3e-3 (seeds 0 / 1 / 2 of data + init): 0.44 / 0.42 / 0.52 of the samples in
    # the + mode, 0.06 / 0.16 / 0.16 between the modes (|dx| < 5 mm); at lr 1e-3 seed 1 still had 0.42 between, so
    # the budget is tight and the test runs seed 0. MSE-BC below puts every action between the modes.
    assert 0.2 <= share_plus <= 0.8, f"diffusion collapsed onto one mode: {share_plus:.2f} of samples at +1 cm"
    assert between <= 0.3, f"{between:.2f} of diffusion samples fall between the modes"

    torch.manual_seed(0)
    mse_bc = make_policy("actor_critic", {"arch": "none", "cameras": [], "use_state": True, "latent_dim": 32,
                                          "actor_hidden_dims": [64, 64], "critic_hidden_dims": [8]}, normalizer)

    def frames():
        while True:
            b = bimodal_batch(rng, 64, 1)
            yield {STATE_KEY: b[STATE_KEY][:, -1], ACTION_KEY: b[ACTION_KEY][:, 0]}

    fit(mse_bc, frames(), 400)
    bc_dx = np.array([mse_bc.select_action({STATE_KEY: o})[0] for o in OBSERVATIONS])
    # MSE's optimum is the mean of the modes: every BC action is nearer 0 than either mode (measured |dx| < 1 mm).
    assert np.all(np.abs(bc_dx) < MODE_M / 2), f"MSE-BC did not average the modes: dx {bc_dx}"


@pytest.fixture(scope="module")
def point_mass_demos(tmp_path_factory):
    from robot_stack.sim.point_mass import generate_point_mass

    path = tmp_path_factory.mktemp("diffusion_learning") / "demos.zarr"
    ok, _ = generate_point_mass(path, 10, seed=1)
    assert ok == 10
    return path


def point_mass_success(policy, episodes: int = 30) -> float:
    from robot_stack.learn.evaluate import evaluate
    from robot_stack.sim.point_mass import TASK, PointMassSim

    return evaluate(policy, TASK, episodes, sim=PointMassSim()).success_rate


def test_diffusion_learns_point_mass_reach_and_grasp_from_ten_demos(point_mass_demos):
    from robot_stack.learn.bc import LearnerConfig, train_bc
    from robot_stack.store import TrajectoryStore

    # One UNet level, 4-step chunks with 2 executed: point-mass episodes are 3-8 steps long.
    config = {**TINY, "use_environment_state": True, "latent_dim": 32, "down_dims": [32], "horizon": 4,
              "n_action_steps": 2}
    cfg = LearnerConfig(sources=("sim",), batch_size=BATCH, seed=0, log_every_steps=10**6)
    with TrajectoryStore.open(point_mass_demos, mode="r") as store:
        untrained = train_bc(store, cfg, 0, policy_type="diffusion", policy_config=config).policy
        assert point_mass_success(untrained) <= 0.2
        result = train_bc(store, cfg, STEPS, policy_type="diffusion", policy_config=config)
    assert int(result.policy.ema_step) == STEPS                # the learner ran the EMA hook every update
    assert np.mean(result.losses[-50:]) < 0.5 * np.mean(result.losses[:50])
    assert point_mass_success(result.policy) >= THRESHOLD




def test_bc_learner_service_trains_and_publishes_diffusion_versions(point_mass_demos, tmp_path):
    """conf/learner/diffusion.yaml's service (algo bc) with a diffusion policy: windows, EMA, versioned checkpoints."""
    from robot_stack.learn.bc import LearnerConfig, LearnerService
    from robot_stack.policies.checkpoint import load_policy

    cfg = LearnerConfig(sources=("sim",), min_episodes=1, steps_per_version=5, max_versions=2, batch_size=8,
                        log_every_steps=10**6)
    service = LearnerService(point_mass_demos, tmp_path / "ckpt", cfg, policy_type="diffusion",
                             policy_config={**TINY, "use_environment_state": True})
    updates = service.run()
    assert [u.version for u in updates] == [1, 2] and {u.policy_type for u in updates} == {"diffusion"}
    policy, manifest = load_policy(tmp_path / "ckpt")
    assert manifest.step == 10 and int(policy.ema_step) == 10
    assert policy.select_action(point_mass_obs()).shape == (7,)


def point_mass_obs() -> dict[str, np.ndarray]:
    from robot_stack.learn.evaluate import observe
    from robot_stack.sim.point_mass import PointMassSim

    sim = PointMassSim()
    sim.reset(seed=0)
    return observe(sim, (), environment_state=True)
