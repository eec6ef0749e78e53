"""The policy catalog (robot_stack/policies/catalog.py): every shipped manifest in policies/ loads, its recipe
composes, and it deploys a real checkpoint through the launch files' and the supervisor's `policy:=`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from robot_stack.cli.main import main as cli_main
from robot_stack.conf import load_config
from robot_stack.conf.profiles import (
    POLICY_OVERRIDE_KEY,
    ProfileError,
    launch_nodes,
    load_profile,
    with_policy,
)
from robot_stack.policies.base import POLICIES, make_policy
from robot_stack.policies.bc_conv import BCConvConfig
from robot_stack.policies.catalog import (
    POLICIES_ENV,
    PolicyManifestError,
    available_policies,
    load_policy_manifest,
    policy_search_path,
    recipe_type_and_root,
    resolve_deployment,
    split_policy_args,
)
from robot_stack.policies.checkpoint import PolicySchema, load_policy, save_checkpoint
from robot_stack.policies.normalizer import Normalizer
from robot_stack.types import rig_features

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.stem for p in (REPO / "policies").glob("*.yaml"))
# Small networks of each policy type a shipped recipe trains, so a real checkpoint is cheap to write.
TINY_CONFIGS = {"bc_conv": BCConvConfig(image_size_px=16, conv_channels=(8, 8, 8, 8), hidden_dims=(32,),
                                        group_norm_groups=4)}


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(1)


def rig_schema(rig: str) -> PolicySchema:
    """The schema the inference node checks checkpoints against on `rig` (as robot_stack/ros/inference_node.py)."""
    cfg = load_config([f"rig={rig}"]).rig
    return PolicySchema.from_features(rig_features({n: (int(c.height), int(c.width)) for n, c in cfg.cameras.items()},
                                                   int(cfg.n_joints)), str(cfg.action_space))


def save_tiny(root: Path, policy_type: str, rig: str, version: int = 1) -> Path:
    assert policy_type in TINY_CONFIGS, f"add a tiny {policy_type} config to TINY_CONFIGS for the shipped manifests"
    rng = np.random.default_rng(0)
    actions = rng.normal(0.0, 0.01, size=(50, 7))
    actions[:, 6] = rng.integers(0, 2, 50)
    normalizer = Normalizer.fit(actions, rng.normal(size=(50, 14)))
    torch.manual_seed(version)
    policy = make_policy(policy_type, TINY_CONFIGS[policy_type], normalizer)
    return save_checkpoint(policy, normalizer, rig_schema(rig), root, version, step=version)


def write_manifest(tmp_path: Path, body: dict, name: str = "mine") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


BASE = {"rig": "sim_widowx", "task": "put_cube_in_bowl", "recipe": {"learner": "bc", "policy": "bc_conv"}}


def test_the_demo_policy_ships():
    assert "cube_in_bowl_bc" in SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_manifest_loads_composes_and_deploys_a_real_checkpoint(name, tmp_path):
    manifest = load_policy_manifest(name)
    assert Path(manifest.source) == REPO / "policies" / f"{name}.yaml" and manifest.description
    # The recipe composes (every name exists, every override is a real key) and trains a registered type.
    policy_type, default_root = recipe_type_and_root(manifest)
    cfg = load_config(manifest.recipe_overrides())
    assert policy_type in POLICIES and (cfg.rig.name, cfg.task.name) == (manifest.rig, manifest.task)
    assert default_root == str(cfg.checkpoints)
    # Deploy: the checkpoint the recipe writes loads on the manifest's rig through the node's own checks.
    root = tmp_path / "ckpt"
    ckpt = save_tiny(root, policy_type, manifest.rig)
    deployment = resolve_deployment(manifest, manifest.rig, [f"checkpoints={root}"])
    assert deployment.checkpoint == ckpt.absolute() and deployment.policy_type == policy_type
    load_policy(deployment.checkpoint, expected_schema=rig_schema(manifest.rig))


def test_launch_and_supervisor_policy_arg_deploy_the_manifest_on_the_inference_node(tmp_path):
    root = tmp_path / "ckpt"
    save_tiny(root, "bc_conv", "sim_widowx")
    _, nodes = launch_nodes("deploy", policy="cube_in_bowl_bc", overrides=[f"checkpoints={root}"])
    args = {n.name: n.arguments for n in nodes}
    # `latest` is loaded from the root, and the root stays trusted for versions the learner announces later.
    assert f"{POLICY_OVERRIDE_KEY}={root.absolute()}" in args["inference"]
    assert "inference.policy_type=bc_conv" in args["inference"]
    assert all("task=put_cube_in_bowl" in a for a in args.values())
    assert not any(a.startswith("inference.") for n, aa in args.items() if n != "inference" for a in aa)
    # `robot-stack up` takes the same argument and builds the same profile.
    assert with_policy(load_profile("sim_deploy", [f"checkpoints={root}"]), "cube_in_bowl_bc").node("inference").args \
        == args["inference"]


def test_an_explicit_version_is_loaded_as_named_and_a_missing_one_is_refused(tmp_path):
    root = tmp_path / "ckpt"
    save_tiny(root, "bc_conv", "sim_widowx", version=1)
    save_tiny(root, "bc_conv", "sim_widowx", version=2)
    path = write_manifest(tmp_path, {**BASE, "checkpoint": {"version": 1, "root": str(root)}})
    deployment = resolve_deployment(load_policy_manifest(path), "sim_widowx")
    assert deployment.checkpoint == (root / "v0001").absolute()
    assert f"inference.policy={(root / 'v0001').absolute()}" in deployment.overrides
    missing = write_manifest(tmp_path, {**BASE, "checkpoint": {"version": 7, "root": str(root)}}, "missing")
    with pytest.raises(PolicyManifestError, match=r"v0007/manifest.json is missing"):
        resolve_deployment(load_policy_manifest(missing), "sim_widowx")


def test_deploy_refuses_another_rig_task_type_or_a_second_checkpoint(tmp_path):
    root = tmp_path / "ckpt"
    save_tiny(root, "bc_conv", "sim_widowx")
    manifest = load_policy_manifest("cube_in_bowl_bc")
    with pytest.raises(PolicyManifestError, match="is for rig sim_widowx, but this deploy runs rig sim_franka"):
        resolve_deployment(manifest, "sim_franka", [f"checkpoints={root}"])
    with pytest.raises(PolicyManifestError, match="trained for task put_cube_in_bowl, but task=put_cube_on_plate"):
        resolve_deployment(manifest, "sim_widowx", [f"checkpoints={root}", "task=put_cube_on_plate"])
    with pytest.raises(PolicyManifestError, match="not both"):
        resolve_deployment(manifest, "sim_widowx", [f"checkpoints={root}", "inference.policy=/elsewhere"])
    # A recipe that trains actor_critic does not deploy a bc_conv checkpoint.
    rl = write_manifest(tmp_path, {**BASE, "checkpoint": {"root": str(root)}, "recipe": {"learner": "bc_actor"}})
    with pytest.raises(PolicyManifestError, match="holds a bc_conv policy, but the recipe trains actor_critic"):
        resolve_deployment(load_policy_manifest(rl), "sim_widowx")


@pytest.mark.parametrize("body,needle", [
    ({**BASE, "checkpont": {}}, r"unknown keys \['checkpont'\]"),
    ({"task": "put_cube_in_bowl", "recipe": {"learner": "bc"}}, "missing key 'rig'"),
    ({**BASE, "rig": "ur5"}, r"rig 'ur5': robot_stack/conf/rig/ur5.yaml does not exist; known: .*sim_widowx"),
    ({**BASE, "task": "juggle"}, r"conf/task/juggle.yaml does not exist"),
    ({**BASE, "recipe": {"learner": "ppo"}}, r"recipe.learner 'ppo': .*conf/learner/ppo.yaml does not exist"),
    ({**BASE, "recipe": {"policy": "bc_conv"}}, "recipe: missing key 'learner'"),
    ({**BASE, "recipe": {"learner": "bc", "lr": 1}}, r"recipe: unknown keys \['lr'\]"),
    ({**BASE, "recipe": {"learner": "bc", "overrides": ["task=x"]}}, "recipe.overrides sets 'task'"),
    ({**BASE, "recipe": {"learner": "bc", "overrides": ["checkpoints=/x"]}}, "checkpoint.root"),
    ({**BASE, "recipe": {"learner": "bc", "overrides": ["learner.batch_size"]}}, "'key=value' strings"),
    ({**BASE, "checkpoint": {"version": 0}}, "version must be `latest` or a version number >= 1"),
    ({**BASE, "checkpoint": {"version": "newest"}}, "version must be `latest`"),
    ([1, 2], "must be a mapping"),
    (None, "empty; needs keys rig, task, recipe"),
])
def test_invalid_manifests_name_the_problem(tmp_path, body, needle):
    path = write_manifest(tmp_path, body)
    with pytest.raises(PolicyManifestError, match=needle) as e:
        load_policy_manifest(path)
    assert str(path) in str(e.value)


def test_instruction_reaches_the_task_language_verbatim():
    text = "put the cube in the bowl, then stop: it's 'done'"
    manifest = load_policy_manifest("cube_in_bowl_bc")
    manifest = type(manifest)(**{**manifest.__dict__, "instruction": text})
    assert load_config(manifest.recipe_overrides()).task.language == text


def test_search_path_env_then_working_directory_then_checkout(tmp_path, monkeypatch):
    site, project = tmp_path / "site", tmp_path / "project"
    (site).mkdir()
    (project / "policies").mkdir(parents=True)
    write_manifest(site, BASE, "cube_in_bowl_bc")  # shadows the repo's manifest of the same name
    write_manifest(project / "policies", BASE, "project_only")
    monkeypatch.chdir(project)
    monkeypatch.setenv(POLICIES_ENV, str(site))
    assert policy_search_path() == [site, project / "policies", REPO / "policies"]
    found = available_policies()
    assert found["cube_in_bowl_bc"] == site / "cube_in_bowl_bc.yaml"
    assert found["project_only"] == project / "policies" / "project_only.yaml"
    assert found["cube_out_of_bowl_bc"] == REPO / "policies" / "cube_out_of_bowl_bc.yaml"
    monkeypatch.setenv(POLICIES_ENV, str(tmp_path / "nope"))
    with pytest.raises(PolicyManifestError, match=f"{POLICIES_ENV} names .*nope.*not a directory"):
        policy_search_path()


def test_policy_arg_parsing():
    assert split_policy_args(["seed=1", "policy:=x", "task=y"]) == ("x", ["seed=1", "task=y"])
    assert split_policy_args(["policy=bc_conv"]) == (None, ["policy=bc_conv"])  # the hydra group stays an override
    with pytest.raises(PolicyManifestError, match="given 2 times"):
        split_policy_args(["policy:=a", "policy:=b"])


def test_config_prints_the_recipe_learn_trains_with_command_line_overrides_on_top(capsys):
    assert cli_main(["config", "policy:=cube_in_bowl_bc", "learner.batch_size=8"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert (cfg["rig"]["name"], cfg["task"]["name"], cfg["learner"]["algo"]) == ("sim_widowx", "put_cube_in_bowl", "bc")
    assert cfg["policy"]["type"] == "bc_conv" and cfg["learner"]["batch_size"] == 8
    assert cfg["checkpoints"] == "data/checkpoints/sim_widowx/put_cube_in_bowl"  # where policy:= deploys from


def test_cli_reports_bad_policy_args_without_a_traceback(capsys, tmp_path):
    assert cli_main(["up", "sim_deploy", "policy:=nope"]) == 2
    assert cli_main(["up", "sim_collect", f"policy:={tmp_path}"]) == 2
    assert cli_main(["learn", "policy:=nope", "store=x.zarr"]) == 2
    err = capsys.readouterr().err
    assert err.count("unknown policy 'nope'; available: ") == 2 and "runs no inference node" in err
    assert "Traceback" not in err


def test_unknown_checkpoint_paths_are_not_mistaken_for_manifests():
    with pytest.raises(ProfileError, match="no such policy manifest .or checkpoint directory"):
        launch_nodes("deploy", policy="data/checkpoints/none/v0003")
