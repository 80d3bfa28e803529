"""``lodestar replay``'s window options are checked before any source is read: a time it cannot
parse names its option, and a window that ends before it starts is refused (no history
service, chDB directory or broker is needed to say so). A source that is not there is one
clear line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from lodestar.cli.app import build_app
from lodestar.cli.replay_cmd import _model as replay_model
from lodestar.localinfra.ports import free_port

NOWHERE = ["--url", "http://127.0.0.1:1"]  # nothing listens: reaching it would be another error


@pytest.mark.parametrize("command", [["sim", "-p", "lodestar"], ["ope", "-t", "logged"]], ids=["sim", "ope"])
@pytest.mark.parametrize(
    ("window", "expected"),
    [
        (["--from", "yesterday"], "--from: expected ISO 8601, epoch seconds or now-15m style, got 'yesterday'"),
        (["--to", "2026-13-45"], "--to: expected ISO 8601"),
        (["--from", "now", "--to", "now-1h"], "the window is empty: --from now ("),
        (["--from", "2026-11-30T10:00:00Z", "--to", "2026-11-30T10:00:00Z"], "is not before --to 2026-11-30T10:00:00Z"),
    ],
)
def test_a_bad_window_is_refused_naming_the_option(command: list[str], window: list[str], expected: str) -> None:
    result = CliRunner().invoke(build_app(), ["replay", *command, *window, *NOWHERE])
    assert result.exit_code == 2, result.output
    assert expected in result.output and "no history service" not in result.output, result.output


def test_a_good_window_goes_on_to_the_source() -> None:
    result = CliRunner().invoke(build_app(), ["replay", "sim", "-p", "lodestar", "--from", "now-2h", *NOWHERE])
    assert result.exit_code == 2 and "no history service at http://127.0.0.1:1" in result.output, result.output


def test_kafka_without_a_broker_is_a_clear_error_not_a_traceback() -> None:
    """``--kafka`` with no broker at LODESTAR_KAFKA_BOOTSTRAP_SERVERS: one line naming the
    setting, status 2, and the client closed (aiokafka reported it unclosed at exit)."""
    nowhere = f"127.0.0.1:{free_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "lodestar", "replay", "sim", "-p", "round-robin", "--kafka"],
        capture_output=True,
        text=True,
        env={**os.environ, "LODESTAR_KAFKA_BOOTSTRAP_SERVERS": nowhere},
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert f"lodestar replay: --kafka: cannot read the broker at {nowhere} (LODESTAR_KAFKA_BOOTSTRAP_SERVERS)" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr and "Unclosed" not in result.stderr, result.stderr


def test_model_latest_without_a_broker_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LODESTAR_KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")
    with pytest.raises(typer.BadParameter, match=r"model 'latest': cannot read the broker at 127\.0\.0\.1:"):
        replay_model("latest")
