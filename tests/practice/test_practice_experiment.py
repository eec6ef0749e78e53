"""The practice experiment that `robot-stack demo demo.loop=practice` and bench_practice.py run, at a tiny size:
real generator, zarr store, CNN classifier, RLPD learner service and reset-free MuJoCo session."""

from __future__ import annotations

import json
import re

import pytest

from robot_stack.practice.experiment import PracticeExperiment, plot_curve, run_practice_experiment
from robot_stack.store import TrajectoryStore


def test_a_tiny_practice_experiment_runs_end_to_end_and_reports_what_happened(tmp_path):
    x = PracticeExperiment(learner="rlpd_state", demos=2, failure_share=0.0, attempts=4, attempts_per_update=2,
                           horizon_steps=8, eval_episodes=1, classifier_steps=5, rlpd_batch=16, seed=3)
    lines: list[str] = []
    r = run_practice_experiment(x, tmp_path, log=lines.append)
    assert r["final"]["attempts"] == 4
    assert set(r["before"]) == set(r["after"]) == {"put_cube_in_bowl", "take_cube_out_of_bowl"}
    assert [p["attempts"] for p in r["curve"]] == [2, 4]
    assert r["updates"] > 0 and r["versions"]                   # the learner took the attempts in
    with TrajectoryStore.open(tmp_path / "store.zarr", mode="r") as s:
        practice = s.episodes(source="practice")
        assert len(practice) == 4
        assert [s.episode_meta(i).phase for i in practice] == ["forward", "backward", "forward", "backward"]
    drift = r["forward_start_drift"]
    assert drift["share_near"] >= 0.0 and drift["success_near"].count("/") == 1
    assert any(line.startswith("attempt 4/4") for line in lines)  # progress is shown
    png = plot_curve(r, tmp_path / "p.png")
    assert png is None or png.stat().st_size > 0
    json.dumps(r, default=str)


def test_bad_settings_are_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="judge"):
        PracticeExperiment(judge="oracle")
    with pytest.raises(ValueError, match="attempts"):
        PracticeExperiment(attempts=0)


def test_demo_refuses_an_unknown_loop_and_unknown_practice_settings(tmp_path, monkeypatch, capsys):
    from robot_stack.cli.demo import run_demo

    monkeypatch.chdir(tmp_path)
    assert run_demo(["demo.loop=nonsense"]) == 2
    assert "demo.loop must be 'bc'" in capsys.readouterr().out
    assert run_demo(["demo.loop=practice", "+demo.practice.speed=9"]) == 2
    assert "demo.practice" in capsys.readouterr().out
    assert run_demo(["demo.loop=practice", "task=take_cube_out_of_bowl"]) == 2   # a backward task
    assert "forward task" in capsys.readouterr().out
    assert run_demo(["demo.loop=practice", "demo.obs=depth"]) == 2
    assert "obs must be 'state'" in capsys.readouterr().out
    assert run_demo(["demo.loop=practice", "demo.practice.learner=rlpd"]) == 2     # an image recipe with obs=state
    assert "obs=pixels" in capsys.readouterr().out


def test_pixel_mode_reads_the_front_camera_with_the_recipes_image_form():
    from robot_stack.practice.experiment import learner_config, learner_recipe

    x = PracticeExperiment(obs="pixels", image_px=64)
    assert learner_recipe(x) == "rlpd"
    pc = learner_config(x).policy_config
    assert list(pc["cameras"]) == ["front"] and pc["arch"] == "resnet_tiny" and pc["image_size_px"] == 64
    assert pc["use_state"] and not pc["use_environment_state"] and list(pc["fixed_action_dims"]) == [3, 4]
    state = learner_config(PracticeExperiment()).policy_config
    assert state["arch"] == "none" and state["use_environment_state"]


def test_make_demo_runs_a_tiny_practice_session_and_prints_its_summary(tmp_path, monkeypatch, capsys):
    """`robot-stack demo` with no loop override is a practice session; at a tiny size it prints the summary the
    README quotes and writes it, with the full result, to summary.json."""
    from robot_stack.cli.demo import run_demo

    monkeypatch.chdir(tmp_path)
    tiny = ["demo.practice.demos=2", "demo.practice.attempts=4", "demo.practice.eval_episodes=1",
            "+demo.practice.horizon_steps=8", "+demo.practice.classifier_steps=5", "+demo.practice.rlpd_batch=16",
            "+demo.practice.failure_share=0.0"]
    assert run_demo(tiny) == 0
    out = capsys.readouterr().out
    for line in ("forward success before -> after", "interventions / 100 attempts", "classifier FP/FN on practice",
                 "labels corrected at interventions", "missed ticks", "policy versions acted", "wall time (min)"):
        assert line in out, line
    assert re.search(r"\d+ of 32 policy steps over the 200 ms control period", out)   # 4 attempts x 8 steps, timed
    (summary,) = (tmp_path / "data" / "demo").glob("*/summary.json")
    d = json.loads(summary.read_text())
    assert d["summary"]["practice attempts"] == 4 and d["result"]["final"]["policy_ticks"]["ticks"] == 32
    assert d["result"]["settings"]["review_attempts"] == 4    # the demo reviews labels at interventions by default
    assert (summary.parent / "practice.png").exists() or "matplotlib missing" in out
