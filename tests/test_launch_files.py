"""launch/*.launch.py: valid, import only launch/launch_ros/profiles, and start the same nodes as the profile.

`launch` and `launch_ros` are not pip-installable here, so the launch files are also executed against
small stand-ins for the few launch classes they use; that checks the Node arguments they build.
"""

import ast
import os
import runpy
import sys
import types
from pathlib import Path
from xml.etree import ElementTree

import pytest

from robot_stack.conf.profiles import (
    LAUNCH_PROFILES,
    POLICY_OVERRIDE_KEY,
    ProfileError,
    launch_nodes,
    load_profile,
)

REPO = Path(__file__).resolve().parents[1]
LAUNCH_DIR = REPO / "launch"
LAUNCH_FILES = {p.name[: -len(".launch.py")]: p for p in sorted(LAUNCH_DIR.glob("*.launch.py"))}
ALLOWED_IMPORTS = {"launch", "launch_ros", "robot_stack.conf.profiles", "robot_stack.ros.launch_description", "os", "pathlib"}


def test_the_three_launch_files_exist_and_each_has_a_profile_mapping():
    assert {"sim_demo", "collect", "deploy"} <= set(LAUNCH_FILES)
    assert set(LAUNCH_FILES) == set(LAUNCH_PROFILES)


@pytest.mark.parametrize("launch", sorted(LAUNCH_FILES))
def test_launch_file_parses_and_imports_only_launch_and_profiles(launch):
    tree = ast.parse(LAUNCH_FILES[launch].read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
    bad = {m for m in imported if not any(m == a or m.startswith(a + ".") for a in ALLOWED_IMPORTS)}
    assert not bad, f"{launch}.launch.py imports {bad}"
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)


def test_ros_package_installs_every_launch_file(monkeypatch):
    # Run setup.py the way colcon does (from its folder) with a stand-in setup() that only records
    # its arguments: data_files must pick up every launch file from the top-level launch/ folder.
    pkg = REPO / "ros_ws" / "src" / "robot_stack_ros"
    captured = {}
    monkeypatch.setitem(sys.modules, "setuptools", types.SimpleNamespace(setup=lambda **kw: captured.update(kw)))
    monkeypatch.chdir(pkg)
    runpy.run_path(str(pkg / "setup.py"))
    data_files = dict(captured["data_files"])
    installed = data_files["share/robot_stack_ros/launch"]
    assert {Path(p).name for p in installed} == {p.name for p in LAUNCH_FILES.values()}
    assert all(not os.path.isabs(p) and (pkg / p).resolve().parent == LAUNCH_DIR for p in installed)
    assert captured["packages"] == ["robot_stack_ros"]
    for f in ("package.xml", "setup.cfg", "resource/robot_stack_ros", "robot_stack_ros/__init__.py"):
        assert (pkg / f).is_file(), f
    assert "lib/robot_stack_ros" in (pkg / "setup.cfg").read_text()  # where `ros2 run` looks
    manifest = ElementTree.parse(pkg / "package.xml").getroot()
    assert manifest.get("format") == "3" and manifest.findtext("name") == "robot_stack_ros"
    assert manifest.findtext("export/build_type") == "ament_python"
    assert {e.text for e in manifest.findall("exec_depend")} >= {
        "rclpy", "sensor_msgs", "std_msgs", "std_srvs", "geometry_msgs", "diagnostic_msgs", "launch", "launch_ros"}


@pytest.mark.parametrize("launch", sorted(LAUNCH_PROFILES))
def test_launch_nodes_match_the_profile(launch):
    profile, nodes = launch_nodes(launch)
    expected = load_profile(LAUNCH_PROFILES[launch]["sim_widowx"])
    assert profile == expected
    assert [n.name for n in nodes] == expected.node_names
    for n, spec in zip(nodes, expected.nodes, strict=True):
        assert (n.package, n.executable, n.namespace) == ("robot_stack_ros", spec.executable, expected.namespace)
        assert n.arguments == spec.args and dict(n.env) == dict(expected.env) and n.required == spec.required


@pytest.mark.parametrize("rig", ["widowx", "franka"])
@pytest.mark.parametrize("launch", ["collect", "deploy"])
def test_real_rigs_map_to_real_profiles(launch, rig):
    profile, nodes = launch_nodes(launch, rig=rig)
    assert profile.name == f"{rig}_{launch}" and nodes[0].executable == "rig"
    assert all(f"rig={rig}" in n.arguments for n in nodes)


def test_unknown_rigs_fail_with_a_clear_message():
    with pytest.raises(ProfileError, match="unknown rig 'ur5'.*sim_widowx"):
        launch_nodes("collect", rig="ur5")


def test_policy_reaches_only_the_inference_node(tmp_path):
    ckpt = str(tmp_path / "v0003")  # a checkpoint directory, loaded as it is (a manifest: tests/policies/test_catalog.py)
    (tmp_path / "v0003").mkdir()
    _, nodes = launch_nodes("deploy", policy=ckpt, overrides=["task=take_cube_out_of_bowl"])
    by_name = {n.name: n for n in nodes}
    assert f"{POLICY_OVERRIDE_KEY}={ckpt}" in by_name["inference"].arguments
    assert all(f"{POLICY_OVERRIDE_KEY}={ckpt}" not in n.arguments for n in nodes if n.name != "inference")
    assert all("task=take_cube_out_of_bowl" in n.arguments for n in nodes)
    with pytest.raises(ProfileError, match="no inference node"):
        launch_nodes("collect", policy=ckpt)


def test_policy_names_a_manifest_in_policies_and_unknown_ones_list_the_catalog(tmp_path):
    # Nothing trained under this root yet: the error names the recipe that trains it.
    with pytest.raises(ProfileError, match=r"no checkpoint yet under .*robot-stack learn policy:=cube_in_bowl_bc"):
        launch_nodes("deploy", policy="cube_in_bowl_bc", overrides=[f"checkpoints={tmp_path}"])
    with pytest.raises(ProfileError, match=r"is for rig sim_widowx, but this deploy runs rig widowx"):
        launch_nodes("deploy", rig="widowx", policy="cube_in_bowl_bc")
    with pytest.raises(ProfileError, match=r"unknown policy 'bc_v3'; available: .*cube_in_bowl_bc"):
        launch_nodes("deploy", policy="bc_v3")


# --- execute the launch files against stand-ins for launch / launch_ros ------------------------------

class _Recorder:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration(_Recorder):
    def perform(self, context):
        return context[self.args[0]]


def _fake_launch_modules():
    launch = types.ModuleType("launch")
    launch.LaunchDescription = type("LaunchDescription", (_Recorder,), {})
    actions = types.ModuleType("launch.actions")
    for name in ("DeclareLaunchArgument", "OpaqueFunction", "Shutdown"):
        setattr(actions, name, type(name, (_Recorder,), {}))
    substitutions = types.ModuleType("launch.substitutions")
    substitutions.LaunchConfiguration = _LaunchConfiguration
    launch_ros = types.ModuleType("launch_ros")
    ros_actions = types.ModuleType("launch_ros.actions")
    ros_actions.Node = type("Node", (_Recorder,), {})
    launch.actions, launch.substitutions, launch_ros.actions = actions, substitutions, ros_actions
    return {"launch": launch, "launch.actions": actions, "launch.substitutions": substitutions,
            "launch_ros": launch_ros, "launch_ros.actions": ros_actions}


def _run_launch(monkeypatch, launch: str, **launch_args):
    for name, mod in _fake_launch_modules().items():
        monkeypatch.setitem(sys.modules, name, mod)
    ns = runpy.run_path(str(LAUNCH_FILES[launch]))
    desc = ns["generate_launch_description"]()
    entities = desc.args[0]
    declared = {e.args[0]: e.kwargs["default_value"] for e in entities if type(e).__name__ == "DeclareLaunchArgument"}
    context = {**declared, **launch_args}
    opaque = [e for e in entities if type(e).__name__ == "OpaqueFunction"]
    assert len(opaque) == 1
    # like launch's OpaqueFunction: function(context, *args, **kwargs)
    op = opaque[0].kwargs
    return declared, op["function"](context, *op.get("args", ()), **op.get("kwargs", {}))


@pytest.mark.parametrize("launch", sorted(LAUNCH_FILES))
def test_launch_file_builds_one_ros_node_per_profile_node(monkeypatch, launch):
    declared, actions = _run_launch(monkeypatch, launch)
    if launch != "sim_demo":
        assert declared["rig"] == "sim_widowx" and "policy" in declared
    profile = load_profile(LAUNCH_PROFILES[launch]["sim_widowx"])
    assert [a.kwargs["executable"] for a in actions] == [n.executable for n in profile.nodes]
    for a, spec in zip(actions, profile.nodes, strict=True):
        kw = a.kwargs
        assert kw["package"] == "robot_stack_ros" and kw["namespace"] == profile.namespace
        assert kw["arguments"] == list(spec.args) and kw["additional_env"] == dict(profile.env)
        assert kw["output"] == "screen"
        assert (kw["on_exit"] is not None) == (spec.required and not spec.respawn)
        assert (kw["respawn"], kw["respawn_delay"]) == (spec.respawn, spec.respawn_delay_s)


def test_deploy_launch_file_passes_policy_and_overrides_and_starts_real_rigs(monkeypatch, tmp_path):
    ckpt = str(tmp_path)
    _, actions = _run_launch(monkeypatch, "deploy", policy=ckpt, overrides="recorder.flush_every=8 seed=3")
    args = {a.kwargs["executable"]: a.kwargs["arguments"] for a in actions}
    assert args["inference"] == ["seed=3", f"{POLICY_OVERRIDE_KEY}={ckpt}"]
    assert args["recorder"] == ["recorder.flush_every=8", "seed=3"]
    _, actions = _run_launch(monkeypatch, "deploy", rig="widowx", policy=ckpt)
    args = {a.kwargs["executable"]: a.kwargs["arguments"] for a in actions}
    assert args["rig"] == ["rig=widowx"] and args["inference"] == ["rig=widowx", f"{POLICY_OVERRIDE_KEY}={ckpt}"]
    assert {a.kwargs["namespace"] for a in actions} == {"/wx250s"}
