"""Profiles: which node processes make up a robot graph, with what environment and arguments.

One YAML per profile in `robot_stack/conf/profile/<name>.yaml`. Both ways of starting a graph read it,
so they cannot drift (this module sits in robot_stack/conf, below both of its users: robot_stack/cli and
robot_stack/ros never import each other, tests/test_import_boundaries.py):

    robot-stack up <profile> [overrides]          robot_stack.cli.supervisor (CI, `make demo`, pip installs)
    ros2 launch robot_stack_ros <x>.launch.py     launch/*.launch.py via `launch_nodes()` (real ROS 2 installs)

Format:

    description: "..."
    namespace: /wx250s            # robot namespace, applied to every node (`--ros-args -r __ns:=...`)
    env: {RMW_IMPLEMENTATION: rmw_fastrtps_cpp, ...}   # set for every node process (wins over the shell)
    nodes:
      - name: recorder                        # process name, log prefix, log file name, override prefix
        module: robot_stack.ros.recorder_node # `python -m <module>`; the module defines main(argv)
        executable: recorder                  # `ros2 run robot_stack_ros <executable>` (ros_ws setup.py)
        args: []                              # hydra overrides for this node
        required: true                        # if it fails, the supervisor stops everything

Command-line overrides (`load_profile(name, overrides)`) are hydra `key=value` strings routed by prefix:
`<node>.<key>=value`, where `<node>` is a node name in the profile, goes to that node only and is passed
unchanged (each node's own settings live under its own name in robot_stack.yaml: `recorder.*`,
`inference.*`, `learner.*`); anything else (`task=...`, `store=...`) goes to every node, so all of
them compose the same store, rig and task. A later override of the same key replaces an earlier one.

`policy:=<name>` (launch files, `robot-stack up`) deploys a manifest of the top-level policies/
(robot_stack/policies/catalog.py) or a checkpoint directory: `with_policy(profile, policy)`.

Nothing here imports rclpy or launch: this module is read by the launch files and by the tests.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import yaml

ROS_PACKAGE = "robot_stack_ros"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # node names become file names and override prefixes
_TOP_KEYS = {"description", "namespace", "env", "nodes"}
_NODE_KEYS = {"name", "module", "executable", "args", "required", "respawn", "respawn_delay_s"}


class ProfileError(ValueError):
    """A profile that does not exist or does not validate; the message names the fix."""


@dataclass(frozen=True)
class NodeSpec:
    name: str
    module: str
    executable: str
    args: tuple[str, ...] = ()
    required: bool = True
    # Restarted after `respawn_delay_s` when it exits on its own (ros2 launch's Node(respawn=True,
    # respawn_delay=...)); the supervisor gives up after RESPAWN_LIMIT restarts within RESPAWN_WINDOW_S.
    respawn: bool = False
    respawn_delay_s: float = 1.0


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    namespace: str
    env: Mapping[str, str]
    nodes: tuple[NodeSpec, ...]
    source: str = ""  # the YAML it was read from, for error messages
    overrides: tuple[str, ...] = field(default=())  # as given to load_profile, before routing
    pinned_namespace: bool = False  # True when the YAML names a namespace instead of taking the rig's

    def node(self, name: str) -> NodeSpec:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"profile {self.name!r} has no node {name!r}; nodes: {[n.name for n in self.nodes]}")

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes]


def _profile_dir():
    # robot_stack.conf is a regular package (profile/ is plain package data, see pyproject package-data).
    return resources.files("robot_stack.conf") / "profile"


def available_profiles() -> list[str]:
    """Names of the packaged profiles, sorted."""
    d = _profile_dir()
    if not d.is_dir():
        return []
    return sorted(p.name[: -len(".yaml")] for p in d.iterdir() if p.name.endswith(".yaml"))


def _looks_like_path(name_or_path: str | os.PathLike) -> bool:
    s = os.fspath(name_or_path)
    return isinstance(name_or_path, os.PathLike) or os.sep in s or "/" in s or s.endswith((".yaml", ".yml"))


def load_profile(name_or_path: str | os.PathLike, overrides: Sequence[str] = ()) -> Profile:
    """Read and validate a profile (a packaged name like `sim_demo`, or a path to a YAML file).

    `overrides` are hydra `key=value` strings routed to the nodes as described in the module docstring.
    Raises ProfileError with a message listing the available profiles or naming the bad key.
    """
    if _looks_like_path(name_or_path):
        path = Path(name_or_path)
        if not path.is_file():
            raise ProfileError(f"profile file {str(path)!r} does not exist")
        text, source, name = path.read_text(), str(path), path.stem
    else:
        name = str(name_or_path)
        res = _profile_dir() / f"{name}.yaml"
        if not _NAME.match(name) or not res.is_file():
            raise ProfileError(f"unknown profile {name!r}; available profiles: "
                               f"{', '.join(available_profiles()) or '(none)'} "
                               "(or give a path to a profile YAML file)")
        text, source = res.read_text(), str(res)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ProfileError(f"profile {source}: not valid YAML: {e}") from None
    profile = apply_overrides(_parse(name, data, source), overrides)
    if profile.pinned_namespace:
        return profile
    return replace(profile, namespace=rig_namespace(profile))


def profile_rig(profile: Profile) -> str:
    """The rig (conf/rig/<rig>.yaml) the profile's nodes are configured with; every node names the same one."""
    return _rig_and_namespace(profile)[0]


def rig_namespace(profile: Profile) -> str:
    """The ROS namespace of the rig the profile's nodes are configured with (`rig=` / `rig.namespace=` args,
    later args winning as in hydra; default rig otherwise). Every node must name the same rig."""
    rig, ns = _rig_and_namespace(profile)
    if ns:
        return ns
    rig_file = resources.files("robot_stack.conf").joinpath("rig", f"{rig}.yaml")
    if not rig_file.is_file():
        known = sorted(p.name[:-5] for p in resources.files("robot_stack.conf").joinpath("rig").iterdir()
                       if p.name.endswith(".yaml"))
        raise ProfileError(f"unknown rig {rig!r}; known rigs: {', '.join(known)}")
    namespace = (yaml.safe_load(rig_file.read_text()) or {}).get("namespace")
    if not isinstance(namespace, str) or not namespace.startswith("/"):
        raise ProfileError(f"rig {rig}: conf/rig/{rig}.yaml needs an absolute `namespace` like /wx250s")
    return namespace


def _rig_and_namespace(profile: Profile) -> tuple[str, str | None]:
    per_node: dict[str, tuple[str, str | None]] = {}
    for n in profile.nodes:
        rig, ns = DEFAULT_RIG, None
        for arg in n.args:
            key, _, value = arg.partition("=")
            if key == "rig":
                rig = value
            elif key == "rig.namespace":
                ns = value
        per_node[n.name] = (rig, ns)
    if len(set(per_node.values())) > 1:
        raise ProfileError(f"profile {profile.name}: nodes are configured with different rigs {per_node}; "
                           "give rig=... once for all nodes")
    return next(iter(per_node.values()))


def _parse(name: str, data: object, source: str) -> Profile:
    def fail(msg: str) -> ProfileError:
        return ProfileError(f"profile {source}: {msg}")

    if not isinstance(data, dict):
        raise fail("expected a mapping with keys namespace, env, nodes")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise fail(f"unknown keys {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    if "nodes" not in data:
        raise fail("missing key 'nodes'")
    # Normally absent: the namespace is the rig's (conf/rig/<rig>.yaml), derived after overrides are applied,
    # so `rig=sim_franka` moves every node to /panda. A profile may still pin one explicitly.
    namespace = data.get("namespace")
    if namespace is not None and (not isinstance(namespace, str) or not namespace.startswith("/")):
        raise fail(f"namespace must be an absolute ROS namespace like /wx250s, got {namespace!r}")
    env = data.get("env") or {}
    if not isinstance(env, dict):
        raise fail("env must be a mapping of variable name to value")
    for k, v in env.items():
        if isinstance(v, (dict, list)) or v is None:
            raise fail(f"env {k}: value must be a string or number, got {v!r}")
    env = {str(k): (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in env.items()}
    raw_nodes = data["nodes"]
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise fail("nodes must be a non-empty list")
    nodes: list[NodeSpec] = []
    for i, raw in enumerate(raw_nodes):
        if not isinstance(raw, dict):
            raise fail(f"nodes[{i}] must be a mapping")
        where = f"nodes[{i}] ({raw.get('name', '?')})"
        unknown = set(raw) - _NODE_KEYS
        if unknown:
            raise fail(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(_NODE_KEYS)}")
        for key in ("name", "module", "executable"):
            if not isinstance(raw.get(key), str) or not raw[key]:
                raise fail(f"{where}: missing key {key!r} (a non-empty string)")
        if not _NAME.match(raw["name"]):
            raise fail(f"{where}: node name must be a plain identifier (letters, digits, _)")
        args = raw.get("args") or []
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise fail(f"{where}: args must be a list of 'key=value' strings")
        required = raw.get("required", True)
        if not isinstance(required, bool):
            raise fail(f"{where}: required must be true or false")
        respawn = raw.get("respawn", False)
        if not isinstance(respawn, bool):
            raise fail(f"{where}: respawn must be true or false")
        delay = raw.get("respawn_delay_s", 1.0)
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= 60:
            raise fail(f"{where}: respawn_delay_s must be a number of seconds in [0, 60], got {delay!r}")
        nodes.append(NodeSpec(raw["name"], raw["module"], raw["executable"], tuple(args), required, respawn,
                              float(delay)))
    seen: set[str] = set()
    for n in nodes:
        if n.name in seen:
            raise fail(f"duplicate node name {n.name!r}; each node needs its own name (log file, prefix)")
        seen.add(n.name)
    return Profile(name=name, description=str(data.get("description", "")), namespace=namespace or "",
                   env=env, nodes=tuple(nodes), source=source, pinned_namespace=namespace is not None)


def _override_key(override: str) -> str:
    # `+key=v`, `++key=v`, `~key` and `key=v` all name `key`.
    return override.split("=", 1)[0].lstrip("+~")


def route_overrides(node_names: Sequence[str], overrides: Sequence[str]) -> dict[str, list[str]]:
    """Split hydra overrides per node: `<node>.<key>=v` to that node only, the rest to every node."""
    routed: dict[str, list[str]] = {n: [] for n in node_names}
    for ov in overrides:
        if not isinstance(ov, str) or ("=" not in ov and not ov.startswith("~")):
            raise ProfileError(f"override {ov!r} is not a hydra 'key=value' (or '<node>.key=value') string")
        key = _override_key(ov)
        target = key.split(".", 1)[0] if "." in key else None
        for n in node_names if target not in routed else [target]:
            routed[n].append(ov)
    return routed


def _merge_args(base: Sequence[str], extra: Sequence[str]) -> tuple[str, ...]:
    # Hydra rejects some duplicate keys and is order-sensitive for others; keep one value per key, last wins.
    out: dict[str, str] = {}
    for a in [*base, *extra]:
        out.pop(_override_key(a), None)
        out[_override_key(a)] = a
    return tuple(out.values())


def apply_overrides(profile: Profile, overrides: Sequence[str]) -> Profile:
    """A copy of `profile` with `overrides` routed into the nodes' args (see module docstring)."""
    overrides = list(overrides)
    if not overrides:
        return profile
    routed = route_overrides(profile.node_names, overrides)
    nodes = tuple(replace(n, args=_merge_args(n.args, routed[n.name])) for n in profile.nodes)
    return replace(profile, nodes=nodes, overrides=(*profile.overrides, *overrides))


def with_policy(profile: Profile, policy: str) -> Profile:
    """`profile` deploying `policy` (the `policy:=` argument) on its inference node.

    `policy` is a manifest name or path from the policy catalog (robot_stack/policies/catalog.py: checked against
    the profile's rig and task, resolved to its checkpoint and policy type), or a checkpoint directory (its
    `latest` is loaded). ProfileError names what does not fit.
    """
    from robot_stack.policies.catalog import PolicyManifestError, load_policy_manifest, resolve_deployment

    if "inference" not in profile.node_names:
        raise ProfileError(f"policy:={policy} given, but profile {profile.name} runs no inference node")
    if Path(policy).is_dir():  # a checkpoint directory or root, as before the catalog existed
        return apply_overrides(profile, [f"{POLICY_OVERRIDE_KEY}={policy}"])
    try:
        manifest = load_policy_manifest(policy)
        # What the inference node composes (profile args + routed overrides) decides the checkpoint root.
        inference_args = [a for a in profile.node("inference").args if _override_key(a) != "rig"]
        deployment = resolve_deployment(manifest, profile_rig(profile), inference_args)
    except PolicyManifestError as e:
        raise ProfileError(f"{e} (policy:={policy}, profile {profile.name})") from None
    return apply_overrides(profile, deployment.overrides)


def ros_args(namespace: str) -> list[str]:
    """ROS arguments every node gets, the same ones launch_ros adds for `Node(namespace=...)`."""
    return ["--ros-args", "-r", f"__ns:={namespace}"] if namespace and namespace != "/" else []


def node_command(node: NodeSpec, python: str = sys.executable, namespace: str | None = None,
                 env: Mapping[str, str] | None = None) -> list[str]:
    """`[python, -m, module, *args]` (+ the namespace remap when `namespace` is given).

    With ROS 2 security on (`ROS_SECURITY_ENABLE=true` in `env`, keystore in `ROS_SECURITY_KEYSTORE`), each node
    runs in its own SROS2 enclave `/robot_stack/<node name>`, so the keystore's per-enclave permissions decide
    who may publish `action`, call `estop`/`arm/enable` or push `policy_update` (README, "Who may command the arm").
    """
    extra = list(ros_args(namespace)) if namespace else []
    if env is not None and str(env.get("ROS_SECURITY_ENABLE", "")).lower() == "true":
        extra = (extra or ["--ros-args"]) + ["--enclave", f"/robot_stack/{node.name}"]
    return [python, "-m", node.module, *node.args, *extra]


def ros_env(profile: Profile, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for node processes: `base` (default os.environ) with the profile's env on top.

    The profile wins over the shell on purpose: the DDS settings in it are what the graph was measured
    with (e.g. Fast DDS LARGE_DATA for camera rates), and launch_ros' additional_env does the same.
    """
    env = dict(os.environ if base is None else base)
    env.update(profile.env)
    return env


# ---------------------------------------------------------------------------------------------------
# Launch files: the launch-independent part (launch/*.launch.py only wrap these in launch_ros Nodes).

DEFAULT_RIG = "sim_widowx"
# launch file -> rig:= value -> profile. Rigs listed in _PENDING_RIGS are known but not runnable yet.
LAUNCH_PROFILES: dict[str, dict[str, str]] = {
    "sim_demo": {"sim_widowx": "sim_demo"},
    "collect": {"sim_widowx": "sim_collect", "sim_franka": "sim_collect", "widowx": "widowx_collect",
                "franka": "franka_collect"},
    "deploy": {"sim_widowx": "sim_deploy", "sim_franka": "sim_deploy", "widowx": "widowx_deploy",
               "franka": "franka_deploy"},
    "practice": {"sim_widowx": "sim_practice", "sim_franka": "sim_practice"},
}
_PENDING_RIGS: dict[str, str] = {}
# `policy:=<checkpoint dir>` becomes this hydra override for the inference node (a manifest adds the policy type
# too); a node that lacks the key fails loudly in hydra rather than silently running a different policy.
POLICY_OVERRIDE_KEY = "inference.policy"


@dataclass(frozen=True)
class LaunchNode:
    """One launch_ros Node, as plain data: Node(package, executable, namespace, arguments, additional_env)."""
    name: str
    package: str
    executable: str
    namespace: str
    arguments: tuple[str, ...]
    env: Mapping[str, str]
    required: bool
    respawn: bool = False
    respawn_delay_s: float = 1.0


def launch_profile_name(launch: str, rig: str = DEFAULT_RIG) -> str:
    """Which profile a launch file starts for `rig:=<rig>`; ProfileError naming what is missing otherwise."""
    if launch not in LAUNCH_PROFILES:
        raise ProfileError(f"unknown launch file {launch!r}; known: {sorted(LAUNCH_PROFILES)}")
    rigs = LAUNCH_PROFILES[launch]
    if rig in rigs:
        return rigs[rig]
    if rig in _PENDING_RIGS:
        raise ProfileError(f"rig {rig} needs {_PENDING_RIGS[rig]}; runnable rigs for {launch}: {sorted(rigs)}")
    raise ProfileError(f"unknown rig {rig!r} for {launch}; runnable: {sorted(rigs)}, "
                       f"planned: {sorted(_PENDING_RIGS)}")


def launch_nodes(launch: str, rig: str = DEFAULT_RIG, policy: str = "",
                 overrides: Sequence[str] = ()) -> tuple[Profile, list[LaunchNode]]:
    """Profile + the node descriptions `launch/<launch>.launch.py` turns into launch_ros Nodes.

    `policy` (the `policy:=` launch arg) is a policy manifest or checkpoint directory deployed on the inference
    node (`with_policy`); a profile without an inference node rejects it.
    """
    profile_name = launch_profile_name(launch, rig)
    # The sim profiles serve several sim rigs: name the rig so the nodes (and the namespace) follow it.
    extra = [f"rig={rig}", *overrides] if rig != DEFAULT_RIG else list(overrides)
    profile = load_profile(profile_name, extra)
    if policy:
        profile = with_policy(profile, policy)
    nodes = [LaunchNode(name=n.name, package=ROS_PACKAGE, executable=n.executable, namespace=profile.namespace,
                        arguments=n.args, env=dict(profile.env), required=n.required, respawn=n.respawn,
                        respawn_delay_s=n.respawn_delay_s) for n in profile.nodes]
    return profile, nodes
