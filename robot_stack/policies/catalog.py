"""The policy catalog: top-level `policies/<name>.yaml`, what an operator names with `policy:=<name>`.

A manifest says what to deploy (rig, task, which checkpoint) and the recipe that trains it. It only names
things that live elsewhere (configs in robot_stack/conf, a checkpoint root written by the learner), so it
cannot disagree with them:

    description: "BC puts the cube in the bowl, simulated WidowX 250s"
    rig: sim_widowx          # conf/rig/<rig>.yaml; a deploy on another rig is refused
    task: put_cube_in_bowl   # conf/task/<task>.yaml
    instruction: "..."       # optional: a language instruction other than the task's (task.language)
    checkpoint:              # optional
      version: latest        # `latest` (default) or a version number (3 = v0003)
      root: data/ckpt/x      # default: the composed `checkpoints` for this rig and task, where the recipe writes
    recipe:
      learner: bc            # conf/learner/<learner>.yaml
      policy: bc_conv        # optional: conf/policy/<policy>.yaml, the network the BC learner trains
      overrides: []          # hydra overrides on top (not rig/task/learner/policy/checkpoints/data_dir)

    deploy (launch files, `robot-stack up`):  policy:=<name> ─► task=<task>, inference.policy=<checkpoint>,
                                                              inference.policy_type=<type the recipe trains>
    train (`robot-stack learn policy:=<name>`):                ─► rig=, task=, learner=, policy=, overrides

Search path for a name (a value with a `/` or ending in .yaml is a file path instead), first match wins:
  1. the directories in $ROBOT_STACK_POLICIES (os.pathsep-separated), when set;
  2. `./policies` in the working directory (an operator's project, beside its `data/` and `calibration/`);
  3. `policies/` of the source checkout this package runs from (editable installs, the repo's tests).
A non-editable install ships no manifests: run from a directory with a `policies/`, or set
ROBOT_STACK_POLICIES. Reads only YAML and manifest.json: no torch, no ROS.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

POLICIES_ENV = "ROBOT_STACK_POLICIES"
POLICY_ARG = "policy:="  # the launch-argument spelling, also accepted by `robot-stack up` and `robot-stack learn`
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_TOP_KEYS = {"description", "rig", "task", "instruction", "checkpoint", "recipe"}
_CHECKPOINT_KEYS = {"version", "root"}
_RECIPE_KEYS = {"learner", "policy", "overrides"}
# Named by the manifest's own keys (rig, task, learner, policy), or they would move the checkpoint away from
# where the deploy side looks for it (checkpoints, data_dir: give checkpoint.root instead).
_RECIPE_RESERVED = {"rig", "task", "learner", "policy", "checkpoints", "data_dir"}
_SOURCE_CHECKOUT = Path(__file__).resolve().parents[2]


class PolicyManifestError(ValueError):
    """A policy manifest that cannot be found, does not validate or does not fit the rig; names the fix."""


@dataclass(frozen=True)
class Recipe:
    learner: str
    policy: str | None = None
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyManifest:
    name: str
    source: str          # the YAML it was read from, for messages
    description: str
    rig: str
    task: str
    recipe: Recipe
    instruction: str | None = None
    version: int | None = None   # None: the root's `latest`
    root: str | None = None      # None: the composed `checkpoints` (rig + task + the operator's overrides)

    def task_overrides(self) -> list[str]:
        """Overrides every node gets: the task (and instruction), so the recorder logs what the policy does."""
        out = [f"task={self.task}"]
        if self.instruction is not None:
            out.append(f"task.language={_quote(self.instruction)}")
        return out

    def recipe_overrides(self) -> list[str]:
        """Hydra overrides that compose the training run (`robot-stack learn policy:=<name>` prepends them)."""
        out = [f"rig={self.rig}", *self.task_overrides(), f"learner={self.recipe.learner}"]
        if self.recipe.policy:
            out.append(f"policy={self.recipe.policy}")
        out += list(self.recipe.overrides)
        if self.root is not None:
            out.append(f"checkpoints={self.root}")
        return out

    def train_command(self) -> str:
        return f"robot-stack learn {POLICY_ARG}{self.name} store=<store.zarr>"


def _quote(value: str) -> str:
    # Hydra's override grammar: a single-quoted string takes spaces, commas and `=`; escape its own quotes.
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# ---- finding manifests -------------------------------------------------------------------------------
def policy_search_path(env: Mapping[str, str] | None = None, cwd: str | os.PathLike | None = None) -> list[Path]:
    """The directories searched for `<name>.yaml`, in order (see module docstring)."""
    env = os.environ if env is None else env
    dirs: list[Path] = []
    for entry in (env.get(POLICIES_ENV) or "").split(os.pathsep):
        if not entry.strip():
            continue
        d = Path(entry).expanduser()
        if not d.is_dir():
            # An explicit setting that points nowhere is a mistake, not an empty catalog.
            raise PolicyManifestError(f"${POLICIES_ENV} names {str(d)!r}, which is not a directory; fix or unset it")
        dirs.append(d)
    dirs.append(Path(os.getcwd() if cwd is None else cwd) / "policies")
    if (_SOURCE_CHECKOUT / "pyproject.toml").is_file():  # running from a source checkout (editable / tests)
        dirs.append(_SOURCE_CHECKOUT / "policies")
    unique: list[Path] = []
    for d in dirs:
        if d.is_dir() and all(d.resolve() != u.resolve() for u in unique):
            unique.append(d)
    return unique


def available_policies(search_path: Sequence[Path] | None = None) -> dict[str, Path]:
    """name -> manifest file, the first on the search path for each name."""
    found: dict[str, Path] = {}
    for d in policy_search_path() if search_path is None else search_path:
        for p in sorted(Path(d).glob("*.yaml")):
            found.setdefault(p.stem, p)
    return dict(sorted(found.items()))


def looks_like_path(value: str) -> bool:
    return "/" in value or os.sep in value or value.endswith((".yaml", ".yml"))


def find_policy(name_or_path: str | os.PathLike, search_path: Sequence[Path] | None = None) -> Path:
    """The manifest file for a name (searched) or a path (must exist); PolicyManifestError otherwise."""
    value = os.fspath(name_or_path)
    if isinstance(name_or_path, os.PathLike) or looks_like_path(value):
        path = Path(value)
        if not path.is_file():
            raise PolicyManifestError(f"policy {value!r}: no such policy manifest (or checkpoint directory)")
        return path
    dirs = policy_search_path() if search_path is None else list(search_path)
    if _NAME.match(value):
        for d in dirs:
            if (Path(d) / f"{value}.yaml").is_file():
                return Path(d) / f"{value}.yaml"
    known = ", ".join(available_policies(dirs)) or "(none)"
    searched = (f"searched {', '.join(str(d) for d in dirs)}" if dirs else
                f"no policies/ directory found: set ${POLICIES_ENV}=<dir> or run from a directory with policies/")
    raise PolicyManifestError(f"unknown policy {value!r}; available: {known} ({searched}); "
                              "or give a path to a manifest YAML")


# ---- reading and validating ------------------------------------------------------------------------
def _conf_names(group: str) -> list[str]:
    d = resources.files("robot_stack.conf") / group
    return sorted(p.name[:-5] for p in d.iterdir() if p.name.endswith(".yaml")) if d.is_dir() else []


def load_policy_manifest(name_or_path: str | os.PathLike, search_path: Sequence[Path] | None = None
                         ) -> PolicyManifest:
    """Find, read and validate a manifest: unknown keys, missing configs and bad values raise with the fix."""
    path = find_policy(name_or_path, search_path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise PolicyManifestError(f"policy manifest {path}: not valid YAML: {e}") from None
    return parse_policy_manifest(path.stem, data, str(path))


def parse_policy_manifest(name: str, data: object, source: str) -> PolicyManifest:
    def fail(msg: str) -> PolicyManifestError:
        return PolicyManifestError(f"policy manifest {source}: {msg}")

    def known_config(group: str, value: object, key: str) -> str:
        if not isinstance(value, str) or not value:
            raise fail(f"{key} must name a config in robot_stack/conf/{group}/, got {value!r}")
        names = _conf_names(group)
        if value not in names:
            raise fail(f"{key} {value!r}: robot_stack/conf/{group}/{value}.yaml does not exist; "
                       f"known: {', '.join(names)}")
        return value

    def mapping(value: object, key: str, allowed: set[str]) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise fail(f"{key} must be a mapping with keys {sorted(allowed)}")
        unknown = set(value) - allowed
        if unknown:
            raise fail(f"{key}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
        return value

    data = mapping(data, "the file", _TOP_KEYS) if data is not None else None
    if not data:
        raise fail(f"empty; needs keys rig, task, recipe (allowed: {sorted(_TOP_KEYS)})")
    for key in ("rig", "task", "recipe"):
        if key not in data:
            raise fail(f"missing key {key!r}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise fail("description must be a string")
    instruction = data.get("instruction")
    if instruction is not None and (not isinstance(instruction, str) or not instruction.strip()):
        raise fail("instruction must be a non-empty string (or left out: the task's language)")
    ckpt = mapping(data.get("checkpoint"), "checkpoint", _CHECKPOINT_KEYS)
    version = ckpt.get("version", "latest")
    if version == "latest":
        version = None
    elif not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise fail(f"checkpoint.version must be `latest` or a version number >= 1, got {version!r}")
    root = ckpt.get("root")
    if root is not None and (not isinstance(root, str) or not root):
        raise fail("checkpoint.root must be a directory path (or left out: the composed `checkpoints`)")
    raw_recipe = mapping(data["recipe"], "recipe", _RECIPE_KEYS)
    if "learner" not in raw_recipe:
        raise fail("recipe: missing key 'learner' (a config in robot_stack/conf/learner/)")
    overrides = raw_recipe.get("overrides") or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) and "=" in o for o in overrides):
        raise fail("recipe.overrides must be a list of hydra 'key=value' strings")
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("+~")
        if key in _RECIPE_RESERVED:
            raise fail(f"recipe.overrides sets {key!r}: name rig/task/learner/policy with the manifest's own keys, "
                       "and the checkpoint location with checkpoint.root")
    recipe = Recipe(learner=known_config("learner", raw_recipe["learner"], "recipe.learner"),
                    policy=None if raw_recipe.get("policy") is None
                    else known_config("policy", raw_recipe["policy"], "recipe.policy"),
                    overrides=tuple(overrides))
    return PolicyManifest(name=name, source=source, description=description,
                          rig=known_config("rig", data["rig"], "rig"),
                          task=known_config("task", data["task"], "task"), recipe=recipe,
                          instruction=instruction, version=version, root=root)


# ---- deploying ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Deployment:
    """What `policy:=<name>` becomes for a deploy profile: the checkpoint it loads and the node overrides."""
    manifest: PolicyManifest
    checkpoint: Path      # the version directory that will load now
    policy_type: str
    overrides: tuple[str, ...]  # task=... for every node, inference.* for the inference node


def recipe_type_and_root(manifest: PolicyManifest, overrides: Sequence[str] = ()) -> tuple[str, str]:
    """(policy type the recipe trains, checkpoint root) from the composed config of the recipe + `overrides`.

    The type is `learner.policy_type` when the learner names one (the RL learners), else the `policy` group's
    `type` (the BC learner trains conf/policy/<policy>.yaml).
    """
    from robot_stack.conf import load_config

    # The operator's overrides (data_dir=, checkpoints=) come after the manifest's names, as on the node.
    cfg = load_config([*manifest.recipe_overrides(), *overrides])
    policy_type = str(cfg.learner.get("policy_type") or cfg.policy.type)
    return policy_type, str(manifest.root or cfg.checkpoints)


def resolve_deployment(manifest: PolicyManifest, rig: str, overrides: Sequence[str] = ()) -> Deployment:
    """The checkpoint and overrides for deploying `manifest` on `rig`; refuses a rig or task mismatch or a
    checkpoint that does not exist yet (naming the recipe that trains it).

    `overrides`: the operator's overrides that reach the inference node (global ones and `inference.*`).
    """
    from robot_stack.policies.checkpoint import (
        CheckpointError,
        latest_checkpoint,
        read_manifest,
        version_dir_name,
    )

    where = f"policy {manifest.name} ({manifest.source})"
    if rig != manifest.rig:
        raise PolicyManifestError(f"{where} is for rig {manifest.rig}, but this deploy runs rig {rig}; "
                                  f"deploy a policy trained on {rig}, or start the {manifest.rig} deploy "
                                  f"(rig:={manifest.rig})")
    for o in overrides:
        key, _, value = o.partition("=")
        key = key.lstrip("+~")
        if key == "task" and value != manifest.task:
            raise PolicyManifestError(f"{where} is trained for task {manifest.task}, but task={value} was given; "
                                      "drop the task override or name a policy trained for that task")
        if key in ("inference.policy", "inference.policy_type"):
            raise PolicyManifestError(f"{where}: {key}=... given as well; name the checkpoint either with "
                                      "policy:= or with inference.policy=, not both")
    policy_type, root_str = recipe_type_and_root(manifest, [o for o in overrides if "=" in o])
    root = Path(root_str)
    if manifest.version is None:
        try:
            ckpt = latest_checkpoint(root)
        except CheckpointError as e:
            raise PolicyManifestError(f"{where}: {e}") from None
        if ckpt is None:
            raise PolicyManifestError(f"{where}: no checkpoint yet under {root.absolute()} (no `latest` file); "
                                      "train it first: "
                                      f"{manifest.train_command()}, or point at another root with "
                                      "checkpoints=<dir> (e.g. a demo run's data/demo/<time>/checkpoints)")
        target = root  # the node loads `latest` and trusts the root for later versions the learner announces
    else:
        ckpt = target = root / version_dir_name(manifest.version)
    try:
        trained = read_manifest(ckpt).policy_type
    except CheckpointError as e:
        raise PolicyManifestError(f"{where}: {e}") from None
    if trained != policy_type:
        raise PolicyManifestError(f"{where}: checkpoint {ckpt} holds a {trained} policy, but the recipe trains "
                                  f"{policy_type}; fix checkpoint.root/version or the recipe")
    deploy = [*manifest.task_overrides(), f"inference.policy={target.absolute()}",
              f"inference.policy_type={policy_type}"]
    return Deployment(manifest=manifest, checkpoint=ckpt.absolute(), policy_type=policy_type,
                      overrides=tuple(deploy))


def split_policy_args(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """(`policy:=` value or None, the other arguments); a second `policy:=` is refused."""
    values = [a[len(POLICY_ARG):] for a in argv if a.startswith(POLICY_ARG)]
    if len(values) > 1:
        raise PolicyManifestError(f"{POLICY_ARG} given {len(values)} times ({values}); name one policy")
    if values and not values[0]:
        raise PolicyManifestError(f"{POLICY_ARG} needs a policy name or manifest path (available: "
                                  f"{', '.join(available_policies()) or '(none)'})")
    return (values[0] if values else None), [a for a in argv if not a.startswith(POLICY_ARG)]


def expand_recipe_args(argv: Sequence[str]) -> list[str]:
    """`argv` with a `policy:=<name>` replaced by that manifest's recipe overrides (first, so the command line's
    own overrides win): what `robot-stack learn` trains and `robot-stack config` prints."""
    policy, rest = split_policy_args(argv)
    return rest if policy is None else [*load_policy_manifest(policy).recipe_overrides(), *rest]
