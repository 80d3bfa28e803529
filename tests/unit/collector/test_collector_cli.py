"""`lodestar collector` refuses bad settings with one line naming the option (before any I/O)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from lodestar.cli.app import build_app

RUNNER = CliRunner()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The command configures logging to CliRunner's (then closed) stderr; undo that afterwards."""
    yield
    structlog.reset_defaults()
    logging.basicConfig(force=True)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(
            ["--instance", "a=http://h:1", "--interval", "0.75"], "invalid --interval", id="interval-too-long"
        ),
        pytest.param(["--instance", "a=http://h:1", "--interval", "0"], "invalid --interval", id="interval-zero"),
        pytest.param(
            ["--instance", "a=http://h:1", "--failure-threshold", "0"], "invalid --failure-threshold", id="thr"
        ),
        pytest.param(["--instance", "a=http://h:1", "--port", "70000"], "invalid --port", id="port"),
        pytest.param(["--instance", "a=ftp://h"], "entry 'a=ftp://h'", id="bad-instance"),
        pytest.param([], "no instances", id="no-instances"),
    ],
)
def test_bad_options(args: list[str], fragment: str) -> None:
    result = RUNNER.invoke(build_app(), ["collector", *args])
    assert result.exit_code == 2, result.output
    assert "lodestar collector:" in result.output
    assert fragment in result.output


def test_bad_instances_file(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text("- {instance_id: x, url: 'http://h', gpu: A100}\n")
    result = RUNNER.invoke(build_app(), ["collector", "--instances-file", str(path)])
    assert result.exit_code == 2
    assert "fleet.yaml" in result.output and "gpu" in result.output


def test_env_interval_is_validated_and_named_as_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LODESTAR_COLLECTOR_INTERVAL_S", "1.0")
    monkeypatch.setenv("LODESTAR_COLLECTOR_INSTANCES", "a=http://h:1")
    result = RUNNER.invoke(build_app(), ["collector"])
    assert result.exit_code == 2
    assert "invalid LODESTAR_COLLECTOR_INTERVAL_S: " in result.output  # the variable set, not an option
