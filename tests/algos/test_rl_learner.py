"""Tiny end-to-end runs of every RL algorithm on a real tmp store: finite losses, checkpoints the inference
PolicyRunner loads and acts with, exact resume after a crash, online tailing, and the torch.distributed path."""

import json
import math

import numpy as np
import pytest
import torch

from robot_stack.inference.runner import PolicyRunner
from robot_stack.learn.rl_service import TRAIN_STATE_FILE, RLLearnerConfig, RLLearnerService
from robot_stack.policies.checkpoint import PolicySchema, load_policy, verify_checkpoint

TASK_B = "take the cube out of the bowl"   # the second task of the rl_store fixture
TINY_AC = {"arch": "resnet_tiny", "base_width": 8, "latent_dim": 16, "image_size_px": 32,
           "actor_hidden_dims": [32, 32], "critic_hidden_dims": [32, 32], "cameras": ["front", "wrist"]}


def _cfg(algo, tmp_path, **kw):
    base = dict(algo=algo, policy_config=TINY_AC, offline_steps=6, checkpoint_every_steps=3, batch_size=8,
                val_every_episode=3, val_every_steps=3, log_every_steps=3, min_episodes=2, poll_interval_s=0.05,
                tensorboard_dir=str(tmp_path / f"tb_{algo}"))
    base.update(kw)
    return RLLearnerConfig(**base)


def _check_runner(store, update):
    runner = PolicyRunner(PolicySchema.from_store_schema(store.schema))
    runner.request_load(update)
    assert runner.wait_idle(30) and runner.stats.rejected == 0
    obs = {k: v[0] for k, v in store.get_episode(0).items() if k.startswith("observation.")}
    action = runner.step(obs)
    runner.close()
    assert runner.active_version == update.version and action.shape == (7,) and np.all(np.isfinite(action))
    policy, _ = load_policy(update.path)
    low, high = policy.action_bounds()
    samples = policy.sample_actions(obs, 5)
    assert samples.shape == (5, 7) and np.all(samples >= low - 1e-5) and np.all(samples <= high + 1e-5)
    q = policy.q_values(obs, samples)
    assert q.shape == (5,) and np.all(np.isfinite(q))


@pytest.mark.parametrize("algo,extra", [
    ("calql", {}),
    ("cql", {"target_task": TASK_B, "target_switch_step": 3}),   # the PTR recipe: 100 % prior, then 90/10
    ("bc_actor", {}),
    ("awac", {"algo_config": {"utd": 2}}),
])
def test_algorithm_end_to_end(rl_store, tmp_path, algo, extra):
    path, store = rl_store(6)
    progress = []
    service = RLLearnerService(path, tmp_path / "ckpt", _cfg(algo, tmp_path, **extra), on_progress=progress.append)
    updates = service.run()
    assert [u.version for u in updates] == [1, 2]
    assert all(math.isfinite(v) for m in service.metrics_history for v in m.values())
    assert len(service.metrics_history) == 6 and [p["step"] for p in progress] == [3.0, 6.0]
    assert progress[0]["perf/samples_per_s"] == pytest.approx(8 * progress[0]["perf/steps_per_s"])
    if algo in ("cql", "calql"):
        for key in ("critic/cql_diff", "critic/td_loss", "critic/q_data", "actor/entropy", "actor/alpha"):
            assert key in service.metrics_history[-1]
    if algo == "awac":
        for key in ("critic/q_data", "critic/q_ensemble_std", "actor/advantage", "actor/weight_max", "actor/bc"):
            assert key in service.metrics_history[-1]
    if algo != "bc_actor":
        assert any("eval/val_q_data" in v and "eval/train_q_data" in v for v in service.val_history)
    if algo == "calql":
        assert 0.0 <= service.metrics_history[-1]["critic/bound_rate"] <= 1.0
    if "target_task" in extra:
        assert len(service.target_pool) > 0 and service.schedule.ratio_at(3) == 0.9
    manifest = verify_checkpoint(updates[-1].path)
    assert manifest.step == 6 and "optim.safetensors" in manifest.files and TRAIN_STATE_FILE in manifest.files
    assert list((tmp_path / f"tb_{algo}").glob("events.out.tfevents.*"))
    _check_runner(store, updates[-1])


def _weights(path):
    policy, _ = load_policy(path)
    return {k: v.clone() for k, v in policy.state_dict().items()}


def test_resume_is_exact(rl_store, tmp_path):
    """6 steps straight == 3 steps, 'crash', resume from the v1 checkpoint, 3 more steps (same weights bit for bit)."""
    path, _ = rl_store(5)
    straight = RLLearnerService(path, tmp_path / "a", _cfg("calql", tmp_path, prefetch_depth=2)).run()
    crashing = RLLearnerService(path, tmp_path / "b", _cfg("calql", tmp_path))
    crashing.on_progress = lambda report: crashing.stop()   # "crash" right after step 3 (its checkpoint is v1)
    assert [u.version for u in crashing.run()] == [1] and crashing.step == 3
    resumed = RLLearnerService(path, tmp_path / "b", _cfg("calql", tmp_path, prefetch_depth=0)).run()
    assert [u.version for u in resumed] == [1, 2]
    state = json.loads((tmp_path / "b" / "v0002" / TRAIN_STATE_FILE).read_text())
    assert state["step"] == 6 and state["phase"] == "done"
    wa, wb = _weights(straight[-1].path), _weights(resumed[-1].path)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=0, msg=k)


def test_resume_takes_the_configured_learning_rate(rl_store, tmp_path):
    """Moments and step resume from the checkpoint, the learning rate from the config: a run resumed with a new
    actor_lr must use it (torch's load_state_dict alone would silently restore the saved one)."""
    path, _ = rl_store(5)
    RLLearnerService(path, tmp_path / "c", _cfg("calql", tmp_path, offline_steps=3)).run()
    resumed = RLLearnerService(path, tmp_path / "c", _cfg("calql", tmp_path, offline_steps=6,
                                                          algo_config={"actor_lr": 1e-5}))
    resumed.run()
    assert resumed.step == 6
    opt = resumed.algo.optimizers()
    assert [g["lr"] for g in opt["actor"].param_groups] == [1e-5]
    assert opt["critic"].param_groups[0]["lr"] == resumed.algo_cfg.critic_lr
    assert len(opt["actor"].state) > 0                                    # the Adam moments did resume


def test_online_finetuning_tails_the_store(rl_store, tmp_path):
    path, store = rl_store(4)
    # online_steps = the 16 new transitions at UTD 1: the learner must take in both episodes whether it sees them in
    # one poll or two (with 8, a loaded machine let it finish on the first episode alone).
    cfg = _cfg("calql", tmp_path, offline_steps=3, online=True, online_steps=16, utd_ratio=1.0,
               checkpoint_every_steps=4, reset_optimizers_online=True, val_every_steps=0)
    service = RLLearnerService(path, tmp_path / "ckpt", cfg)
    thread = service.start()
    # Two policy episodes committed while the learner waits: 16 new transitions -> UTD 1 gives 16 steps.
    rl_store.append(store, 10, n_steps=8, source="policy", success=True)
    rl_store.append(store, 11, n_steps=8, source="policy", success=False)
    service.join(60)
    assert not thread.is_alive()
    assert service.step == 3 + 16 and len(service.online_pool) == 16
    # MC returns computed on commit (default PTR reward, γ .99): failure -> r_neg/(1 − γ); success ends at +10.
    mc = service.online_pool.arrays["mc_return"]
    assert np.isclose(mc[8:], -1.0 / (1 - 0.99)).all() and mc[7] == pytest.approx(10.0)
    assert service.updates[-1].version >= 2 and verify_checkpoint(service.updates[-1].path).step == 3 + 16
    _check_runner(store, service.updates[-1])


def test_distributed_gloo_world_size_one(rl_store, tmp_path):
    import torch.distributed as dist

    path, _ = rl_store(4)
    cfg = _cfg("cql", tmp_path, offline_steps=3, checkpoint_every_steps=3,
               distributed={"backend": "gloo", "init_method": f"file://{tmp_path / 'pg'}", "world_size": 1,
                            "rank": 0})
    try:
        service = RLLearnerService(path, tmp_path / "ckpt", cfg)
        updates = service.run()
        assert dist.is_initialized() and service.algo.grad_sync is not None
        assert [u.version for u in updates] == [1]
        assert all(math.isfinite(v) for m in service.metrics_history for v in m.values())
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_cql_bc_warm_start_phase_then_rl(rl_store, tmp_path):
    """bc_steps (CQL's policy_eval_start / CORL bc_steps): the first updates train the actor by BC on the successful
    transitions (demo_guidance.warm_start_loss), later ones on Q; the phase follows the service's step, α waits at
    its initial value meanwhile, and the successful data's BC loss ends lower than the same run without it."""
    path, store = rl_store(6)

    def run(bc_steps: int, name: str):
        cfg = _cfg("cql", tmp_path / name, offline_steps=40, checkpoint_every_steps=40, val_every_steps=0,
                   val_every_episode=0, log_every_steps=40, seed=0,
                   algo_config={"bc_steps": bc_steps, "cql_alpha": 1.0, "actor_lr": 1e-3})
        service = RLLearnerService(path, tmp_path / name / "ckpt", cfg)
        service.run()
        policy = service.policy
        batch = {k: torch.as_tensor(v) for k, v in service.make_batch(0).items()}
        with torch.no_grad():
            policy.eval()
            mean, log_std = policy.actor_dist(policy.prepare_obs(batch))
            bc, _ = policy.bc_terms(mean, log_std, policy.to_policy_action(batch["action"]))
        w = batch["success"]
        assert 0 < w.sum() < len(w)   # the batch mixes successes and failures; only the successes are imitated
        return service.metrics_history, float((w * bc).sum() / w.sum())

    history, bc_warm = run(40, "warm")
    control, bc_rl = run(0, "rl")
    assert [m["actor/bc_phase"] for m in history] == [1.0] * 40
    assert [m["actor/bc_phase"] for m in control] == [0.0] * 40
    assert len({m["actor/alpha"] for m in history}) == 1 and control[-1]["actor/alpha"] != control[0]["actor/alpha"]
    assert bc_warm < bc_rl - 0.01, (bc_warm, bc_rl)   # measured 0.700 vs 0.721 (seed 0; random labels bound it)


def test_online_batches_mix_sources_in_every_minibatch(tmp_path):
    """RLPD/AWAC split each batch into `utd` consecutive minibatches and step the actor on the last one, so the
    service must shuffle the 50/50 offline/online rows: every minibatch holds both (before the fix the actor's
    minibatch was online data only and the demos' BC term saw none of the demos)."""
    from robot_stack.learn.online import run_online
    from robot_stack.sim.point_mass import TASK, PointMassSim, generate_point_mass
    from robot_stack.types import ENV_STATE_KEY

    store = tmp_path / "pm.zarr"
    generate_point_mass(store, 4, seed=1)
    cfg = RLLearnerConfig.from_dict({
        "algo": "awac", "algo_config": {"utd": 4}, "offline_steps": 2, "online": True, "batch_size": 64,
        "policy_config": {"arch": "none", "cameras": [], "use_environment_state": True, "latent_dim": 16,
                          "actor_hidden_dims": [16], "critic_hidden_dims": [16], "num_qs": 2},
        "sources": ["sim"], "min_episodes": 1, "checkpoint_every_steps": 100_000, "val_every_episode": 0,
        "log_every_steps": 100_000, "reward": {"num_final_reward_steps": 1, "scale": 1.0, "bias": -1.0}})
    svc = RLLearnerService(store, tmp_path / "ckpt", cfg)
    run_online(svc, PointMassSim(), TASK, store, rounds=1, episodes_per_round=3, seed=0)
    online_rows = {r.tobytes() for r in svc.online_pool.arrays[ENV_STATE_KEY]}
    offline_rows = {r.tobytes() for r in svc.prior_pool.arrays[ENV_STATE_KEY]}
    assert online_rows and not online_rows & offline_rows
    for step in range(3):
        batch = svc.make_batch(svc.step + step)
        is_online = np.array([r.numpy().tobytes() in online_rows for r in batch[ENV_STATE_KEY]])
        assert is_online.mean() == 0.5                                    # RLPD's symmetric sampling
        for quarter in is_online.reshape(4, 16):                          # the utd minibatches
            assert 0 < quarter.sum() < 16
