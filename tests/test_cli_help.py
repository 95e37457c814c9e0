"""Every command's ``--help``: an example, and real metavars (flags as flags, ``--opt VALUE``)."""

from __future__ import annotations

import re

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from autotqa import __version__, cli

cli._register()
ROOT = typer.main.get_command(cli.app)


def _leaves(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if hasattr(group, "commands"):  # a group (typer ships its own click)
        return [leaf for name, sub in group.commands.items() for leaf in _leaves(sub, (*path, name))]
    return [path]


COMMANDS = _leaves(ROOT)


def test_every_command_is_covered() -> None:
    names = {" ".join(c) for c in COMMANDS}
    assert {"ask", "chat", "tables", "sql", "eval", "trace show", "config show", "model fetch",
            "bench serving"} <= names


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_has_an_example_and_real_metavars(command: tuple[str, ...]) -> None:
    res = CliRunner().invoke(cli.app, [*command, "--help"], terminal_width=120)
    assert res.exit_code == 0, res.output
    examples = res.stdout.split("Examples:\n", 1)
    assert len(examples) == 2, f"no examples in {' '.join(command)} --help"
    first = examples[1].splitlines()[0]
    assert first.strip().startswith("autotqa "), first
    options = res.stdout.split("Options:", 1)[1]
    assert not re.findall(r"<(bool|str|int|float|path|file)[^>]*>", options), options
    for line in options.splitlines():  # a flag has no metavar; an option with a value names it
        m = re.match(r"\s+(--[a-z-]+)(?:,\s*-\w)?(?: ([A-Z][A-Z_.]*))?\s{2,}", line)
        if m and m.group(1) in ("--json", "--debug", "--verbose", "--prompts", "--trace-prompts"):
            assert m.group(2) is None, line


def test_version() -> None:
    res = CliRunner().invoke(cli.app, ["--version"])
    assert (res.exit_code, res.stdout.strip()) == (0, f"autotqa {__version__}")
