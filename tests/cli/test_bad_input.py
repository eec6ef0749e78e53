"""Bad input at the entry points: one clear message naming the fix, exit code 2, nothing recorded lost."""

import subprocess
import sys

import numpy as np


def _run(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=timeout)


def test_demo_with_unknown_task_lists_the_tasks():
    r = _run("robot_stack.cli.main", "demo", "task=fly_to_the_moon")
    assert r.returncode == 2
    assert "put_cube_in_bowl" in r.stderr and "Traceback" not in r.stderr


def test_unknown_rig_lists_the_rigs():
    r = _run("robot_stack.cli.main", "config", "rig=ur5")
    assert r.returncode == 2 and "sim_widowx" in r.stderr


def test_recorder_refuses_a_path_that_is_not_a_store_and_leaves_it_alone(tmp_path):
    not_a_store = tmp_path / "my_thesis"
    not_a_store.mkdir()
    (not_a_store / "chapter1.txt").write_text("precious")
    r = _run("robot_stack.ros.recorder_node", f"store={not_a_store}", timeout=120)
    assert r.returncode == 2, r.stderr
    assert "nor a robot_stack store; choose a new path" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in not_a_store.iterdir()) == ["chapter1.txt"]
    assert (not_a_store / "chapter1.txt").read_text() == "precious"


def test_recorder_appends_to_an_existing_store_without_touching_committed_episodes(tmp_path):
    """Opening an existing store for recording keeps what is there (the node opens, reports, and is stopped)."""
    from omegaconf import OmegaConf

    from robot_stack.store import TrajectoryStore
    from robot_stack.store.recorder import schema_for_rig

    rig = OmegaConf.load("robot_stack/conf/rig/sim_widowx.yaml")
    path = tmp_path / "s.zarr"
    store = TrajectoryStore.create(path, schema_for_rig(rig))
    rng = np.random.default_rng(0)
    T = 3
    data = {k: (rng.integers(0, 255, (T, *spec.shape)).astype(spec.dtype)) for k, spec in store.schema.features.items()}
    store.append_episode(data, {"task": "t", "source": "sim"})
    store.close()
    r = _run("robot_stack.ros.recorder_node", f"store={path}", "rig.cameras.front.height=64", timeout=120)
    assert r.returncode == 2 and "front" in r.stderr  # schema differs: refused, named
    again = TrajectoryStore.open(path)
    assert again.n_episodes == 1
    np.testing.assert_array_equal(again.get_episode(0)["action"], data["action"])
