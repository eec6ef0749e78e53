"""`--help` / `-h` for the sub-commands whose arguments are hydra overrides (key=value), which hydra's override
parser would otherwise reject with a lexer error. Sub-commands built on argparse (up, sim, cameras, store,
calibrate) answer --help themselves. The config groups are listed from robot_stack/conf, so the text never goes
stale when a YAML is added.
"""

from __future__ import annotations

from pathlib import Path

HELP_FLAGS = ("-h", "--help")
_CONF = Path(__file__).resolve().parents[1] / "conf"
_GROUPS = ("rig", "task", "learner", "policy", "teleop", "profile")

_TEXT = {
    "demo": """robot-stack demo [overrides]

By default (demo.loop=practice) a reset-free practice session on the simulated WidowX 250s, in one process
(robot_stack/practice/experiment.py): scripted forward + backward demos into a zarr store, a success classifier
trained on them, the learner's offline policy evaluated, then practice attempts alternating forward and backward
with no reset in between, labelled by the classifier and learned from as they come; at each intervention the
sim's truth reviews the classifier's last labels (as the person resetting would). The summary prints forward and
backward success before -> after, interventions per 100 attempts, labels corrected, classifier FP/FN, missed ticks
and wall time (~15 min on 2 cores). demo.loop=bc runs the ROS loop instead (the sim_demo profile, real rclpy
processes): a scripted expert collects, the learner trains BC and pushes versions, the inference node swaps them in
between control ticks, and a summary prints scripted vs learned success.

Most used overrides:
  demo.obs=state|pixels            the practice policy's observations (pixels: proprio + the front camera)
  demo.practice.attempts=240       practice attempts
  demo.practice.learner=rlpd_state learner recipe (rlpd_state, calql_state, ...)
  demo.practice.review_attempts=4  labels reviewed at each intervention (0 = no review)
  demo.practice.seed=0
  task=put_cube_in_bowl            a forward task with a reverse (`robot-stack sim tasks`)
  demo.loop=bc demo.episodes=20 demo.eval_episodes=10 learner=bc   the ROS collect -> train -> deploy loop

Examples:
  robot-stack demo
  robot-stack demo demo.obs=pixels demo.practice.attempts=200 demo.practice.utd=0.5
  robot-stack demo demo.loop=bc demo.episodes=10 demo.eval_episodes=5 task=put_cube_on_plate""",
    "collect": """robot-stack collect rig=... task=... episodes=N [device=keyboard] [overrides]

Teleoperated data collection: starts the rig's collect profile (rig + recorder, the same graph as
`ros2 launch ... collect.launch.py`), runs the teleop device in this process and drives the episode loop
(start / success / fail / discard keys, reset between episodes, a live status line). Episodes of this task
already in the store count toward `episodes`, so a stopped session resumes.

Own keys:
  rig=sim_widowx|widowx|franka|sim_franka   which arm and cameras
  task=<name or "language">                 the task recorded with each episode
  episodes=N                                 target number of episodes
  device=keyboard|spacemouse|gamepad|replay  teleop device (conf/teleop/*.yaml)
  policy=1                                   intervention mode (a deploy profile's policy drives)
  max_episode_s=S                            episode time limit (default: twice the task's max_steps)

Examples:
  robot-stack collect rig=widowx task="put the cube in the bowl" episodes=50
  robot-stack collect rig=sim_widowx episodes=5 device=replay teleop.path=demo.jsonl""",
    "learn": """robot-stack learn learner=<recipe> store=<store.zarr> checkpoints=<dir> [overrides]

ROS-free learner: composes the same hydra config as the nodes, builds the service registered for
`learner.algo` and trains in the foreground (offline pre-training, then online fine-tuning on new policy /
practice episodes when `learner.online=true`). Ctrl-C stops after the current step; the last checkpoint is the
resume point.

Most used overrides:
  learner=calql_state       recipe: bc, bc_actor, cql, ptr, calql, rlpd, their *_state (low-dimensional input)
                            and *_paper (published GPU settings) variants
  learner.offline_steps=N   offline updates        learner.batch_size=N    batch size
  learner.online=false      offline only           learner.seed=N          seed
  task=put_cube_in_bowl     task (language conditioning, evaluation)
  policy:=<name>            train a policy manifest's recipe (policies/<name>.yaml) into the checkpoint root
                            that `robot-stack up <deploy profile> policy:=<name>` deploys from

Examples:
  robot-stack learn policy:=cube_in_bowl_bc store=data/stores/sim_widowx.zarr
  robot-stack learn learner=calql_state store=data/sim/store.zarr checkpoints=data/ckpt/calql
  robot-stack learn learner=bc store=data/sim/store.zarr checkpoints=data/ckpt/bc learner.offline_steps=2000
  robot-stack config learner=calql       (print the composed configuration first)""",
    "config": """robot-stack config [overrides]

Prints the composed hydra configuration (robot_stack/conf) after the overrides: what every node and the
learner would run with. Use it to check an override before starting a session.

`policy:=<name>` prints the training recipe of policies/<name>.yaml (what `robot-stack learn policy:=<name>` runs).

Examples:
  robot-stack config rig=widowx
  robot-stack config policy:=cube_in_bowl_bc
  robot-stack config learner=calql_state learner.offline_steps=5000""",
    "dashboard": """robot-stack dashboard [overrides]

Serves the operator page of a running rig (the bridge node robot_stack.ros.dashboard_node; the collect, deploy
and demo profiles start it too): camera thumbnails, arm status and an E-STOP button (release asks to confirm),
practice status, the active policy and the learner's losses, checkpoint versions with rollback, and the
store's episodes (thumbnails, replay, exclude/include). Join a graph started elsewhere with the same
ROS_DOMAIN_ID and rig.

Token rule: bound to 127.0.0.1 (the default) no token is asked for. Bound to any other address, e-stop
release, rollback and exclude/include need dashboard.token (or ROBOT_STACK_DASHBOARD_TOKEN, >= 12 characters);
engaging the e-stop never needs one.

Most used overrides:
  dashboard.port=8765        port                 dashboard.host=0.0.0.0 dashboard.token=...   serve the lab network
  store=data/stores/x.zarr   the store to list    checkpoints=<dir>      checkpoint versions to list
  rig=sim_widowx             namespace and cameras of the rig to show

Examples:
  robot-stack dashboard                         then open http://127.0.0.1:8765/
  ROS_DOMAIN_ID=42 robot-stack dashboard rig=widowx store=data/stores/widowx.zarr
  robot-stack dashboard dashboard.host=0.0.0.0 dashboard.token=$(openssl rand -hex 16)""",
    "profiles": """robot-stack profiles

Lists the profiles (robot_stack/conf/profile/*.yaml): each is the node graph of one job (collect, deploy,
demo) on one rig, started with `robot-stack up <profile>` here or `ros2 launch` on a ROS install.""",
}


def config_groups() -> str:
    lines = []
    for g in _GROUPS:
        names = sorted(p.stem for p in (_CONF / g).glob("*.yaml"))
        if names:
            lines.append(f"  {g}={'|'.join(names)}")
    return "Config groups (robot_stack/conf):\n" + "\n".join(lines)


def wants_help(argv: list[str]) -> bool:
    return any(a in HELP_FLAGS for a in argv)


def has_help(cmd: str) -> bool:
    return cmd in _TEXT


def help_text(cmd: str) -> str:
    text = _TEXT[cmd]
    if cmd != "profiles":
        text += "\n\n" + config_groups() + "\n\nAny key of the composed configuration can be overridden as key=value " \
                "(hydra's override grammar)."
    return text
