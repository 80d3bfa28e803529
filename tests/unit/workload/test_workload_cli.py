"""``lodestar workload``: summary, list, export, and clear one-line errors on bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lodestar.cli.app import build_app
from lodestar.workload.build import build_workload
from lodestar.workload.catalog import SHARED_TRACE_NAMES
from lodestar.workload.resolve import spec_for_target
from lodestar.workload.traces.lodestar_jsonl import load_lodestar_jsonl

Writer = Callable[[str, str], Path]


@pytest.fixture
def run(traces_dir: Path) -> Callable[..., tuple[int, str, str]]:
    """Run ``lodestar workload <args>`` with the shared traces; (exit code, stdout, stderr)."""
    runner = CliRunner(env={"LODESTAR_TRACES_DIR": str(traces_dir), "COLUMNS": "200"})
    app = build_app()

    def _run(*args: str, traces: Path | None = None) -> tuple[int, str, str]:
        env = {"LODESTAR_TRACES_DIR": str(traces)} if traces is not None else None
        result = runner.invoke(app, ["workload", *args], env=env)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    return _run


def test_summary_prints_a_table_and_writes_json(run: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    out = tmp_path / "summary.json"
    code, stdout, _ = run("summary", "mooncake-synthetic", "--json", str(out))
    assert code == 0
    assert "3,993" in stdout and "64.0 %" in stdout and "121,877" in stdout
    data = json.loads(out.read_text())
    assert data["workload"] == "mooncake-synthetic"
    assert (data["requests"], data["prompt_segments"]) == (3_993, 121_877)


def test_summary_accepts_a_trace_path(run: Callable[..., tuple[int, str, str]], traces_dir: Path) -> None:
    code, stdout, _ = run("summary", str(traces_dir / "vidur-processed-traces/splitwise_code.csv"))
    assert code == 0 and "8,819" in stdout and "2.57" in stdout


def test_list_says_which_names_resolve(run: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    for traces, expected in ((None, "yes"), (tmp_path, "NO")):
        code, stdout, _ = run("list", traces=traces)
        assert code == 0
        for name in SHARED_TRACE_NAMES:
            row = next(line for line in stdout.splitlines() if line.startswith(f"│ {name} "))
            assert row.split("│")[3].strip() == expected, row


def test_export_rebuilds_every_request_exactly(
    run: Callable[..., tuple[int, str, str]], write: Writer, tmp_path: Path, traces_dir: Path
) -> None:
    spec = write(
        "spec.yaml",
        "seed: 3\n"
        "source:\n"
        "  kind: generator\n"
        "  duration_s: 60\n"
        "  arrivals: {process: gamma, rate_rps: 5, cv: 3}\n"
        "  lengths: {kind: uniform, input_min: 10, input_max: 5000, output_min: 1, output_max: 300}\n"
        "  tenants: {count: 2}\n"
        "  sessions: {concurrent: 3}\n"
        "  long_context: {fraction: 0.1}\n"
        "drift:\n"
        "  - {kind: day_night, period_s: 30, amplitude: 0.5}\n"
        "  - {kind: slowdown, at_s: 10, instance_id: i-0, factor: 2}\n",
    )
    out = tmp_path / "requests.jsonl"
    code, stdout, _ = run("export", str(spec), "--out", str(out))
    assert code == 0 and "1 instance fault(s)" in stdout
    expected = build_workload(spec_for_target(str(spec)), traces_dir=traces_dir).requests
    assert tuple(load_lodestar_jsonl(out).requests) == expected
    assert len(out.read_text().splitlines()) == len(expected) > 100
    code, stdout, _ = run("summary", str(out))  # an export is itself a readable trace
    assert code == 0 and f"{len(expected):,}" in stdout


# (id, args built from (tmp_path, write), fragments the one-line error must contain)
BAD_INPUT: list[tuple[str, Callable[[Path, Writer], list[str]], list[str]]] = [
    ("unknown-name", lambda tmp, w: ["summary", "mooncake-chat"], ["mooncake-chat", "not a shorthand name"]),
    ("missing-spec", lambda tmp, w: ["summary", str(tmp / "nope.yaml")], ["nope.yaml", "file not found"]),
    (
        "bad-spec-field",
        lambda tmp, w: ["summary", str(w("s.yaml", "source: {kind: named, name: azure-code}\nspeedup: -2\n"))],
        ["s.yaml", "'speedup'", "greater than 0"],
    ),
    (
        "bad-trace-row",
        lambda tmp, w: [
            "summary",
            str(w("t.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:00.1,x,3\n")),
        ],
        ["t.csv", "line 2", "'ContextTokens'"],
    ),
    (
        "inapplicable-field",
        lambda tmp, w: ["summary", str(w("n.yaml", "source: {kind: named, name: azure-code, rate_rps: 3}\n"))],
        ["n.yaml", "'source.rate_rps'", "does not apply"],
    ),
    ("unknown-format", lambda tmp, w: ["summary", str(w("t.txt", "hello\n"))], ["t.txt", "unknown trace format"]),
    (
        "unwritable-json",
        lambda tmp, w: ["summary", "mooncake-synthetic", "--json", str(tmp / "no" / "such" / "dir.json")],
        ["dir.json", "cannot write"],
    ),
    ("export-to-dir", lambda tmp, w: ["export", "azure-code", "--out", str(tmp)], ["cannot write"]),
    (
        "empty-slice",
        lambda tmp, w: [
            "summary",
            str(w("e.yaml", "source: {kind: named, name: azure-code}\nslice: {start_s: 99999}\n")),
        ],
        ["empty"],
    ),
]


@pytest.mark.parametrize(("make_args", "fragments"), [row[1:] for row in BAD_INPUT], ids=[row[0] for row in BAD_INPUT])
def test_bad_input_exits_non_zero_with_a_clear_message(
    run: Callable[..., tuple[int, str, str]],
    tmp_path: Path,
    write: Writer,
    make_args: Callable[[Path, Writer], list[str]],
    fragments: list[str],
) -> None:
    code, stdout, stderr = run(*make_args(tmp_path, write))
    assert code == 1
    assert stderr.startswith("error: ") and len(stderr.strip().splitlines()) == 1
    assert all(fragment in stderr for fragment in fragments), stderr
    assert "Traceback" not in stdout + stderr
