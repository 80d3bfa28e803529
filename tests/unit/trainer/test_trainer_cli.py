"""`lodestar trainer` refuses bad settings with one line naming the setting (before any I/O)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from lodestar.cli.app import build_app

RUNNER = CliRunner()


@pytest.mark.parametrize(
    ("env", "args", "fragment"),
    [
        pytest.param(
            {"LODESTAR_TRAINER_POLL_INTERVAL_S": "-1"},
            [],
            "invalid LODESTAR_TRAINER_POLL_INTERVAL_S",
            id="poll-negative",
        ),
        pytest.param(
            {"LODESTAR_TRAINER_POLL_INTERVAL_S": "soon"}, [], "invalid LODESTAR_TRAINER_POLL_INTERVAL_S", id="poll-text"
        ),
        pytest.param({}, ["--publish-interval", "0"], "invalid --publish-interval", id="publish-zero"),
    ],
)
def test_bad_settings_exit_2_naming_the_setting(env: dict[str, str], args: list[str], fragment: str) -> None:
    result = RUNNER.invoke(build_app(), ["trainer", *args], env=env)
    assert result.exit_code == 2, result.output
    assert "lodestar trainer:" in result.output and fragment in result.output
