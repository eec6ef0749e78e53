"""PA-RL fine-tuning of the diffusion policy (issue 13): writes benchmarks/results/parl.{md,json,png}.

    per seed s (state mode, put_cube_in_bowl, the same 20 scripted demos as bench_diffusion: generator 4000 + s)
      prepare:  diffusion_state.yaml by BC for `pretrain_steps` updates (deliberately short: an imperfect start,
                bench_diffusion measured 5-8/30 after 2000 updates) ─► checkpoint (the shared start of every arm)
      parl:     robot_stack.algos.parl.PARLLearnerService from that checkpoint: `critic_offline_steps` Cal-QL critic
                updates with the action-optimised policy in its CQL/TD terms, then `rounds` online rounds of
                `episodes_per_round` episodes acted by PARLSelector (N samples -> top k -> local steps -> argmax),
                each round: distil (UTD 1) then critic (UTD 1), a new base + critic version
      bc:       the same start, BC continued on the demos for as many updates as PA-RL distilled
      calql:    conf/learner/calql_state.yaml (Cal-QL's own tanh-Gaussian actor) on the same demos, the same number of
                critic updates offline and the same online episodes (robot_stack.learn.online)
    evaluation: robot_stack.learn.evaluate on the seeded resets 1_000_000 + i (identical for every arm), success at
    any step, gripper held 5 ticks; the diffusion arms both by the policy alone (select_action, T_a-step chunks) and,
    for PA-RL, acting through the PA-RL selector with its final critic.

Each (stage, seed) writes <work>/s<seed>/<stage>.json; the report is rebuilt from what exists, so a stage can be
re-run alone. One torch thread per process.

    nice -n 5 python benchmarks/bench_parl.py --seeds 0,1,2
    python benchmarks/bench_parl.py --quick --seeds 0           # a smoke run (numbers mean nothing)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
RESULTS = REPO / "benchmarks" / "results"
TASK = "put_cube_in_bowl"
DEMO_SEED_BASE = 4000           # bench_learning Tier 1c / bench_diffusion: generate_state(..., 4000 + seed)
EVAL_SEED = 1_000_000
STAGES = ("prepare", "parl", "bc", "calql", "openvla", "diag")


def log(msg: str) -> None:
    print(f"[bench_parl {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sizes(quick: bool) -> dict:
    full = {"demos": 20, "pretrain_steps": 2000, "batch": 64, "distill_batch": 64, "eval_episodes": 30,
            "critic_offline_steps": 500, "rounds": 3, "episodes_per_round": 4, "parl_eval_episodes": 20,
            "critic_hidden": 128, "critic_heads": 4}
    if quick:
        full.update(demos=3, pretrain_steps=30, eval_episodes=2, critic_offline_steps=10, rounds=1,
                    episodes_per_round=1, parl_eval_episodes=2)
    return full


def diffusion_policy_config() -> dict:
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module("robot_stack.conf", version_base=None):
        c = compose("robot_stack", overrides=["policy=diffusion_state", f"task={TASK}", "data_dir=/tmp"])
    return OmegaConf.to_container(c.policy.config, resolve=True)


def evaluate_policy(policy, n: int, selector=None) -> dict:
    """Success on the seeded resets; `selector`: act through it (PA-RL action optimisation), else select_action."""
    from robot_stack.learn.evaluate import PolicyActor, evaluate
    from robot_stack.sim.env import SimConfig, TabletopSim

    sim = TabletopSim(SimConfig(task=TASK, cameras=()))
    try:
        if selector is None:
            actor = PolicyActor(policy)
        else:
            from robot_stack.algos.parl import SelectorActor

            actor = SelectorActor(policy, selector)
        t0 = time.perf_counter()
        r = evaluate(actor, TASK, episodes=n, seed=EVAL_SEED, sim=sim)
        return {"successes": r.successes, "episodes": r.n, "success_rate": r.success_rate,
                "goal_dist_m": r.mean_goal_distance_m, "eval_s": time.perf_counter() - t0}
    finally:
        sim.close()


# ------------------------------------------------------------------------------------------------ stages
def stage_prepare(seed: int, S: dict, work: Path) -> dict:
    """Demos + the deliberately short BC pre-training of the diffusion policy -> <work>/base (v0001)."""
    import torch
    from bench_learning import generate_state

    from robot_stack.learn.bc import dataset_keys, fit_normalizer, make_optimizer, train_steps
    from robot_stack.learn.dataset import FrameDataset, eligible_episodes
    from robot_stack.policies.base import make_policy, policy_class
    from robot_stack.policies.checkpoint import PolicySchema, save_checkpoint
    from robot_stack.store import TrajectoryStore

    torch.manual_seed(seed)
    store = work / "store.zarr"
    t0 = time.perf_counter()
    data = generate_state(store, [TASK], S["demos"], 0.0, DEMO_SEED_BASE + seed)
    data["gen_s"] = time.perf_counter() - t0
    config = policy_class("diffusion").config_class.from_dict(diffusion_policy_config())
    with TrajectoryStore.open(store, mode="r") as st:
        episodes = eligible_episodes(st, ("sim",), True, None)
        dataset = FrameDataset.from_store(st, episodes, dataset_keys(config))
        schema = PolicySchema.from_store_schema(st.schema)
    normalizer = fit_normalizer(dataset)
    policy = make_policy("diffusion", config, normalizer)
    optimizer = make_optimizer(policy)
    t0 = time.perf_counter()
    step, losses = train_steps(policy, optimizer, dataset, S["pretrain_steps"], S["batch"],
                               np.random.default_rng(seed))
    train_s = time.perf_counter() - t0
    save_checkpoint(policy, normalizer, schema, work / "base", 1, step, extra={"stage": "bc pretrain"})
    log(f"s{seed} prepare: {step} BC updates in {train_s:.0f} s, loss {np.mean(losses[-100:]):.4f}; evaluating")
    ev = evaluate_policy(policy, S["eval_episodes"])
    log(f"s{seed} prepare: BC start {ev['successes']}/{ev['episodes']}")
    return {"data": data, "updates": step, "train_s": train_s, "loss": float(np.mean(losses[-100:])), "after": ev}


def parl_config(seed: int, S: dict, work: Path):
    """conf/learner/parl_diffusion_state.yaml composed by hydra, with the benchmark's CPU sizes (the report says
    which): a 4-head 128x2 critic instead of 10 x 256x2 (one critic update runs 1 + 11 critic passes over B·K actions
    for each of s and s'), batch 64 instead of 256."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from robot_stack.algos.parl import PARLLearnerConfig

    with initialize_config_module("robot_stack.conf", version_base=None):
        c = compose("robot_stack", overrides=["learner=parl_diffusion_state", f"task={TASK}", "data_dir=/tmp"])
    d = OmegaConf.to_container(c.learner, resolve=True)
    d.pop("torch_threads", None)
    d["policy_config"] = {**d["policy_config"], "critic_hidden_dims": [S["critic_hidden"]] * 2,
                          "num_qs": S["critic_heads"]}
    d.update(base_checkpoint=str(work / "base"), offline_steps=S["critic_offline_steps"], batch_size=S["batch"],
             distill_batch_size=S["distill_batch"], sources=["sim"], min_episodes=1, val_every_episode=0,
             val_every_steps=0, tensorboard_dir=None, log_every_steps=100, checkpoint_every_steps=100_000,
             poll_interval_s=0.1, seed=seed)
    return PARLLearnerConfig.from_dict(d)


def mean_of(history: list[dict], key: str) -> float | None:
    vals = [m[key] for m in history if key in m]
    return float(np.mean(vals)) if vals else None


def stage_parl(seed: int, S: dict, work: Path) -> dict:
    import shutil

    import torch

    from robot_stack.algos.parl import PARLLearnerService, PARLSelector
    from robot_stack.learn.online import run_online
    from robot_stack.sim.env import SimConfig, TabletopSim

    torch.manual_seed(seed)
    store = work / "parl_store.zarr"
    shutil.rmtree(store, ignore_errors=True)
    shutil.rmtree(work / "parl_ckpt", ignore_errors=True)
    shutil.copytree(work / "store.zarr", store)
    cfg = parl_config(seed, S, work)
    svc = PARLLearnerService(store, work / "parl_ckpt", cfg)
    out: dict = {"config": {"algo_config": cfg.algo_config, "policy_config": cfg.policy_config,
                            "base_lr": cfg.base_lr, "distill_batch_size": cfg.distill_batch_size,
                            "distill_mixing_ratio": cfg.distill_mixing_ratio}}
    curve: list[dict] = []
    timing = {"offline_s": 0.0}
    t0 = time.perf_counter()
    orig = svc.train_offline

    def train_offline_then_eval():
        orig()
        timing["offline_s"] = time.perf_counter() - t0
        out["offline_critic"] = {k: mean_of(svc.metrics_history[-100:], k) for k in (
            "critic/q_data", "critic/td_loss", "critic/cql_diff", "critic/bound_rate", "parl/value_gain",
            "parl/q_spread", "parl/moved_fraction")}
        log(f"s{seed} parl: {svc.step} offline critic updates in {timing['offline_s']:.0f} s {out['offline_critic']}")
        sel = PARLSelector(svc.policy, svc.algo.config.action_opt, seed=seed)
        out["before_selector"] = evaluate_policy(svc.base_policy, S["parl_eval_episodes"], sel)
        log(f"s{seed} parl: BC start acting through PA-RL (offline critic): "
            f"{out['before_selector']['successes']}/{out['before_selector']['episodes']}")

    svc.train_offline = train_offline_then_eval

    seen = [0]

    def on_round(r):
        ev = evaluate_policy(svc.base_policy, S["eval_episodes"])
        recent, seen[0] = svc.distill_history[seen[0]:], len(svc.distill_history)
        curve.append({"online_episodes": r.episodes, "online_transitions": r.transitions, "critic_updates": r.step,
                      "distill_steps": svc.distill_step, "collected_successes": r.collected_successes,
                      "base_version": svc.base_version, "round_s": r.wall_s,
                      "distill_value_gain": mean_of(recent, "distill/value_gain"),
                      "distill_data_chosen": mean_of(recent, "distill/data_action_chosen"),
                      "distill_loss": mean_of(recent, "distill/loss"), **ev})
        log(f"s{seed} parl round {r.round}: {r.collected_successes}/{S['episodes_per_round']} collected successes, "
            f"{svc.distill_step} distill steps, {r.step} critic updates ({r.wall_s:.0f} s); base alone "
            f"{ev['successes']}/{ev['episodes']}")

    sim = TabletopSim(SimConfig(task=TASK, cameras=()))
    try:
        rounds = run_online(svc, sim, TASK, store, S["rounds"], S["episodes_per_round"], seed=seed,
                            on_round=on_round, make_actor=lambda s: s.make_actor())
    finally:
        sim.close()
    train_s = time.perf_counter() - t0
    from robot_stack.policies.checkpoint import load_policy

    base, manifest = load_policy(work / "parl_ckpt")
    critic, _ = load_policy(work / "parl_ckpt" / "critic")
    out["after"] = evaluate_policy(base, S["eval_episodes"])
    out["after_selector"] = evaluate_policy(base, S["parl_eval_episodes"],
                                            PARLSelector(critic, svc.algo.config.action_opt, seed=seed))
    log(f"s{seed} parl: final base alone {out['after']['successes']}/{out['after']['episodes']}, through PA-RL "
        f"{out['after_selector']['successes']}/{out['after_selector']['episodes']}")
    out.update(curve=curve, train_s=train_s, offline_s=timing["offline_s"], critic_updates=svc.step,
               distill_steps=svc.distill_step, base_versions=manifest.version,
               online_episodes=rounds[-1].episodes if rounds else 0,
               collected_successes=[r.collected_successes for r in rounds],
               online_critic={k: mean_of(svc.metrics_history[S["critic_offline_steps"]:], k) for k in (
                   "critic/q_data", "critic/td_loss", "critic/cql_diff", "critic/bound_rate", "parl/value_gain",
                   "parl/q_spread", "parl/moved_fraction")},
               distill={k: mean_of(svc.distill_history, k) for k in (
                   "distill/loss", "distill/value_gain", "distill/q_spread", "distill/data_action_chosen",
                   "distill/moved_fraction")})
    return out


def stage_bc(seed: int, S: dict, work: Path) -> dict:
    """The same BC start, BC continued on the demos with PA-RL's distillation optimiser (AdamW, base_lr, batch) for
    as many updates as PA-RL distilled in this seed: the control for 'more supervised updates'."""
    import torch

    from robot_stack.learn.bc import dataset_keys, train_steps
    from robot_stack.learn.dataset import FrameDataset, eligible_episodes
    from robot_stack.policies.checkpoint import load_policy
    from robot_stack.store import TrajectoryStore

    parl = json.loads((work / "parl.json").read_text()) if (work / "parl.json").is_file() else None
    if parl is None or parl.get("status") != "ok":
        raise RuntimeError(f"s{seed}: the bc control takes PA-RL's number of distillation steps; run --stages parl")
    torch.manual_seed(seed)
    policy, _ = load_policy(work / "base")
    cfg = parl_config(seed, S, work)
    with TrajectoryStore.open(work / "store.zarr", mode="r") as st:
        dataset = FrameDataset.from_store(st, eligible_episodes(st, ("sim",), True, None), dataset_keys(policy.config))
    opt = torch.optim.AdamW([p for p in policy.net.parameters() if p.requires_grad], lr=cfg.base_lr,
                            weight_decay=cfg.base_weight_decay)
    t0 = time.perf_counter()
    step, losses = train_steps(policy, opt, dataset, int(parl["distill_steps"]), cfg.distill_batch_size,
                               np.random.default_rng(seed), start_step=0)
    train_s = time.perf_counter() - t0
    ev = evaluate_policy(policy, S["eval_episodes"])
    log(f"s{seed} bc: {step} more BC updates -> {ev['successes']}/{ev['episodes']}")
    return {"updates": step, "train_s": train_s, "loss": float(np.mean(losses[-100:])) if losses else None, "after": ev}


def stage_calql(seed: int, S: dict, work: Path) -> dict:
    """Cal-QL's own actor (calql_state.yaml) on the same demos: as many offline critic updates as PA-RL's, then the
    same number of online episodes (the learner's sampled actions, gripper held), UTD 1, 50/50."""
    import shutil

    from bench_learning import diagnostics, learner_cfg, progress_printer

    from robot_stack.learn.online import run_online
    from robot_stack.learn.rl_service import RLLearnerService
    from robot_stack.sim.env import SimConfig, TabletopSim

    store = work / "calql_store.zarr"
    shutil.rmtree(store, ignore_errors=True)
    shutil.rmtree(work / "calql_ckpt", ignore_errors=True)
    shutil.copytree(work / "store.zarr", store)
    LS = {"batch": S["batch"], "rlpd_batch": S["batch"]}
    cfg = learner_cfg("calql_state", TASK, LS, seed, offline_steps=S["critic_offline_steps"], online=True)
    svc = RLLearnerService(store, work / "calql_ckpt", cfg, on_progress=progress_printer(f"calql s{seed}"))
    curve: list[dict] = []
    out: dict = {}
    t0 = time.perf_counter()
    orig = svc.train_offline

    def train_offline_then_eval():
        orig()
        out["before"] = evaluate_policy(svc.policy, S["eval_episodes"])
        curve.append({"online_episodes": 0, "critic_updates": svc.step, **out["before"]})
        log(f"s{seed} calql: after {svc.step} offline updates {out['before']['successes']}/{out['before']['episodes']}")

    svc.train_offline = train_offline_then_eval

    def on_round(r):
        ev = evaluate_policy(svc.policy, S["eval_episodes"])
        curve.append({"online_episodes": r.episodes, "critic_updates": r.step,
                      "collected_successes": r.collected_successes, **ev})
        log(f"s{seed} calql round {r.round}: {r.collected_successes} collected successes -> "
            f"{ev['successes']}/{ev['episodes']}")

    sim = TabletopSim(SimConfig(task=TASK, cameras=()))
    try:
        rounds = run_online(svc, sim, TASK, store, S["rounds"], S["episodes_per_round"], seed=seed, on_round=on_round)
    finally:
        sim.close()
    out.update(curve=curve, after={k: curve[-1][k] for k in ("successes", "episodes", "success_rate", "goal_dist_m")},
               train_s=time.perf_counter() - t0, updates=svc.step, diagnostics=diagnostics(svc),
               collected_successes=[r.collected_successes for r in rounds])
    return out


def stage_openvla(seed: int, S: dict, work: Path) -> dict:
    """Time one PA-RL iteration with the tiny random OpenVLA (robot_stack_testing/tiny_openvla.py) on the CPU, with
    conf/learner/parl_openvla.yaml as shipped (N 8 keep 4, 10 local steps, LoRA rank 32 distillation at batch 16,
    the image critic resnet18 at 100 px, 512x3, 10 heads) except device=cpu and a critic batch of 16."""
    import shutil

    import torch

    os.environ["HF_HUB_OFFLINE"] = "1"
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from robot_stack.algos.parl import PARLLearnerConfig, PARLLearnerService, PARLSelector
    from robot_stack.policies.checkpoint import PolicySchema
    from robot_stack.policies.openvla.finetune import save_adapter
    from robot_stack.policies.openvla.policy import OpenVLAPolicy
    from robot_stack.store import TrajectoryStore
    from robot_stack_testing.tiny_openvla import INSTRUCTION, build_tiny_openvla, write_tiny_store

    torch.manual_seed(seed)
    root = work / "openvla"
    shutil.rmtree(root, ignore_errors=True)
    release = build_tiny_openvla(root / "openvla-7b-tiny", seed=0)
    store = write_tiny_store(root / "store.zarr", n_episodes=4, n_steps=8, hw=(224, 224), task=INSTRUCTION)
    with TrajectoryStore.open(store, mode="r") as st:
        schema = PolicySchema.from_store_schema(st.schema)
        ep = st.get_episode(0)
    with initialize_config_module("robot_stack.conf", version_base=None):
        c = compose("robot_stack", overrides=["learner=parl_openvla", "data_dir=/tmp"])
    d = OmegaConf.to_container(c.learner, resolve=True)
    d.pop("torch_threads", None)
    policy = OpenVLAPolicy.from_base(release, lora_rank=32, deploy_task=INSTRUCTION)
    base = save_adapter(policy, policy.normalizer, schema, root / "base", 1, 0)
    d.update(base_checkpoint=str(base), device="cpu", batch_size=16, offline_steps=0, sources=["sim"],
             min_episodes=1, val_every_episode=0, val_every_steps=0, tensorboard_dir=None, seed=seed)
    cfg = PARLLearnerConfig.from_dict(d)
    svc = PARLLearnerService(store, root / "ckpt", cfg)
    t0 = time.perf_counter()
    svc.open()
    open_s = time.perf_counter() - t0
    states = len(svc.prior_pool) + len(svc.val_pool)
    try:
        t0 = time.perf_counter()
        svc._refresh_caches(resample=True)      # N samples for every state of the store, as after a distillation
        cache_s = time.perf_counter() - t0
        svc.algo.train_step = 0
        batch = {k: v for k, v in svc.make_batch(0).items()}
        t0 = time.perf_counter()
        n_critic = 3
        for i in range(n_critic):
            svc.algo.update(svc.make_batch(i))
        critic_ms = (time.perf_counter() - t0) / n_critic * 1e3
        svc.phase = "online"
        t0 = time.perf_counter()
        n_distill = 3
        svc.distill(n_distill)
        distill_ms = (time.perf_counter() - t0) / n_distill * 1e3
        sel = PARLSelector(svc.policy, svc.algo.config.action_opt, seed=seed)
        obs = {k: v[0] for k, v in ep.items() if k.startswith("observation.")}
        sel.select(svc.base_policy, obs)
        t0 = time.perf_counter()
        infos = [sel.select(svc.base_policy, {k: v[t] for k, v in ep.items() if k.startswith("observation.")})[1]
                 for t in range(5)]
        select_ms = (time.perf_counter() - t0) / 5 * 1e3
    finally:
        svc.close()
    opt = svc.algo.opt_cfg
    params = sum(p.numel() for p in svc.base_policy.vla.parameters())
    lora = sum(p.numel() for p in svc.base.parameters())
    out = {"states": states, "N": opt.num_base_actions, "keep": opt.num_keep, "local_steps": opt.num_steps,
           "open_s": open_s, "sample_ms_per_state": cache_s / max(states, 1) * 1e3, "critic_update_ms": critic_ms,
           "critic_batch": cfg.batch_size, "distill_step_ms": distill_ms, "distill_batch": cfg.distill_batch_size,
           "select_ms": select_ms, "select_sample_ms": float(np.mean([i["sample_ms"] for i in infos])),
           "vla_parameters": params, "lora_parameters": lora, "image_hw": [224, 224],
           "batch_keys": sorted(batch)}
    # One iteration = sampling N actions for the states of one critic batch and one distillation batch, one critic
    # update and one distillation step (PA-RL's UTD 1 each per new transition).
    out["iteration_ms"] = (cfg.batch_size + cfg.distill_batch_size) * out["sample_ms_per_state"] + critic_ms + distill_ms
    log(f"openvla tiny: {json.dumps({k: (round(v, 1) if isinstance(v, float) else v) for k, v in out.items()})}")
    return out


def stage_diag(seed: int, S: dict, work: Path) -> dict:
    """Why PA-RL did (not) change the policy, measured on the final critic and base of `stage_parl`: how far apart
    the critic puts the base's N samples of a state (vs how far apart it puts states), how far the local steps can
    move an action (η·steps·|∇_a Q̄|), and whether Q(s, a_data) separates successful from failed online episodes."""
    import torch

    from robot_stack.algos.parl import PARLLearnerService, critic_action_space, critic_q_fn

    if not (work / "parl_ckpt" / "critic").is_dir():
        raise RuntimeError(f"s{seed}: no PA-RL checkpoints in {work / 'parl_ckpt'}; run --stages parl first")
    torch.manual_seed(seed)
    cfg = parl_config(seed, S, work)
    svc = PARLLearnerService(work / "parl_store.zarr", work / "parl_ckpt", cfg)   # resumes the final critic + base
    store = svc.open()
    try:
        svc.online_pool.add_episodes(store, svc._online_episodes(store))   # the episodes PA-RL collected
        svc._refresh_caches()
        critic, opt = svc.policy, svc.algo.opt_cfg
        critic.eval()
        out: dict = {"critic_version": svc.version, "base_version": svc.base_version}
        for name, pool in (("offline", svc.prior_pool), ("online", svc.online_pool)):
            if not len(pool):
                continue
            rng = np.random.default_rng(seed)
            batch = svc._sample(pool, min(256, len(pool)), rng)
            o = critic.prepare_obs(batch)
            with torch.no_grad():
                z = critic.critic_latent(o)
                q_fn = critic_q_fn(critic, o, z)
                q_cand = q_fn(batch["parl.candidates"]).float().mean(0)                      # (B, N)
                q_data = q_fn(critic.to_policy_action(batch["action"]).unsqueeze(1)).float().mean(0)[:, 0]
            a = batch["parl.candidates"].clone().requires_grad_(True)
            grad = torch.autograd.grad(q_fn(a).float().mean(0).sum(), a)[0]
            _, _, frozen = critic_action_space(critic)
            gnorm = grad.masked_fill(frozen, 0.0).norm(dim=-1)                                 # (B, N)
            succ = batch["success"].bool()
            # Selection bias of the operator (argmax after top-k and local steps) relative to the N samples it chose
            # from: translation size (normalised), gripper opening, and distance to the data action.
            res = svc.algo.policy_actions(o, z, batch["parl.candidates"])
            cand, data = batch["parl.candidates"], critic.to_policy_action(batch["action"])
            bias = {"chosen_translation": float(res.chosen[:, :3].norm(dim=-1).mean()),
                    "sample_translation": float(cand[..., :3].norm(dim=-1).mean()),
                    "chosen_gripper_open": float((res.chosen[:, 6] > 0).float().mean()),
                    "sample_gripper_open": float((cand[..., 6] > 0).float().mean()),
                    "chosen_to_data": float((res.chosen - data).norm(dim=-1).mean()),
                    "sample_to_data": float((cand - data.unsqueeze(1)).norm(dim=-1).mean())}
            out[name] = {**bias,
                "states": int(len(q_data)),
                "q_spread_within_state": float((q_cand.max(1).values - q_cand.min(1).values).mean()),
                "q_std_within_state": float(q_cand.std(1).mean()),
                "q_std_across_states": float(q_cand.mean(1).std()),
                "q_data_mean": float(q_data.mean()), "mc_return_mean": float(batch["mc_return"].mean()),
                "q_data_success": float(q_data[succ].mean()) if succ.any() else None,
                "q_data_failure": float(q_data[~succ].mean()) if (~succ).any() else None,
                "grad_norm": float(gnorm.mean()),
                # The farthest the local steps can move an action: steps·η·|∇Q̄| (normalised units; ×0.05 m per unit
                # for translation under the action bounds).
                "max_local_move": float(opt.num_steps * opt.step_size * gnorm.mean()),
            }
        log(f"s{seed} diag: {json.dumps(out)}")
        return out
    finally:
        svc.close()


# ------------------------------------------------------------------------------------------------ report
def load_stages(root: Path, quick: bool) -> dict[int, dict[str, dict]]:
    out: dict[int, dict[str, dict]] = {}
    for f in sorted(root.glob("s*/*.json")):
        d = json.loads(f.read_text())
        if d.get("quick", False) == quick and "stage" in d:
            out.setdefault(int(d["seed"]), {})[d["stage"]] = d
    return out


def frac(d: dict | None) -> str:
    return f"{d['successes']}/{d['episodes']}" if d else "–"


def fmt(x, nd: int = 3) -> str:
    return "–" if x is None else (f"{x:.{nd}g}" if isinstance(x, float) else str(x))


def write_report(root: Path, out_dir: Path, S: dict) -> None:
    stages = load_stages(root, S["demos"] < 20)
    seeds = sorted(s for s, st in stages.items() if st.get("prepare", {}).get("status") == "ok")
    ok = {s: {k: v for k, v in stages[s].items() if v.get("status") == "ok"} for s in seeds}
    commands = sorted({d.get("command", "?") for s in stages.values() for d in s.values()})
    rows = []
    for s in seeds:
        st = ok[s]
        p, b, c = st.get("parl"), st.get("bc"), st.get("calql")
        rows.append({"seed": s, "bc_start": st["prepare"]["after"],
                     "parl_selector_on_start": p and p["before_selector"], "parl_after": p and p["after"],
                     "parl_selector_after": p and p["after_selector"], "bc_continued": b and b["after"],
                     "bc_continued_updates": b and b["updates"], "calql_offline": c and c["before"],
                     "calql_after": c and c["after"], "distill_steps": p and p["distill_steps"],
                     "critic_updates": p and p["critic_updates"], "online_episodes": p and p["online_episodes"],
                     "parl_collected": p and p["collected_successes"], "calql_collected": c and c["collected_successes"],
                     "parl_wall_s": p and round(p["wall_s"]), "calql_wall_s": c and round(c["wall_s"])})
    vla = next((st["openvla"] for st in stages.values() if st.get("openvla", {}).get("status") == "ok"), None)
    (out_dir / "parl.json").write_text(json.dumps({"commands": commands, "sizes": S, "machine": platform.platform(),
                                                   "rows": rows, "openvla_tiny_cpu": vla,
                                                   "stages": {str(k): v for k, v in stages.items()}},
                                                  indent=1, default=float) + "\n")
    L = ["# PA-RL fine-tuning of the diffusion policy vs BC vs Cal-QL's actor (state mode, sim)", "",
         "Written by `benchmarks/bench_parl.py` (its docstring has the recipe). Stages from: "
         + ", ".join(f"`{c}`" for c in commands) + f". Sizes: `{json.dumps(S)}`.", "",
         f"Task `{TASK}` (simulated WidowX 250s), {S['demos']} scripted demos per seed (generator seed 4000 + seed, "
         "the data of bench_diffusion / learning.md Tier 1c), observation.state + observation.environment_state. "
         f"Every arm starts from the same diffusion policy (`policy=diffusion_state`) after {S['pretrain_steps']} "
         "BC updates, deliberately short of the 6000 that reach ~0.8 (diffusion.md), so there is room to improve. "
         "Success: ground truth at any step on the seeded resets 1,000,000 + i, identical for every arm; "
         f"{S['eval_episodes']} resets for a policy alone, {S['parl_eval_episodes']} when acting through PA-RL's "
         "action optimisation (N samples per tick: costlier).", "",
         "Arms: **PA-RL** (`learner=parl_diffusion_state`): "
         f"{S['critic_offline_steps']} offline critic updates, then {S['rounds']} rounds of {S['episodes_per_round']} "
         "episodes acted through PARLSelector (N 32 -> top 10 -> 10 steps of η 3e-4 -> argmax), each round distil "
         "(UTD 1, softmax draw among the optimised candidates + the dataset action, DDPM ε-MSE, AdamW 5e-5) then "
         "critic (UTD 1); **BC continued**: the same start, as many BC updates on the demos as PA-RL distilled, same "
         "optimiser/lr/batch (the control for 'more supervised updates'); **Cal-QL**: `calql_state.yaml`'s own "
         "tanh-Gaussian actor on the same demos, as many offline updates and the same online episodes.", "",
         f"CPU sizes (the YAML holds the reference's): critic {S['critic_heads']} heads of {S['critic_hidden']}x2 "
         "(reference 10 of 256x2), batch 64 (256). One torch thread per process; three seeds ran at once on a "
         "shared 2-core machine, so wall times are inflated.", "",
         "| seed | BC start | PA-RL acting on BC start | PA-RL base after | PA-RL acting after | BC continued | "
         "Cal-QL offline | Cal-QL after | distill steps | critic updates | online eps (PA-RL / Cal-QL successes "
         "while collecting) |", "|" + " --- |" * 11]
    for r in rows:
        L.append(f"| {r['seed']} | {frac(r['bc_start'])} | {frac(r['parl_selector_on_start'])} | "
                 f"{frac(r['parl_after'])} | {frac(r['parl_selector_after'])} | {frac(r['bc_continued'])} | "
                 f"{frac(r['calql_offline'])} | {frac(r['calql_after'])} | {fmt(r['distill_steps'])} | "
                 f"{fmt(r['critic_updates'])} | {fmt(r['online_episodes'])} ({r['parl_collected']} / "
                 f"{r['calql_collected']}) |")

    def mean(key: str) -> str:
        vals = [r[key]["success_rate"] for r in rows if r.get(key)]
        return f"{np.mean(vals):.2f} (n={len(vals)})" if vals else "–"

    L += ["", "Means of the success rates: " + "; ".join(f"{name} {mean(k)}" for name, k in (
        ("BC start", "bc_start"), ("PA-RL acting on BC start", "parl_selector_on_start"),
        ("PA-RL base after", "parl_after"), ("PA-RL acting after", "parl_selector_after"),
        ("BC continued", "bc_continued"), ("Cal-QL offline", "calql_offline"), ("Cal-QL after", "calql_after"))) + "."]
    curves = [(s, ok[s]["parl"]) for s in seeds if "parl" in ok[s]]
    if any("distill_mixing_ratio" not in p["config"] for _, p in curves):
        L += ["", "Provenance: these PA-RL stages ran before `distill_mixing_ratio` existed, i.e. with every "
              "distillation batch drawn 50/50 offline/online (the learner's mixing_ratio); the committed recipe draws "
              "N_off/(N_off + N_online) offline, as PA-RL's train.py (0.54-0.78 here: ~850 demo transitions vs 240-720 online). Nothing else in the "
              "algorithm changed since those runs (later commits: selector fallbacks, the critic's checkpoint kind)."]
    if curves:
        L += ["", "PA-RL learning curve: the distilled base policy alone (select_action) after each round "
              "(start = the BC start):", "",
              "| seed | start | " + " | ".join(f"after {p['online_episodes']} eps" for p in curves[0][1]["curve"])
              + " |", "|" + " --- |" * (2 + len(curves[0][1]["curve"]))]
        for s, p in curves:
            L.append(f"| {s} | {frac(ok[s]['prepare']['after'])} | "
                     + " | ".join(frac(c) for c in p["curve"]) + " |")
        L += ["", "What the optimisation did (means over updates; Q in units of the −1-per-step reward):", "",
              "| seed | critic q_data | Cal-QL bound rate | critic: Q gain of the local steps | Q spread of the kept "
              "10 | distil: Q gain | distil: dataset action chosen | distil: samples moved by the local steps |",
              "|" + " --- |" * 8]
        for s, p in curves:
            oc, di = p["online_critic"], p["distill"]
            L.append(f"| {s} | {fmt(oc['critic/q_data'])} | {fmt(oc['critic/bound_rate'])} | "
                     f"{fmt(oc['parl/value_gain'])} | {fmt(oc['parl/q_spread'])} | {fmt(di['distill/value_gain'])} | "
                     f"{fmt(di['distill/data_action_chosen'])} | {fmt(di['distill/moved_fraction'])} |")
    diags = [(s, ok[s]["diag"]) for s in seeds if "diag" in ok[s]]
    if diags:
        L += ["", "Why (stage `diag`, the final critic on 256 sampled states per pool; Q = ensemble mean):", "",
              "| seed | pool | Q spread among the 32 samples of a state (max − min) | Q std across states | "
              "Q(s, a_data) | MC return | Q(s, a_data) success / failure episodes | ‖∇_a Q̄‖ | steps·η·‖∇_a Q̄‖ "
              "(normalised units) |", "|" + " --- |" * 9]
        for s, d in diags:
            for pool in ("offline", "online"):
                if pool in d:
                    x = d[pool]
                    L.append(f"| {s} | {pool} | {fmt(x['q_spread_within_state'])} | {fmt(x['q_std_across_states'])} | "
                             f"{fmt(x['q_data_mean'])} | {fmt(x['mc_return_mean'])} | {fmt(x['q_data_success'])} / "
                             f"{fmt(x['q_data_failure'])} | {fmt(x['grad_norm'])} | {fmt(x['max_local_move'])} |")
    if diags:
        L += ["", "What the argmax of the operator prefers among a state's 32 samples (diag; normalised units):", "",
              "| seed | pool | ‖translation‖ chosen / mean sample | gripper open chosen / samples | distance to the "
              "data action chosen / mean sample |", "|" + " --- |" * 5]
        for s, d in diags:
            for pool in ("offline", "online"):
                if pool in d and "chosen_translation" in d[pool]:
                    x = d[pool]
                    L.append(f"| {s} | {pool} | {x['chosen_translation']:.3f} / {x['sample_translation']:.3f} | "
                             f"{x['chosen_gripper_open']:.2f} / {x['sample_gripper_open']:.2f} | "
                             f"{x['chosen_to_data']:.3f} / {x['sample_to_data']:.3f} |")
    calq = [(s, ok[s]["calql"]) for s in seeds if "calql" in ok[s]]
    L += reading(rows, curves, diags, S)
    if calq:
        L += ["", "Cal-QL curve (its deterministic actor after the offline phase and each round): "
              + "; ".join(f"s{s}: " + " → ".join(frac(c) for c in c_["curve"]) for s, c_ in calq) + "."]
    if vla:
        L += ["", "## One PA-RL iteration with the tiny OpenVLA on the CPU", "",
              f"`stage_openvla`: the tiny random OpenVLA ({vla['vla_parameters']:,} parameters, LoRA rank 32: "
              f"{vla['lora_parameters']:,} trainable) on a 224x224 camera store, `learner=parl_openvla` as shipped "
              f"(N {vla['N']} -> keep {vla['keep']}, {vla['local_steps']} local steps; image critic resnet18 at 100 px, "
              f"512x3, 10 heads) with device=cpu and a critic batch of {vla['critic_batch']}:", "",
              "| N samples per state | critic update | distillation step (batch "
              f"{vla['distill_batch']}) | acting (select, N {vla['N']}) | one iteration |", "| --- | --- | --- | --- | --- |",
              f"| {vla['sample_ms_per_state']:.0f} ms | {vla['critic_update_ms']:.0f} ms | "
              f"{vla['distill_step_ms']:.0f} ms | {vla['select_ms']:.0f} ms (of which sampling "
              f"{vla['select_sample_ms']:.0f} ms) | {vla['iteration_ms'] / 1e3:.1f} s |", "",
              "One iteration = N samples for the states of one critic batch and one distillation batch + one critic "
              "update + one distillation step. The 7B model on a GPU was not run (no GPU here)."]
    bad = [f"{d['stage']} s{d['seed']}" for st in stages.values() for d in st.values() if d.get("status") != "ok"]
    if bad:
        L += ["", "Failed stages: " + ", ".join(bad)]
    (out_dir / "parl.md").write_text("\n".join(L) + "\n")
    if curves or calq:
        plot(rows, ok, out_dir / "parl.png")


def reading(rows: list[dict], curves: list, diags: list, S: dict) -> list[str]:
    """The measured explanation, computed from the stages' numbers (nothing here is typed in by hand)."""
    def rate(key: str) -> float | None:
        vals = [r[key]["success_rate"] for r in rows if r.get(key)]
        return float(np.mean(vals)) if vals else None

    out = ["", "Reading the numbers (computed from the tables above):", ""]
    a, b, c = rate("parl_after"), rate("bc_continued"), rate("bc_start")
    if a is not None and b is not None and c is not None:
        out.append(f"- Success, mean over seeds: BC start {c:.2f}, PA-RL's distilled base {a:.2f}, BC continued for "
                   f"the same number of updates {b:.2f}; with {S['eval_episodes']} resets one seed's rate has a "
                   "binomial standard error of ~0.08, a 3-seed mean ~0.05.")
    if curves:
        qd = np.mean([p["online_critic"]["critic/q_data"] for _, p in curves])
        br = np.mean([p["online_critic"]["critic/bound_rate"] for _, p in curves])
        sp = np.mean([p["online_critic"]["parl/q_spread"] for _, p in curves])
        vg = np.mean([p["online_critic"]["parl/value_gain"] for _, p in curves])
        dc = np.mean([p["distill"]["distill/data_action_chosen"] for _, p in curves])
        ups = np.mean([p["critic_updates"] for _, p in curves])
        sec = np.mean([p["offline_s"] / max(S["critic_offline_steps"], 1) for _, p in curves])
        mc = [d[k]["mc_return_mean"] for _, d in diags for k in ("offline", "online") if k in d]
        mc_txt = f"the batches' MC returns average {np.mean(mc):.1f} (diag table)" if mc else "the MC returns are lower"
        out.append(f"- The critic after {ups:.0f} updates: Q(s, a_data) averages {qd:.2f} during the online phase "
                   f"while {mc_txt}, i.e. the TD backup has not yet carried the −1-per-step cost back through the "
                   "horizon (γ 0.98: ~50 steps); the Cal-QL bound is active on "
                   f"{100 * br:.0f} % of the operator's actions. Cal-QL on this task needed 15000 offline updates "
                   f"(learning.md Tier 1b); one PA-RL critic update took {sec:.1f} s here (offline wall time per "
                   "update, cache included, three seeds sharing 2 cores: the operator scores 32 samples and takes 11 "
                   "gradient passes for each of s and s'), so this run could afford a few hundred.")
        out.append(f"- The global step: the kept samples of a state differ in Q by {sp:.2g} on average, far below "
                   "one step's reward (1), so top-k, argmax and the softmax(Q) draw (temperature 1: probabilities "
                   f"within ~{100 * sp:.1f} % of uniform) choose almost at random; the distillation targets were "
                   f"the base's own samples, or the dataset action in {100 * dc:.0f} % of draws.")
        out.append(f"- The local steps raised Q by {vg:.1g} per candidate: with η = 3e-4 and 10 steps an action moves "
                   "by 10·η·‖∇_a Q̄‖ (diag table), a tiny fraction of the normalised range (1 unit = 5 cm of "
                   "translation per step), so the optimised action is the sampled one for every practical purpose.")
    if curves and b is not None and a is not None:
        dc = np.mean([p["distill"]["distill/data_action_chosen"] for _, p in curves])
        out.append(f"- So the distillation was ~{100 * (1 - dc):.0f} % self-distillation: the base regressed onto its "
                   "own (DDIM, EMA) samples, on demo states and on its own failed states alike, and onto the demo "
                   f"action in ~{100 * dc:.0f} % of targets, while the BC control regressed onto demo actions only: "
                   f"BC continued {b:.2f} vs PA-RL {a:.2f}.")
        twice = [(p["curve"][-1]["successes"], p["after"]["successes"]) for _, p in curves if p.get("curve")]
        if twice:
            out.append("- Evaluation noise: the same final base evaluated twice on the same resets (after the last "
                       "round in the curve, and reloaded from its checkpoint for the table) gave "
                       + ", ".join(f"{x}/{S['eval_episodes']} and {y}/{S['eval_episodes']}" for x, y in twice)
                       + " (the diffusion policy's sampling noise).")
    if diags:
        on = [d["online"] for _, d in diags if "online" in d and "chosen_to_data" in d["online"]]
        off = [d["offline"] for _, d in diags if "offline" in d and "chosen_to_data" in d["offline"]]
        if on and off:
            sp32 = np.mean([x["q_spread_within_state"] for x in on + off])
            kept = np.mean([p["online_critic"]["parl/q_spread"] for _, p in curves]) if curves else float("nan")
            out.append(f"- Across all 32 samples of a state the final critic's Q spans {sp32:.2f} (diag), against "
                       f"{kept:.3f} among the kept 10 during training: the global top-k does drop a low tail (samples "
                       "the critic scores clearly worse), but the survivors are tied, so the choice among them is "
                       "uniform. What the argmax prefers: actions nearer the data action (distance "
                       f"{np.mean([x['chosen_to_data'] for x in off]):.2f} vs {np.mean([x['sample_to_data'] for x in off]):.2f} "
                       f"for the mean sample on demo states, {np.mean([x['chosen_to_data'] for x in on]):.2f} vs "
                       f"{np.mean([x['sample_to_data'] for x in on]):.2f} on its own states) — the CQL term's pull "
                       "toward the data, not a measured route to success.")
            gap_q = np.mean([x["q_data_success"] - x["q_data_failure"] for x in on + off
                             if x["q_data_success"] is not None and x["q_data_failure"] is not None] or [np.nan])
            gap_mc = np.mean([a_["mc_return_mean"] - b_["mc_return_mean"] for a_, b_ in zip(off, on, strict=False)])
            out.append(f"- Q(s, a_data) of successful vs failed episodes' transitions differs by {gap_q:.2f}, while the "
                       f"MC returns of the demo pool and the (mostly failed) online pool differ by {gap_mc:.0f}; the "
                       "std of Q over a state's samples is "
                       f"{np.mean([x['q_std_within_state'] for x in off]):.2f} against "
                       f"{np.mean([x['q_std_across_states'] for x in off]):.2f} across demo states: the critic has "
                       "learned something about where the arm is, little about which action to take.")
    return out


def plot(rows: list[dict], ok: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (s, st) in enumerate(sorted(ok.items())):
        col = colors[i % len(colors)]
        start = st["prepare"]["after"]["success_rate"]
        if "parl" in st:
            c = st["parl"]["curve"]
            ax.plot([0] + [p["online_episodes"] for p in c], [start] + [p["success_rate"] for p in c], "o-",
                    color=col, label=f"PA-RL base alone s{s}")
            last = c[-1]["online_episodes"] if c else 0
            ax.plot([0, last], [st["parl"]["before_selector"]["success_rate"], st["parl"]["after_selector"]["success_rate"]],
                    "^:", color=col, alpha=0.7, label=f"PA-RL acting s{s}")
        if "calql" in st:
            c = st["calql"]["curve"]
            ax.plot([p["online_episodes"] for p in c], [p["success_rate"] for p in c], "s--", color=col, alpha=0.5,
                    label=f"Cal-QL actor s{s}")
        if "bc" in st:
            ax.axhline(st["bc"]["after"]["success_rate"], color=col, lw=1, ls="-.", alpha=0.6)
    ax.plot([], [], "-.", color="grey", label="BC continued (same updates)")
    ax.set(xlabel="online episodes", ylabel="success rate", ylim=(-0.02, 1.02), title=f"{TASK}: PA-RL vs BC vs Cal-QL")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_stage(stage: str, seed: int, S: dict, root: Path, quick: bool) -> dict:
    import torch

    torch.set_num_threads(1)
    work = root / f"s{seed}"
    work.mkdir(parents=True, exist_ok=True)
    if stage not in ("prepare", "openvla") and not (work / "prepare.json").is_file():
        raise SystemExit(f"s{seed}: run --stages prepare first (no {work / 'prepare.json'})")
    t0 = time.perf_counter()
    try:
        out = globals()[f"stage_{stage}"](seed, S, work)
        out["status"] = "ok"
    except Exception:  # noqa: BLE001 - a failed stage is reported, the others still run
        out = {"status": "error", "error": traceback.format_exc()}
        log(out["error"])
    out.update(stage=stage, seed=seed, wall_s=time.perf_counter() - t0, quick=quick, sizes=S,
               command="python benchmarks/bench_parl.py " + " ".join(sys.argv[1:]),
               finished=time.strftime("%Y-%m-%d %H:%M:%S"))
    (work / f"{stage}.json").write_text(json.dumps(out, indent=1, default=float) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--stages", default="prepare,parl,bc,calql")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks the script, numbers mean nothing")
    ap.add_argument("--work", default=None, help="stage outputs (default /tmp/bench_parl[_quick])")
    ap.add_argument("--out", default=None, help=f"report folder (default {RESULTS}; --quick: the work folder)")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    S = sizes(args.quick)
    root = Path(args.work or (Path(tempfile.gettempdir()) / ("bench_parl_quick" if args.quick else "bench_parl")))
    root.mkdir(parents=True, exist_ok=True)
    out_dir = Path(args.out or (root if args.quick else RESULTS))
    if not args.report_only:
        for stage in args.stages.split(","):
            if stage not in STAGES:
                raise SystemExit(f"unknown stage {stage!r}; known: {STAGES}")
            for seed in (int(s) for s in args.seeds.split(",")):
                if stage == "openvla" and seed != int(args.seeds.split(",")[0]):
                    continue
                log(f"stage {stage} s{seed}")
                run_stage(stage, seed, S, root, args.quick)
                if "write_report" in globals():
                    write_report(root, out_dir, S)
    elif "write_report" in globals():
        write_report(root, out_dir, S)


if __name__ == "__main__":
    main()
