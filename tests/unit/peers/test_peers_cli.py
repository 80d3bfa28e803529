"""`lodestar peers` rejects bad options with one line naming them and exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lodestar.cli.app import build_app

W = "http://127.0.0.1:8001"


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LODESTAR_LOCAL_HOME", str(tmp_path))


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", "trt", "--workers", W], "unknown peer router 'trt'"),
        (["run", "sglang", "--workers", W, "--policy", "kv_aware"], "has no policy 'kv_aware'"),
        (["run", "vllm", "--workers", "localhost:8001"], "is not http(s)://host:port"),
        (["run", "vllm", "--workers", f"{W},{W}"], "worker URLs repeat"),
        (["run", "vllm", "--workers", W, "--policy", "random", "--cache-threshold", "0.5"], "only to --policy"),
        (["run", "sglang", "--workers", W, "--policy", "power_of_two"], "fewer than 2 workers"),
        (["run", "sglang", "--workers", W, "--log-level", "trace"], "log level 'trace'"),
        # without --policy the router's own default (cache_aware), so its thresholds are checked
        (["run", "vllm", "--workers", W, "--cache-threshold", "1.5"], "cache threshold 1.5 is not in [0, 1]"),
        (["install", "trt"], "unknown peer router 'trt'"),
        (["stop", "trt"], "unknown peer router 'trt'"),
    ],
)
def test_bad_options_exit_2_with_a_message(args: list[str], fragment: str) -> None:
    result = CliRunner().invoke(build_app(), ["peers", *args])
    assert result.exit_code == 2, result.output
    assert fragment in result.stderr
    assert "Traceback" not in result.output


def test_workers_are_required() -> None:
    result = CliRunner().invoke(build_app(), ["peers", "run", "sglang"])
    assert result.exit_code == 2
    assert "--workers" in result.output


def test_policies_lists_each_wheel() -> None:
    result = CliRunner().invoke(build_app(), ["peers", "policies"])
    assert result.exit_code == 0
    assert "sglang (sglang-router==0.3.2):" in result.stdout
    assert "vllm (vllm-router==0.1.17):" in result.stdout
    assert "kv_aware" in result.stdout
    assert result.stdout.count("(default)") == 2  # one per wheel
    assert "  cache_aware          (default) character radix tree" in result.stdout


def test_stop_when_nothing_runs() -> None:
    result = CliRunner().invoke(build_app(), ["peers", "stop", "sglang", "--port", "30123"])
    assert result.exit_code == 0
    assert "was not running" in result.stdout
