"""`robot-stack classifier train|eval` on a real store (scripted sim episodes with a small front camera)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from robot_stack.cli.classifier import training_episodes
from robot_stack.cli.main import main
from robot_stack.practice.classifier import load_classifier
from robot_stack.sim.generate import generate
from robot_stack.store import TrajectoryStore

FW, BW = "put the cube in the bowl", "take the cube out of the bowl"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """2 scripted episodes per direction, then 2 'practice attempts' (copies of a forward demo) of which a person
    corrected one."""
    path = tmp_path_factory.mktemp("clf") / "s.zarr"
    generate(path, tasks=["put_cube_in_bowl", "take_cube_out_of_bowl"], episodes=2, failure_share=0.0, workers=1,
             cameras=("front",), image_size_px=32, seed=3, progress=False)
    with TrajectoryStore.open(path, mode="a") as s:
        fw = next(i for i in s.episodes() if s.episode_meta(i).task == FW)
        ep = s.get_episode(fw)
        for attempt in (0, 1):
            s.append_episode(ep, {"task": FW, "source": "practice", "phase": "forward", "attempt": attempt,
                                  "success": False, "true_success": True})
        practice = s.episodes(source="practice")
        s.set_success([practice[1]], True, by="test")
    return path


def test_training_set_takes_only_the_practice_attempts_a_person_corrected(store):
    with TrajectoryStore.open(store, mode="r") as s:
        demos = [i for i in s.episodes() if s.episode_meta(i).source != "practice"]
        practice = s.episodes(source="practice")
        assert training_episodes(s, "corrected") == [*demos, practice[1]]
        assert training_episodes(s, "all") == s.episodes()
        assert training_episodes(s, "none") == demos
        with pytest.raises(ValueError, match="practice must be"):
            training_episodes(s, "some")


def test_train_saves_a_classifier_practice_loads_then_init_fine_tunes_it(store, tmp_path, capsys):
    out = tmp_path / "clf"
    assert main(["classifier", "train", str(store), str(out), "--tasks", FW, BW, "--steps", "4",
                 "--config", '{"image_size_px": 32}']) == 0
    text = capsys.readouterr().out
    assert "1 practice attempts, --practice corrected; 1 labels corrected" in text and "step 4/4" in text
    assert f"practice.judge={out}" in text
    clf = load_classifier(out)
    assert clf.tasks == (FW, BW) and clf.camera == "front"
    tuned = tmp_path / "clf2"
    assert main(["classifier", "train", str(store), str(tuned), "--tasks", FW, BW, "--steps", "3",
                 "--init", str(out), "--practice", "all"]) == 0
    assert f"fine-tuning {out}" in capsys.readouterr().out
    a, b = clf.state_dict(), load_classifier(tuned).state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())

    assert main(["classifier", "eval", str(out), str(store), "--source", "practice"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    report = json.loads(lines[-1])
    assert report[FW]["n_pos"] == 2                # judged against the truth the store recorded, not the label
    assert report[BW]["n_pos"] + report[BW]["n_neg"] == 0   # practice attempts are all forward here
    assert lines[0].startswith(f"{FW}: FP ") and "FN" in lines[0] and lines[1] == f"{BW}: no labelled episodes"
    assert np.isfinite(report[FW]["accuracy"])


def test_bad_input_names_the_fix(store, tmp_path, capsys):
    assert main(["classifier", "train", str(store), str(tmp_path / "x"), "--tasks", "stack the blocks", BW]) == 2
    err = capsys.readouterr().err
    assert "no episode of task(s) ['stack the blocks']" in err and FW in err
    assert main(["classifier", "train", str(store), str(tmp_path / "x"), "--tasks", FW]) == 2
    assert "--no-start-positives" in capsys.readouterr().err
    assert main(["classifier", "train", str(store), str(tmp_path / "x"), "--tasks", FW, BW, "--config", "[1]"]) == 2
    assert "JSON object" in capsys.readouterr().err
    assert main(["classifier", "train", str(tmp_path / "nope.zarr"), str(tmp_path / "x"), "--tasks", FW, BW]) == 2
    assert "nope.zarr" in capsys.readouterr().err
    assert main(["classifier", "eval", str(tmp_path / "no_classifier"), str(store)]) == 2
    assert "no_classifier" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()           # nothing half-written
    assert main(["classifier", "--help"]) == 0 and "--practice" in capsys.readouterr().out
