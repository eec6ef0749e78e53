"""One reset-free practice experiment on the sim WidowX, start to finish, in one process (no ROS):

    demos       scripted forward + backward episodes (noisy, some deliberately failed) with object state and a small
                front camera (for the classifier) ─► a zarr store
    classifier  the CNN success classifier trained on those demos (robot_stack.practice.classifier)
    learner     RLLearnerService with a state recipe (rlpd_state, calql_state, ...; one one-hot-conditioned policy
                for both directions); its offline phase, then
    before      forward and backward success from seeded resets (ground truth, deterministic actor)
    practice    `attempts` reset-free attempts alternating forward/backward, labelled by the judge, a learner round
                every `attempts_per_update` (robot_stack.practice.inprocess.run_practice: the same PracticeSession
                the practice node runs over ROS)
    after       the same evaluation as before, plus the classifier's FP/FN on the practice attempts and where the
                forward attempts started against the demos' starts

`robot-stack demo demo.loop=practice` and benchmarks/bench_practice.py both run this. Timing is the CPU's, not the
rig's control rate: learner and rig alternate strictly, so a seed gives the same run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

EVAL_SEED = 1_000_000


@dataclass
class PracticeExperiment:
    forward_task: str = "put_cube_in_bowl"      # a forward task of a reset-free pair (`robot-stack sim tasks`)
    learner: str = "rlpd_state"                 # a learner recipe (robot_stack/conf/learner); with obs=pixels its
                                                # pixel form (rlpd_state -> rlpd) reads the front camera
    obs: str = "state"                          # state: proprio + object poses | pixels: proprio + the front camera
    judge: str = "classifier"                   # classifier | ground_truth (the oracle-reward control)
    demos: int = 60                             # scripted episodes per direction
    failure_share: float = 0.3
    noise_m: float = 0.01
    offline_steps: int = 5000                   # offline updates (recipes without an offline phase keep 0)
    batch: int = 64
    rlpd_batch: int = 128                       # RLPD/AWAC batch (bench_learning's Tier 1c)
    utd: float = 1.0
    attempts: int = 200
    attempts_per_update: int = 2
    horizon_steps: int = 60
    scheduled_reset_steps: int = 0              # 0: reset only when practice cannot go on (counted as interventions)
    eval_episodes: int = 20
    classifier_steps: int = 1500
    classifier_start_positives: bool = True     # demos' first frames label the reverse task's goal (classifier/data.py)
    # At a stuck/irreversible reset the truth corrects the judge's last N labels (a person's review,
    # PracticeConfig.review_attempts); the classifier is then fine-tuned this many steps on demos + reviewed attempts.
    review_attempts: int = 0
    classifier_retrain_steps: int = 300
    image_px: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.obs not in ("state", "pixels"):
            raise ValueError(f"obs must be 'state' (proprio + object poses) or 'pixels' (proprio + the front camera), "
                             f"got {self.obs!r}")
        if self.judge not in ("classifier", "ground_truth"):
            raise ValueError(f"judge must be 'classifier' or 'ground_truth', got {self.judge!r}")
        for name in ("demos", "attempts", "attempts_per_update", "horizon_steps", "eval_episodes"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


# Pixel mode's encoder: PTR's ResNet design at its smallest width on the classifier's 64 px front frames, so an RLPD
# update stays ~10x a state one on this CPU (a ResNet-18 update at 128 px takes ~1 min, DESIGN.md measured facts).
PIXEL_POLICY = {"cameras": ["front"], "arch": "resnet_tiny", "base_width": 16, "latent_dim": 128, "use_state": True,
                "use_environment_state": False, "fixed_action_dims": [3, 4], "actor_hidden_dims": [256, 256],
                "critic_hidden_dims": [256, 256]}


def learner_recipe(x: PracticeExperiment) -> str:
    """The recipe name for x.obs: pixels take the recipe's image form (`rlpd_state` -> `rlpd`)."""
    if x.obs == "pixels" and x.learner.endswith("_state"):
        return x.learner[: -len("_state")]
    return x.learner


def learner_config(x: PracticeExperiment):
    """robot_stack/conf/learner/<recipe>.yaml composed by hydra, sized for one CPU process (pixels: PIXEL_POLICY on
    the front camera at x.image_px)."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from robot_stack.learn.rl_service import RLLearnerConfig

    with initialize_config_module("robot_stack.conf", version_base=None):
        c = compose("robot_stack", overrides=[f"learner={learner_recipe(x)}", "data_dir=/tmp"])
    d = OmegaConf.to_container(c.learner, resolve=True)
    d.pop("torch_threads", None)
    # RLPD/AWAC keep their recipe's offline phase (RLPD: none) and take the Tier 1c batch.
    symmetric = d["algo"] in ("rlpd", "awac")
    d.update(task=None, sources=["sim"], min_episodes=1,
             offline_steps=d["offline_steps"] if symmetric else x.offline_steps,
             batch_size=x.rlpd_batch if symmetric else x.batch,
             tensorboard_dir=None, val_every_episode=0, val_every_steps=0, checkpoint_every_steps=100_000,
             log_every_steps=1000, online=True, utd_ratio=x.utd, seed=x.seed, poll_interval_s=0.1)
    d["policy_config"] = {**d["policy_config"], "conditioning": "onehot"}
    if x.obs == "pixels":
        d["policy_config"].update(PIXEL_POLICY, image_size_px=x.image_px)
    elif d["policy_config"].get("arch") != "none":
        raise ValueError(f"learner {x.learner!r} reads images; with obs=state use a *_state recipe (rlpd_state, "
                         "calql_state, ...) or set obs=pixels")
    return RLLearnerConfig.from_dict(d)


def evaluate_pair(policy, pair, episodes: int, stochastic: bool = False, cameras: tuple[str, ...] = (),
                  image_px: int = 64) -> dict:
    """Ground-truth success of `policy` on both directions from the same seeded resets; `stochastic`: acting as it
    practises (sampled actions, gripper decision held) instead of the deterministic actor."""
    from robot_stack.learn.evaluate import evaluate
    from robot_stack.sim.env import SimConfig, TabletopSim

    out = {}
    for task in (pair.forward[0], pair.backward[0]):
        sim = TabletopSim(SimConfig(task=task, cameras=tuple(cameras), image_size_px=image_px))
        try:
            r = evaluate(policy, task, episodes=episodes, seed=EVAL_SEED, sim=sim, stochastic=stochastic)
        finally:
            sim.close()
        out[task] = {"successes": r.successes, "episodes": r.n, "success_rate": r.success_rate}
    return out


def forward_start_drift(store, forward_task: str) -> dict:
    """Where forward attempts start, against where the forward demos start: the cube's offset from the homed arm
    (observation.environment_state[0:2] at step 0; every attempt begins with the arm at home), as the distance from
    the demos' mean start; and practice success (truth) for starts near the demos' (<= 5 cm) and far from them."""
    from robot_stack.sim.tasks import get_task

    key = "observation.environment_state"
    if key not in store.schema.features:
        return {}

    def starts(eps):
        return np.array([store.get_episode(i, [key])[key][0, :2] for i in eps]).reshape(-1, 2)

    names = {forward_task, get_task(forward_task).language}   # the store files the task's language
    demos = [i for i in store.episodes(source="sim") if store.episode_meta(i).task in names]
    practice = [i for i in store.episodes(source="practice") if store.episode_meta(i).phase == "forward"]
    if not demos or not practice:
        return {}
    center = starts(demos).mean(axis=0)
    d = np.linalg.norm(starts(practice) - center, axis=1)
    ok = np.array([bool(store.episode_meta(i).true_success) for i in practice])
    near = d <= 0.05
    return {"demo_start_spread_m": round(float(np.linalg.norm(starts(demos) - center, axis=1).mean()), 3),
            "median_m": round(float(np.median(d)), 3), "share_near": round(float(near.mean()), 2),
            "success_near": f"{int(ok[near].sum())}/{int(near.sum())}",
            "success_far": f"{int(ok[~near].sum())}/{int((~near).sum())}"}


def run_practice_experiment(x: PracticeExperiment, work: str | Path,
                            log: Callable[[str], None] = print) -> dict[str, Any]:
    """Everything in the module docstring; the store, classifier and checkpoints stay under `work`."""
    import torch

    from robot_stack.learn.rl_service import RLLearnerService
    from robot_stack.practice.classifier import evaluate_classifier, train_classifier
    from robot_stack.practice.classifier.review import RetrainOnReview
    from robot_stack.practice.inprocess import run_practice
    from robot_stack.practice.judge import ClassifierJudge, GroundTruthJudge
    from robot_stack.practice.session import PracticeConfig, TaskPair
    from robot_stack.sim.env import SimConfig, TabletopSim
    from robot_stack.sim.generate import generate
    from robot_stack.store import TrajectoryStore

    torch.set_num_threads(1)
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    pair = TaskPair.from_sim_tasks(x.forward_task)
    cfg = learner_config(x)   # a recipe that does not fit x.obs fails here, before minutes of demos
    store = work / "store.zarr"
    seed = x.seed
    t0 = time.perf_counter()
    log(f"demos: {x.demos} scripted episodes per direction ({pair.forward[0]}, {pair.backward[0]}), "
        f"{x.failure_share:.0%} deliberately failed")
    generate(store, tasks=[pair.forward[0], pair.backward[0]], episodes=x.demos, failure_share=x.failure_share,
             noise_std_m=x.noise_m, workers=1, image_size_px=x.image_px, cameras=("front",),
             environment_state=True, seed=7000 + seed, progress=False)
    out: dict[str, Any] = {"settings": asdict(x), "seed": seed, "judge": x.judge, "learner": x.learner,
                           "gen_s": round(time.perf_counter() - t0, 1)}
    with TrajectoryStore.open(store, mode="r") as s:
        demo_episodes = list(range(s.n_episodes))
        t1 = time.perf_counter()
        clf = train_classifier(s, pair.languages, config={"camera": "front", "image_size_px": x.image_px},
                               steps=x.classifier_steps, seed=seed,
                               progress=lambda m: log(f"classifier step {m['step']}/{x.classifier_steps} "
                                                      f"loss {m['loss']:.3f}"),
                               progress_every=500,
                               reverse=pair.reverse_languages if x.classifier_start_positives else None)
        out["classifier_s"] = round(time.perf_counter() - t1, 1)
        out["classifier_on_demos"] = evaluate_classifier(clf, s, demo_episodes)
    svc = RLLearnerService(store, work / "checkpoints", cfg)
    eval_sim = {"cameras": ("front",) if x.obs == "pixels" else (), "image_px": x.image_px}
    curve: list[dict] = []
    before: dict = {}
    versions: list[int] = []
    orig = svc.train_offline

    def offline_then_eval():
        t = time.perf_counter()
        orig()
        out["offline_s"] = round(time.perf_counter() - t, 1)
        before.update(evaluate_pair(svc.policy, pair, x.eval_episodes, **eval_sim))
        log(f"after {svc.step} offline updates: " + ", ".join(
            f"{k} {v['successes']}/{v['episodes']}" for k, v in before.items()))

    svc.train_offline = offline_then_eval

    def on_update(r):
        st = r.status
        if not versions or versions[-1] != r.version:
            versions.append(r.version)
        curve.append({"attempts": r.attempts, "step": r.step, "version": r.version,
                      "true_success_rate": st["true_success_rate"], "success_rate": st["success_rate"],
                      "interventions": st["interventions"], "wall_s": round(r.wall_s, 1)})
        if r.attempts % 10 == 0 or r.attempts == x.attempts:
            log(f"attempt {r.attempts}/{x.attempts} learner step {r.step} v{r.version} | last "
                f"{PracticeConfig.window} per direction, truth {st['true_success_rate']} judge {st['success_rate']}"
                f" | interventions {st['interventions']}")

    sim = TabletopSim(SimConfig(task=pair.forward[0], cameras=("front",), image_size_px=x.image_px, reset_free=True,
                                seed=8000 + seed))
    judge = ClassifierJudge(clf) if x.judge == "classifier" else GroundTruthJudge(sim)
    # A person's review at interventions (sim: the truth) corrects labels; the classifier then learns from them.
    retrain = (RetrainOnReview(clf, store, pair.languages, steps=x.classifier_retrain_steps, seed=seed,
                               reverse=pair.reverse_languages if x.classifier_start_positives else None, log=log)
               if x.judge == "classifier" else None)

    t2 = time.perf_counter()
    try:
        final = run_practice(svc, sim, store, pair, judge,
                             PracticeConfig(horizon_steps=x.horizon_steps, max_attempts=x.attempts,
                                            scheduled_reset_steps=x.scheduled_reset_steps,
                                            review_attempts=x.review_attempts),
                             attempts_per_update=x.attempts_per_update, seed=seed, on_update=on_update,
                             on_corrections=retrain)
    finally:
        sim.close()
    out["practice_s"] = round(time.perf_counter() - t2, 1)
    out["after"] = evaluate_pair(svc.policy, pair, x.eval_episodes, **eval_sim)
    out["after_sampled"] = evaluate_pair(svc.policy, pair, x.eval_episodes, stochastic=True, **eval_sim)
    log("after practice: " + ", ".join(f"{k} {v['successes']}/{v['episodes']} (sampled actions "
                                       f"{out['after_sampled'][k]['successes']}/{v['episodes']})"
                                       for k, v in out["after"].items()))
    out["before"] = before
    with TrajectoryStore.open(store, mode="r") as s:
        out["classifier_on_practice"] = evaluate_classifier(clf, s, s.episodes(source="practice"))
        out["forward_start_drift"] = forward_start_drift(s, pair.forward[0])
    out.update(final={k: final[k] for k in ("attempts", "interventions", "scheduled_resets", "resets_by_kind",
                                             "interventions_per_100_attempts", "classifier", "true_success_rate",
                                             "policy_ticks", "label_corrections")},
               classifier_retrains=[{k: v for k, v in r.items() if k != "episodes"}
                                    for r in (retrain.rounds if retrain else [])],
               curve=curve, updates=svc.step, versions=versions, store=str(store.resolve()),
               checkpoints=str((work / "checkpoints").resolve()))
    log(f"forward attempts' start vs the demos': {out['forward_start_drift']}")
    return out


def plot_curve(result: dict, path: str | Path) -> Path | None:
    """Practice success over attempts (truth and judge, per direction, last-N window); None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    from robot_stack.practice.session import PracticeConfig

    c = result["curve"]
    if not c:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.5))
    att = [p["attempts"] for p in c]
    for phase, color in (("forward", "C0"), ("backward", "C1")):
        ax.plot(att, [p["true_success_rate"].get(phase) for p in c], color=color, label=f"{phase} (truth)")
        ax.plot(att, [p["success_rate"].get(phase) for p in c], color=color, ls="--", label=f"{phase} (judge)")
    ax.set_xlabel("practice attempts")
    ax.set_ylabel(f"success, last {PracticeConfig.window} per direction")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

