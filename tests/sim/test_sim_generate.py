"""Prior-data generator: planning, store contents (schema of the rig, language, phase, success), CLI."""

import json

import numpy as np
import pytest

from robot_stack.sim.generate import plan_jobs


def test_plan_jobs_round_robin_and_failure_share():
    jobs = plan_jobs(["a", "b", "c"], 300, 0.01, 0.3, seed=0)
    assert [j.task for j in jobs[:6]] == ["a", "b", "c", "a", "b", "c"]
    worse = [j for j in jobs if j.noise_std_m > 0.01 or j.truncate_after is not None]
    assert 60 <= len(worse) <= 120  # ~30 %
    assert jobs == plan_jobs(["a", "b", "c"], 300, 0.01, 0.3, seed=0)  # reproducible
    assert len({j.seed for j in jobs}) == len(jobs)
    with pytest.raises(ValueError, match="failure_share"):
        plan_jobs(["a"], 3, 0.0, 1.5, seed=0)


def test_generate_writes_multitask_episodes_compatible_with_the_rig(tmp_path):
    from robot_stack.sim.generate import generate, store_schema
    from robot_stack.store import TrajectoryStore

    path = tmp_path / "prior.zarr"
    report = generate(path, arm="widowx", tasks=["put_cube_in_bowl", "take_cube_out_of_bowl", "push_cube_left"],
                      episodes=4, noise_std_m=0.0, failure_share=0.0, workers=1, image_size_px=64,
                      cameras=("front",), progress=False)
    assert report.episodes == 4 and report.successes == 4
    store = TrajectoryStore.open(str(path), mode="r")
    assert store.n_episodes == 4 and store.n_steps == report.steps
    assert not store.schema.differences(store_schema("widowx", 64, ("front",)))
    metas = [store.episode_meta(i) for i in range(4)]
    assert {m.task for m in metas} == {"put the cube in the bowl", "take the cube out of the bowl",
                                       "push the cube to the left"}
    assert all(m.source == "sim" and m.success for m in metas)
    by_task = {json.loads(m.notes)["sim_task"]: m for m in metas}
    assert by_task["take_cube_out_of_bowl"].phase == "backward" and by_task["push_cube_left"].phase == "forward"
    ep = store.get_episode(0)
    n = len(ep["action"])
    assert ep["observation.images.front"].shape == (n, 64, 64, 3) and ep["observation.state"].shape == (n, 14)
    assert np.all(np.diff(ep["timestamps.state.capture_ns"]) == 200_000_000)  # 5 Hz sim time
    store.close()


def test_generate_in_two_worker_processes_with_failures_on_the_panda(tmp_path):
    from robot_stack.sim.generate import generate
    from robot_stack.store import TrajectoryStore

    path = tmp_path / "panda.zarr"
    report = generate(path, arm="panda", tasks=["put_cube_in_bowl"], episodes=3, noise_std_m=0.0,
                      failure_share=1.0, workers=2, image_size_px=64, cameras=("front", "wrist"), progress=False)
    store = TrajectoryStore.open(str(path), mode="r")
    assert store.n_episodes == 3
    assert store.get_episode(0)["observation.state"].shape[1] == 15
    notes = [json.loads(store.episode_meta(i).notes) for i in range(3)]
    assert all(n["noise_std_m"] > 0 or n["truncate_after"] for n in notes)
    # truncated scripts cannot finish the task; success is measured, not assumed
    for i, n in enumerate(notes):
        if n["truncate_after"]:
            assert store.episode_meta(i).success is False
    assert report.successes == sum(bool(store.episode_meta(i).success) for i in range(3))
    store.close()


def test_cli_sim_view_and_unknown_task(tmp_path, capsys):
    from PIL import Image

    from robot_stack.cli.main import main

    out = tmp_path / "v.png"
    assert main(["sim", "view", "--arm", "widowx", "--task", "push_cube_right", "--size", "48", "--frames", "3",
                 "--out", str(out)]) == 0
    assert Image.open(out).size == (3 * 48, 2 * 48)
    assert main(["sim", "view", "--task", "fold_laundry", "--out", str(out)]) == 2
    assert "put_cube_in_bowl" in capsys.readouterr().err
    assert main(["sim", "tasks"]) == 0
    assert "HELD OUT" in capsys.readouterr().out
