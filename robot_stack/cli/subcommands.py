"""The shared `main` of the argparse-based command groups (`robot-stack store ...`, `robot-stack classifier ...`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


def run_subcommands(argv: list[str] | None, usage: str, parser: Callable[[], argparse.ArgumentParser],
                    commands: dict[str, Callable[[argparse.Namespace], int]], errors: tuple[type[BaseException], ...],
                    group: str) -> int:
    """Parse, run the sub-command, and turn an operator error (`errors`) into its message on stderr and exit 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage)
        return 0
    args = parser().parse_args(argv)
    try:
        return commands[args.cmd](args)
    except errors as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"[{group} {args.cmd}] {msg}", file=sys.stderr)
        return 2
