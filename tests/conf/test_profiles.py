"""Profiles (robot_stack/conf/profiles.py): the packaged ones validate and agree with the ROS package."""

import ast
import sys
from pathlib import Path

import pytest
import yaml

from robot_stack.conf.profiles import (
    ProfileError,
    available_profiles,
    load_profile,
    node_command,
    ros_env,
    route_overrides,
)

REPO = Path(__file__).resolve().parents[2]
SETUP_PY = REPO / "ros_ws" / "src" / "robot_stack_ros" / "setup.py"
EXPECTED = {
    "sim_demo": ["sim_rig", "recorder", "learner", "inference", "dashboard"],
    "sim_collect": ["sim_rig", "recorder", "dashboard"],
    "sim_deploy": ["sim_rig", "recorder", "inference", "dashboard"],
}


def console_scripts() -> dict[str, str]:
    """`name = module:func` entries of ros_ws setup.py, read with ast (running setup() would install)."""
    tree = ast.parse(SETUP_PY.read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    entry_points = ast.literal_eval(next(k.value for k in call.keywords if k.arg == "entry_points"))
    pairs = (s.split("=", 1) for s in entry_points["console_scripts"])
    return {name.strip(): target.strip() for name, target in pairs}


def test_packaged_profiles_are_the_expected_ones():
    assert set(EXPECTED) <= set(available_profiles())
    for name, nodes in EXPECTED.items():
        assert load_profile(name).node_names == nodes


@pytest.mark.parametrize("name", available_profiles())
def test_every_profile_runs_the_dashboard_as_a_node_that_may_die(name):
    # Issue 14: the operator page comes up with every collect/deploy/demo graph, but a dead page never stops the rig.
    dash = load_profile(name).node("dashboard")
    assert dash.module == "robot_stack.ros.dashboard_node" and dash.required is False


@pytest.mark.parametrize("name", available_profiles())
def test_every_profile_loads_with_unique_nodes_and_dds_env(name):
    p = load_profile(name)
    assert p.name == name and p.description
    assert len(set(p.node_names)) == len(p.nodes)
    assert p.env["RMW_IMPLEMENTATION"] == "rmw_fastrtps_cpp"
    assert p.env["FASTDDS_BUILTIN_TRANSPORTS"] == "LARGE_DATA"
    assert all(n.module.startswith("robot_stack.ros.") for n in p.nodes)


@pytest.mark.parametrize("name", available_profiles())
def test_every_executable_is_a_console_script_of_the_ros_package_pointing_at_the_same_module(name):
    scripts = console_scripts()
    for n in load_profile(name).nodes:
        assert n.executable in scripts, f"{name}: {n.executable} missing from {SETUP_PY}"
        assert scripts[n.executable] == f"{n.module}:main"


def test_ros_package_and_pyproject_name_the_same_node_modules():
    import tomllib

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    ros = set(console_scripts().values())
    assert {v for k, v in pyproject.items() if k.startswith("robot-stack-")} == ros


# sim_franky*: the real rig node (real Franka driver) against franky-sim, on the rig's own /fr3 namespace.
@pytest.mark.parametrize("name", [n for n in available_profiles() if n.startswith("sim_") and not n.startswith("sim_franky")])
def test_sim_profile_namespace_matches_the_sim_rig(name):
    # The demo's rclpy client uses rig.namespace; the nodes are remapped to the profile namespace.
    rig = yaml.safe_load((REPO / "robot_stack" / "conf" / "rig" / "sim_widowx.yaml").read_text())
    assert load_profile(name).namespace == rig["namespace"]


def test_sim_franky_profile_takes_the_franky_rig_namespace():
    rig = yaml.safe_load((REPO / "robot_stack" / "conf" / "rig" / "sim_franky.yaml").read_text())
    assert load_profile("sim_franky_collect").namespace == rig["namespace"] == "/fr3"


def test_namespace_follows_the_rig_override():
    """rig=sim_franka moves every node to the Panda's namespace; the rig config is the one source of it."""
    franka = yaml.safe_load((REPO / "robot_stack" / "conf" / "rig" / "sim_franka.yaml").read_text())
    assert load_profile("sim_collect", ["rig=sim_franka"]).namespace == franka["namespace"] != "/wx250s"
    assert load_profile("sim_collect", ["rig.namespace=/lab2"]).namespace == "/lab2"
    with pytest.raises(ProfileError, match="sim_widowx"):
        load_profile("sim_collect", ["rig=ur5"])


def test_nodes_configured_with_different_rigs_are_refused(tmp_path):
    f = tmp_path / "mixed.yaml"
    f.write_text("nodes:\n"
                 "  - {name: a, module: m, executable: a, args: [rig=sim_widowx]}\n"
                 "  - {name: b, module: m, executable: b, args: [rig=sim_franka]}\n")
    with pytest.raises(ProfileError, match="different rigs"):
        load_profile(str(f))
    assert load_profile(str(f), ["rig=sim_franka"]).namespace == "/panda"  # a global override wins for all


def test_unknown_profile_lists_the_available_ones():
    with pytest.raises(ProfileError) as e:
        load_profile("no_such_profile")
    for name in EXPECTED:
        assert name in str(e.value)


def test_node_override_reaches_only_that_node_and_plain_overrides_reach_all():
    p = load_profile("sim_demo", ["recorder.episodes=3", "task=take_cube_out_of_bowl", "+learner.x=1"])
    assert p.node("recorder").args == ("recorder.episodes=3", "task=take_cube_out_of_bowl")
    for other in ("sim_rig", "learner", "inference"):
        assert "recorder.episodes=3" not in p.node(other).args
        assert "task=take_cube_out_of_bowl" in p.node(other).args
    assert "+learner.x=1" in p.node("learner").args and "+learner.x=1" not in p.node("sim_rig").args
    # A config group choice without a dot goes everywhere even if it is also a node name.
    assert route_overrides(["learner", "recorder"], ["learner=bc"]) == {"learner": ["learner=bc"],
                                                                        "recorder": ["learner=bc"]}


def test_later_override_of_a_key_replaces_the_earlier_one(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("namespace: /t\nnodes:\n  - {name: a, module: m, executable: a, args: [x=1, y=2]}\n")
    p = load_profile(f, ["x=5", "a.y=7", "x=6"])
    # `a.y=7` is routed to node a unchanged: it is the hydra key `a.y`, not `y`.
    assert p.node("a").args == ("y=2", "a.y=7", "x=6")


def test_bad_override_is_rejected():
    with pytest.raises(ProfileError, match="key=value"):
        load_profile("sim_collect", ["episodes"])


@pytest.mark.parametrize("body,needle", [
    ("nodes: []\n", "non-empty list"),
    ("namespace: /t\n", "missing key 'nodes'"),
    ("namespace: wx\nnodes: [{name: a, module: m, executable: a}]\n", "absolute ROS namespace"),
    ("namespace: /t\nnodes: [{name: a, executable: a}]\n", "missing key 'module'"),
    ("namespace: /t\nnodes: [{name: a, module: m, executable: a}, {name: a, module: n, executable: b}]\n",
     "duplicate node name 'a'"),
    ("namespace: /t\nnodez: []\nnodes: [{name: a, module: m, executable: a}]\n", "unknown keys ['nodez']"),
    ("namespace: /t\nnodes: [{name: a, module: m, executable: a, args: x=1}]\n", "args must be a list"),
    ("namespace: /t\nnodes: [{name: a-b, module: m, executable: a}]\n", "plain identifier"),
])
def test_invalid_profiles_name_the_problem(tmp_path, body, needle):
    f = tmp_path / "bad.yaml"
    f.write_text(body)
    with pytest.raises(ProfileError) as e:
        load_profile(str(f))
    assert needle in str(e.value) and str(f) in str(e.value)


def test_node_command_and_env(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("namespace: /ns\nenv: {ROS_AUTOMATIC_DISCOVERY_RANGE: LOCALHOST, N: 3}\n"
                 "nodes: [{name: a, module: pkg.mod, executable: a, args: [k=v]}]\n")
    p = load_profile(f)
    assert node_command(p.node("a")) == [sys.executable, "-m", "pkg.mod", "k=v"]
    assert node_command(p.node("a"), "py", p.namespace) == ["py", "-m", "pkg.mod", "k=v",
                                                            "--ros-args", "-r", "__ns:=/ns"]
    env = ros_env(p, {"PATH": "/bin", "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"})
    assert env == {"PATH": "/bin", "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "N": "3"}


def test_sros2_enclave_per_node_when_security_is_on():
    from robot_stack.conf.profiles import load_profile, node_command

    p = load_profile("widowx_deploy")
    rig = next(n for n in p.nodes if n.name == "rig")
    plain = node_command(rig, "python", p.namespace, env={})
    assert "--enclave" not in plain
    secure = node_command(rig, "python", p.namespace, env={"ROS_SECURITY_ENABLE": "true"})
    assert secure[-2:] == ["--enclave", "/robot_stack/rig"] and "--ros-args" in secure


def test_real_rig_profiles_keep_discovery_on_the_robot_machine():
    from robot_stack.conf.profiles import load_profile

    for name in ("widowx_collect", "widowx_deploy", "franka_collect", "franka_deploy"):
        assert load_profile(name).env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST", name
