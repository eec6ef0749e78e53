"""Inference node: observations in, `action` out; swaps policy versions between two ticks.

    camera/<cam>/image_raw ─┐
    joint_states + ee_pose ─┴► ObservationAssembler ─► new state s with frames after it?
                                                        └► PolicyRunner.step(obs) ─► action (stamp = s)
    policy_update (latched) ─► PolicyRunner.request_load (background: download if the path is an http(s) URL
                                 of a learner on another machine, hash, schema, first forward pass)
                                 └► swapped in at the start of the next tick ─► policy_active (latched)

One tick per new state (the arm publishes state once per control step). A state the policy could not
answer (frames late, policy not ready) while enabled is counted as a missed tick; with no action the
arm node's watchdog holds the arm. Thin adapter over `robot_stack.inference.PolicyRunner`, which also
owns the safety rules (checkpoint roots, forward-only versions, runtime fallback): a policy that raises or
emits bad actions never takes this node down (review B4/B5, DESIGN §3), and `inference/status` says
what happened. `inference/rollback` (std_srvs/Trigger) goes back to the previous good version, the only
way a version moves backwards; every call is logged.

V-GPS (inference.selection: vgps | random): the runner's ActionSelector (robot_stack/inference/selection.py)
samples K actions per tick and executes the one its critic scores highest. The critic is its own checkpoint kind:

    critic_update (latched) ─► critic runner (same admission, hash, schema, first forward pass as policies;
                               versions of its own) ─► swapped in at the start of a tick ─► critic_active (latched)

The chosen index, Q spread and timing of the last tick go to inference/status ("selection"); the critic version,
K and beta of every action go into its source tag (selection_tag), which the recorder files in the episode's
policy_version (e.g. "diffusion@v3+vgps:critic@v2:K10:beta0").
"""

from __future__ import annotations

import os
import threading

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from std_srvs.srv import SetBool, Trigger

from robot_stack.ros import conversions as conv
from robot_stack.ros.qos import COMMAND, LATCHED, STATUS
from robot_stack.ros.recorder_node import subscribe_observations


class InferenceNode(Node):
    def __init__(self, runner, assembler, cameras, action_names, namespace: str, enabled: bool, critic_runner=None):
        super().__init__("inference", namespace=namespace)
        self.runner, self.assembler, self.action_names = runner, assembler, tuple(action_names)
        self.critic_runner = critic_runner
        self.enabled = enabled
        self.ticks = 0
        self.missed_ticks = 0
        self._acted_stamp: int | None = None
        self._pending_stamp: int | None = None  # newest state not yet answered
        self._events_lock = threading.Lock()
        self._activations: list[str] = []
        self.pub_action = self.create_publisher(JointState, "action", COMMAND)
        self.pub_active = self.create_publisher(String, "policy_active", LATCHED)
        self.pub_status = self.create_publisher(String, "inference/status", STATUS)
        subscribe_observations(self, assembler, cameras, on_state=self._on_observation)
        self.create_subscription(String, "policy_update", self._on_update, LATCHED)
        if critic_runner is not None:
            self.pub_critic_active = self.create_publisher(String, "critic_active", LATCHED)
            self.create_subscription(String, "critic_update", self._on_critic_update, LATCHED)
        self.create_service(SetBool, "inference/enable", self._on_enable)
        self.create_service(Trigger, "inference/rollback", self._on_rollback)
        # Episode mode, set by the practice node through the standard SetParameters service before it enables
        # control (synchronous, so it can never arrive after the first tick of the attempt): the task language a
        # multi-task policy is conditioned on ('' = its own default) and exploration (sampled, gripper held).
        self.declare_parameter("task_language", "")
        self.declare_parameter("explore", False)
        self.declare_parameter("gripper_hold_steps", 5)
        # At most this many actions per enable (0 = no limit): a practice attempt has a fixed horizon, and disabling
        # from outside always lets one more in-flight action through.
        self.declare_parameter("episode_steps", 0)
        self._published_since_enable = 0
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.step_errors = 0
        self._last_error = ""
        self.create_timer(1.0, self._publish_status)
        # While disabled nothing ticks, so a staged policy is swapped in here (same thread as the ticks).
        self.create_timer(0.1, self._activate_when_idle)

    def _activate_when_idle(self) -> None:
        if not self.enabled:
            self.runner.activate_staged()
            if self.critic_runner is not None:
                self.critic_runner.activate_staged()

    def _on_update(self, msg: String, runner=None, what: str = "policy_update") -> None:
        from robot_stack.inference.manifest import PolicyMessageError, parse_update

        try:
            update = parse_update(msg.data)
        except PolicyMessageError as e:
            self.get_logger().error(f"ignored malformed {what}: {e}")
            return
        self.get_logger().info(f"{what} v{update.version} ({update.path}): verifying and loading")
        (runner or self.runner).request_load(update)

    def _on_critic_update(self, msg: String) -> None:
        self._on_update(msg, self.critic_runner, "critic_update")

    def on_critic_event(self, kind: str, payload) -> None:
        """Critic runner events: the same reports as the policy's, on critic_active."""
        self.pub_critic_active.publish(String(data=payload.to_json()))
        line = f"critic v{payload.version} {kind}{': ' + payload.reason if payload.reason else ''}"
        if payload.status == "ok":
            self.get_logger().info(line)
        else:
            self.get_logger().error(line)

    def on_runner_event(self, kind: str, payload) -> None:
        """Runner events ('activated' on the control thread, 'rejected' on the loader thread)."""
        self.pub_active.publish(String(data=payload.to_json()))
        line = f"policy v{payload.version} {kind}{': ' + payload.reason if payload.reason else ''}"
        # Two call sites: rclpy refuses to change one call site's severity between calls.
        if payload.status == "ok":
            self.get_logger().info(line)
        else:
            self.get_logger().error(line)
        if kind == "fault":
            self._publish_status()  # say why right away, not at the next 1 s status tick

    def _on_observation(self, state_stamp: int | None) -> None:
        if state_stamp is not None:  # a new state arrived
            if self.enabled and self._pending_stamp is not None and self._pending_stamp != self._acted_stamp:
                self.missed_ticks += 1  # the previous state was never answered
            self._pending_stamp = state_stamp
        t = self._pending_stamp
        if not self.enabled or t is None or t == self._acted_stamp:
            return
        if not self.assembler.camera_has_frame_after(t):
            return  # wait for images of the world after the last control step
        obs = self.assembler.observation(t)
        if obs is None:
            return
        try:
            action = self.runner.step(obs)
        except Exception as e:  # noqa: BLE001 - wiring faults (assembler vs schema) hold, never kill the node
            self.step_errors += 1
            self._last_error = f"{type(e).__name__}: {e}"
            self.get_logger().error(f"inference tick failed, holding (no action): {self._last_error}")
            self._acted_stamp = t  # one report per state, not one per image
            return
        if action is None:
            return
        budget = int(self.get_parameter("episode_steps").value)
        if budget and self._published_since_enable >= budget:
            self._acted_stamp = t
            return
        active = self.runner.active
        source = f"policy:{active.policy_type}@v{active.version}"
        if self.runner.selector is not None:  # the critic that steered this step goes into the episode's metadata
            from robot_stack.inference.selection import selection_tag

            source += selection_tag(self.runner.last_selection)
        self.pub_action.publish(conv.action_to_msg(self.action_names, action, t, source))
        self._published_since_enable += 1
        self._acted_stamp = t
        self.ticks += 1

    def _mode(self, overrides: dict | None = None) -> dict:
        values = {n: self.get_parameter(n).value for n in ("task_language", "explore", "gripper_hold_steps")}
        return {**values, **(overrides or {})}

    def _on_set_parameters(self, params):
        from rcl_interfaces.msg import SetParametersResult

        mode = self._mode({p.name: p.value for p in params})
        try:
            if not isinstance(mode["task_language"], str) or not isinstance(mode["explore"], bool):
                raise TypeError("task_language must be a string and explore a bool")
            self.runner.set_episode_mode(mode["task_language"] or None, mode["explore"], int(mode["gripper_hold_steps"]))
        except (TypeError, ValueError) as e:
            return SetParametersResult(successful=False, reason=str(e))
        return SetParametersResult(successful=True)

    def _on_enable(self, req, resp):
        if req.data and not self.enabled:  # a new episode: the held gripper starts over
            mode = self._mode()
            self.runner.set_episode_mode(mode["task_language"] or None, mode["explore"], int(mode["gripper_hold_steps"]))
        self.enabled = bool(req.data)
        self._published_since_enable = 0
        self._pending_stamp = None  # never answer a state from before the switch
        resp.success = True
        resp.message = f"inference {'enabled' if self.enabled else 'disabled'}; active policy v{self.runner.active_version}"
        return resp

    def _on_rollback(self, req, resp):
        # std_srvs/Trigger carries no caller identity; the log line and the runner's log name the service.
        self.get_logger().warning("inference/rollback called: going back to the previous good version")
        try:
            target = self.runner.rollback(caller="inference/rollback service")
        except ValueError as e:
            resp.success, resp.message = False, str(e)
            self.get_logger().error(f"inference/rollback refused: {e}")
            return resp
        resp.success = True
        resp.message = (f"rolling back from v{self.runner.active_version} to v{target.version} ({target.path}); "
                        "it is verified and swapped in between two ticks, see policy_active")
        return resp

    def status(self) -> dict:
        s = self.runner.stats
        return {
            "enabled": self.enabled, "active_version": self.runner.active_version, "ticks": self.ticks,
            "task_language": self.get_parameter("task_language").value, "explore": self.get_parameter("explore").value,
            "missed_ticks": self.missed_ticks, "swaps": s.swaps, "rejected": s.rejected,
            "held_nonfinite": s.held_nonfinite, "policy_exceptions": s.policy_exceptions,
            "fallbacks": s.fallbacks, "step_errors": self.step_errors, "last_step_error": self._last_error,
            "max_step_ms": round(s.max_step_latency_s * 1e3, 2), **self.runner.health(), **self._selection_status()}

    def _selection_status(self) -> dict:
        if self.runner.selector is None:
            return {}
        out = {"selection": dict(self.runner.last_selection)}
        if self.critic_runner is not None:
            out.update(critic_version=self.critic_runner.active_version,
                       critic_fallbacks=int(getattr(self.runner.selector, "critic_fallbacks", 0)))
        return out

    def _publish_status(self) -> None:
        self.pub_status.publish(conv.json_msg(self.status()))

    def close(self) -> None:
        self.runner.close()
        if self.critic_runner is not None:
            self.critic_runner.close()


def build(cfg):
    from robot_stack.inference.manifest import make_update
    from robot_stack.inference.runner import PolicyRunner
    from robot_stack.policies.checkpoint import PolicySchema, latest_checkpoint
    from robot_stack.store.align import ObservationAssembler
    from robot_stack.types import ACTION_SPACES, rig_features

    rig = cfg.rig
    cams = tuple(rig.cameras)
    schema = PolicySchema.from_features(
        rig_features({n: (int(c.height), int(c.width)) for n, c in rig.cameras.items()}, int(rig.n_joints)))
    # "In range" for a first forward pass: within twice the arm's per-step clamp (the arm clamps anyway;
    # this catches a checkpoint whose outputs are off by orders of magnitude, e.g. un-normalised).
    lim_m, lim_rad = 2 * float(rig.safety.max_delta_m), 2 * float(rig.safety.max_delta_rad)
    limits = (np.array([-lim_m] * 3 + [-lim_rad] * 3 + [0.0]), np.array([lim_m] * 3 + [lim_rad] * 3 + [1.0]))
    assembler = ObservationAssembler(cams, max_skew_ms=float(cfg.inference.max_obs_age_ms))
    node_ref: list[InferenceNode] = []
    inf = cfg.inference
    selector, critic_runner = _build_selector(inf, schema, node_ref, cfg)
    # policy_update paths must resolve under these roots (review B4); default: the learner's checkpoint root.
    # A checkpoint the operator names at start (inference.policy) is trusted as its own root.
    roots = [str(r) for r in (inf.get("checkpoint_roots") or [cfg.checkpoints])]
    if inf.policy:
        roots.append(str(inf.policy))
    runner = PolicyRunner(schema, on_event=lambda k, p: node_ref[0].on_runner_event(k, p), action_limits=limits,
                          checkpoint_roots=[os.path.abspath(r) for r in roots],
                          policy_type=str(inf.get("policy_type") or "") or None,
                          max_bad_actions=int(inf.get("max_bad_actions", 3)),
                          # A learner on another machine announces URLs: downloaded here, only from these servers.
                          checkpoint_cache_dir=os.path.abspath(str(inf.get("checkpoint_cache_dir")
                                                                   or os.path.join(str(cfg.data_dir), "checkpoint_cache"))),
                          checkpoint_urls=[str(u) for u in (inf.get("checkpoint_urls") or [])],
                          fetch_timeout_s=float(inf.get("checkpoint_fetch_timeout_s", 60.0)), selector=selector)
    node = InferenceNode(runner, assembler, cams, ACTION_SPACES[str(rig.action_space)], str(rig.namespace),
                         enabled=bool(cfg.inference.enabled_at_start), critic_runner=critic_runner)
    node_ref.append(node)
    if cfg.inference.policy:
        path = latest_checkpoint(str(cfg.inference.policy)) or str(cfg.inference.policy)
        runner.request_load(make_update(path))
    node.get_logger().info(f"inference node up: cameras={list(cams)}, checkpoint roots {runner.checkpoint_roots}, "
                           f"checkpoint URLs {list(runner.checkpoint_urls)}, waiting for policy_update")
    return [node]


def _build_selector(inf, schema, node_ref, cfg):
    """inference.selection: none (select_action) | vgps (critic re-ranking) | random (the control); -> (selector,
    critic runner or None). The critic's checkpoints are confined like the policy's (inference.critic_roots, default
    ${checkpoints}/critic); inference.critic names one to load at start."""
    from robot_stack.inference.manifest import make_update
    from robot_stack.inference.runner import PolicyRunner
    from robot_stack.inference.selection import VGPSSelector
    from robot_stack.policies.checkpoint import CRITIC_KIND, latest_checkpoint

    mode = str(inf.get("selection") or "none")
    if mode == "none":
        return None, None
    critic_runner = None
    if mode == "vgps":
        roots = [str(r) for r in (inf.get("critic_roots") or [os.path.join(str(cfg.checkpoints), "critic")])]
        if inf.get("critic"):
            roots.append(str(inf.critic))
        critic_runner = PolicyRunner(schema, on_event=lambda k, p: node_ref[0].on_critic_event(k, p),
                                     checkpoint_roots=[os.path.abspath(r) for r in roots],
                                     checkpoint_kind=CRITIC_KIND)
        if inf.get("critic"):
            critic_runner.request_load(make_update(latest_checkpoint(str(inf.critic)) or str(inf.critic)))
    selector = VGPSSelector(k=int(inf.get("vgps_k", 10)), beta=float(inf.get("vgps_beta", 0.0)), mode=mode,
                            critic_runner=critic_runner)
    return selector, critic_runner


def main(argv=None) -> int:
    from robot_stack.ros.node_main import run_nodes

    return run_nodes(build, argv, "inference")


if __name__ == "__main__":
    raise SystemExit(main())
