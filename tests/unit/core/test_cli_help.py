"""The ``lodestar`` command tree's help: every command in a group's list has a one-line
summary (the first paragraph of its docstring, not broken off at the docstring's line ends)."""

from __future__ import annotations

from typing import Any

import typer
from typer.testing import CliRunner

from lodestar.cli.app import build_app


def _commands(group: Any, prefix: str = "") -> dict[str, Any]:
    """Every command under ``group`` (Typer's own click) by its path; groups included."""
    out: dict[str, Any] = {}
    for name, command in group.commands.items():
        out[prefix + name] = command
        if hasattr(command, "commands"):
            out.update(_commands(command, f"{prefix}{name} "))
    return out


def _is_group(command: Any) -> bool:
    return hasattr(command, "commands")


def test_every_command_summary_is_one_line() -> None:
    commands = _commands(typer.main.get_command(build_app()))
    assert {"up", "gateway", "bench compare", "replay"} <= set(commands)
    summaries = {name: c.short_help for name, c in commands.items() if not _is_group(c)}
    bad = {name: text for name, text in summaries.items() if not text or "\n" in text}
    assert not bad, bad
    assert "collector, trainer and gateway" in (commands["up"].short_help or "")


def test_the_top_level_list_shows_whole_summaries() -> None:
    result = CliRunner().invoke(build_app(), ["--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if "│ up " in x)
    assert "collector, trainer and gateway with the router" in line, line
