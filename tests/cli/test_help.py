"""Every `robot-stack` sub-command answers --help and -h with text and exit 0, never a traceback or a hydra
lexer error (issue 14: `learn --help` gave LexerNoViableAltException, `collect --help` "not key=value")."""

from __future__ import annotations

import pytest

from robot_stack.cli.main import COMMANDS, main

SUBCOMMANDS = [(c, []) for c in COMMANDS] + [("sim", [s]) for s in ("tasks", "generate", "view")] + \
    [("calibrate", [s]) for s in ("workspace", "home", "intrinsics", "handeye")]


def run_cli(argv, capsys):
    try:
        rc = main(argv)
    except SystemExit as e:          # argparse-based sub-commands exit from --help
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out + out.err


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("cmd,sub", SUBCOMMANDS, ids=lambda x: " ".join(x) if isinstance(x, list) else x)
def test_help_on_every_subcommand(cmd, sub, flag, capsys):
    rc, text = run_cli([cmd, *sub, flag], capsys)
    assert rc in (0, None), f"robot-stack {cmd} {' '.join(sub)} {flag} exited {rc}:\n{text}"
    assert "Traceback" not in text and "LexerNoViableAlt" not in text and "not key=value" not in text, text
    assert len(text.strip().splitlines()) >= 3, f"too little help for {cmd}: {text!r}"


@pytest.mark.parametrize("cmd", ["learn", "demo", "collect", "config", "dashboard"])
def test_override_commands_list_config_groups_and_examples(cmd, capsys):
    rc, text = run_cli([cmd, "--help"], capsys)
    assert rc == 0
    assert "Config groups" in text and "learner=" in text and "calql_state" in text
    assert "Examples" in text and f"robot-stack {cmd}" in text


def test_top_level_help_points_at_subcommand_help(capsys):
    rc, text = run_cli(["--help"], capsys)
    assert rc == 0 and "--help" in text and "robot-stack learn" in text


def test_dashboard_help_states_the_token_rule(capsys):
    rc, text = run_cli(["dashboard", "--help"], capsys)
    assert rc == 0 and "127.0.0.1" in text and "dashboard.token" in text and "never needs one" in text
