"""``lodestar up`` ends by suggesting a load-generator command: it must be one the CLI takes."""

from __future__ import annotations

from typer.testing import CliRunner

from lodestar.cli.app import build_app
from lodestar.cli.up_cmd import traffic_example

runner = CliRunner()


def test_the_suggested_bench_command_parses() -> None:
    argv = traffic_example("http://127.0.0.1:8080")
    assert argv[0] == "lodestar"
    # click parses every option before acting on --help: an unknown option or a missing
    # argument fails here with exit code 2
    result = runner.invoke(build_app(), [*argv[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert "Send a workload open-loop" in result.output


def test_a_command_the_cli_does_not_take_is_caught() -> None:
    # the hint ``up`` printed before: ``bench`` is a command group, ``--url`` belongs to ``run``
    result = runner.invoke(build_app(), ["bench", "--url", "http://127.0.0.1:8080", "--help"])
    assert result.exit_code == 2
