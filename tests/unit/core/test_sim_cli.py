"""``lodestar sim`` refuses rates, loads and durations it cannot simulate, naming the option,
before any workload is built (a zero, negative, infinite or NaN value ended in a traceback)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from lodestar.cli.app import build_app


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--load", "0"], "Invalid value for --load: must be a finite number > 0, got 0"),
        (["--load", "nan"], "Invalid value for --load: must be a finite number > 0, got nan"),
        (["--rate", "-2"], "Invalid value for --rate: must be a finite number > 0, got -2"),
        (["--rate", "inf"], "Invalid value for --rate: must be a finite number > 0, got inf"),
        (["--duration", "0"], "Invalid value for --duration: must be a finite number > 0, got 0"),
        (["--load", "0.5", "--rate", "2"], "give --load or --rate, not both"),
    ],
)
def test_a_value_it_cannot_simulate_is_refused_naming_the_option(args: list[str], expected: str) -> None:
    result = CliRunner().invoke(build_app(), ["sim", "-p", "round-robin", *args], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output, result.output


def test_a_short_run_at_a_given_rate() -> None:
    args = ["sim", "-p", "round-robin", "--trace", "azure-conv", "--rate", "2", "--duration", "60"]
    result = CliRunner().invoke(build_app(), args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "requests of azure-conv" in result.output and "round-robin seed 0: TTFT mean" in result.output
