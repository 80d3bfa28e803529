"""`lodestar bench compare`'s pure parts: router cases, workload slices, the emulator's health
from its /metrics, run validity, the Lodestar-vs-best-peer ratios, tables, the command line
of each bench run, and the CLI's refusals (no process is started here)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lodestar.bench.client import RunStats, SendResult
from lodestar.bench.compare.emulator import (
    BACKGROUND_NICE,
    EMULATOR_NICE,
    ROUTER_NICE,
    FleetHealth,
    bucket_quantile,
    component_niceness,
    parse_health,
    prioritize,
)
from lodestar.bench.compare.plan import EXCLUDED, RouterCase, RunPlan, default_cases, parse_case
from lodestar.bench.compare.routers import parse_fallbacks
from lodestar.bench.compare.runner import Runner
from lodestar.bench.compare.summary import (
    CaseResult,
    capped_ttft,
    fleet_table,
    is_heterogeneous,
    markdown_table,
    ratio_lines,
    ratios,
)
from lodestar.bench.compare.workload import prepare, slices
from lodestar.bench.results import BenchRun, build_run
from lodestar.bench.schedule import TimeScale, plan_sends
from lodestar.bench.sse import StreamOutcome
from lodestar.cli.app import build_app
from lodestar.cluster.spec import load_cluster
from lodestar.localinfra.settings import LocalInfraSettings
from lodestar.workload.request import Prompt, RequestSpec
from lodestar.workload.traces.lodestar_jsonl import load_lodestar_jsonl

# --- cases ------------------------------------------------------------------------------------


def test_default_cases_cover_the_issue() -> None:
    keys = [c.key for c in default_cases()]
    for peer in ("vllm", "sglang"):
        for policy in ("round_robin", "power_of_two", "cache_aware"):
            assert f"{peer}:{policy}" in keys
    assert keys[-3:] == ["lodestar:cold", "lodestar:warm", "lodestar:estimated-ttft"]
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize(
    ("text", "kind", "router", "policy", "warm", "label"),
    [
        ("vllm:round_robin", "peer", "vllm", "round_robin", False, "vllm-router round_robin"),
        ("sglang:cache_aware", "peer", "sglang", "cache_aware", False, "sglang-router cache_aware"),
        ("lodestar:cold", "lodestar", "lodestar", "lodestar", False, "Lodestar cold"),
        ("lodestar:warm", "lodestar", "lodestar", "lodestar", True, "Lodestar warmed"),
        ("lodestar:llm-d", "lodestar", "lodestar", "llm-d", False, "Lodestar router llm-d"),
    ],
)
def test_parse_case(text: str, kind: str, router: str, policy: str, warm: bool, label: str) -> None:
    case = parse_case(text)
    assert (case.kind, case.router, case.policy, case.warm, case.label) == (kind, router, policy, warm, label)
    assert case.key == text
    assert case.is_learned == (policy == "lodestar")


def test_vllm_cache_aware_explains_itself() -> None:
    assert "least-loaded" in parse_case("vllm:cache_aware").note


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("vllm", "expected ROUTER:VARIANT"),
        ("vllm:", "expected ROUTER:VARIANT"),
        ("vllm:nope", "has no policy 'nope'"),
        ("nginx:round_robin", "unknown router 'nginx'"),
        ("lodestar:no-such-profile", "no-such-profile"),
        ("lodestar:lodestar", "lodestar:cold or lodestar:warm"),
    ],
)
def test_parse_case_rejects(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_case(text)


def test_run_plan_rejects_overlapping_windows() -> None:
    with pytest.raises(ValueError, match="must not overlap"):
        RunPlan(start_s=0.0, duration_s=60.0, warmup_start_s=30.0)
    with pytest.raises(ValueError, match="time_scale"):
        RunPlan(time_scale=0.0)
    RunPlan(start_s=100.0, duration_s=60.0, warmup_start_s=0.0, warmup_duration_s=100.0)  # adjacent is fine


# --- workload ---------------------------------------------------------------------------------


def _requests(n: int, gap_s: float = 1.0, prompt: int = 64, output: int = 8) -> list[RequestSpec]:
    return [RequestSpec(f"r{i}", arrival_s=i * gap_s, prompt=Prompt(prompt), output_tokens=output) for i in range(n)]


def test_slices_rescale_then_cut_disjoint_windows() -> None:
    reqs = _requests(101)  # 1 req/s over 100 s
    measure, warmup = slices(reqs, 2.0, start_s=0.0, duration_s=10.0, warmup_start_s=20.0, warmup_duration_s=5.0)
    assert [r.request_id for r in measure] == [f"r{i}" for i in range(20)]  # arrivals at i / 2
    assert [r.request_id for r in warmup] == [f"r{i}" for i in range(40, 50)]
    assert measure[0].arrival_s == 0.0 and 0.0 <= warmup[0].arrival_s < 0.5  # both re-based to their window


def test_prepare_writes_exact_files(tmp_path: Path) -> None:
    cluster = load_cluster("mini-hetero2")
    reqs = _requests(2000, gap_s=0.05, prompt=1024, output=256)
    prepared = prepare(cluster, "synthetic", reqs, 0.5, 0.0, 5.0, 20.0, 5.0, tmp_path)
    assert prepared.rate_rps == pytest.approx(0.5 * prepared.capacity_rps)
    assert prepared.measure and prepared.warmup
    back = load_lodestar_jsonl(prepared.measure_file).requests
    assert [(r.request_id, r.arrival_s) for r in back] == [(r.request_id, r.arrival_s) for r in prepared.measure]
    described = prepared.describe()
    assert described["measure"]["requests"] == len(prepared.measure)  # type: ignore[index]


def test_prepare_refuses_an_empty_measured_window(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="measured window"):
        prepare(load_cluster("mini-hetero2"), "w", _requests(2000, 0.05), 0.5, 1e6, 5.0, 0.0, 5.0, tmp_path)


def test_a_warm_run_needs_its_warmup_window(tmp_path: Path) -> None:
    cluster = load_cluster("mini-hetero2")
    prepared = prepare(cluster, "w", _requests(2000, 0.05, 1024, 256), 0.5, 0.0, 5.0, 1e6, 5.0, tmp_path)
    assert prepared.warmup == []
    runner = Runner(RunPlan(), LocalInfraSettings(home=tmp_path), lambda _: None)
    res = runner.run_case("mini-hetero2", cluster, prepared, parse_case("lodestar:warm"), tmp_path)
    assert res.failure is not None and "warm-up window" in res.failure


# --- emulator health --------------------------------------------------------------------------

METRICS = """# TYPE lodestar_emulator_late_steps counter
lodestar_emulator_late_steps_total{{model_name="m"}} {late}
# TYPE lodestar_emulator_step_lag_seconds histogram
lodestar_emulator_step_lag_seconds_bucket{{le="0.001"}} {b1}
lodestar_emulator_step_lag_seconds_bucket{{le="0.05"}} {b2}
lodestar_emulator_step_lag_seconds_bucket{{le="0.1"}} {steps}
lodestar_emulator_step_lag_seconds_bucket{{le="+Inf"}} {steps}
lodestar_emulator_step_lag_seconds_count {steps}
lodestar_emulator_step_lag_seconds_sum 1.0
# TYPE vllm:prefix_cache_queries counter
vllm:prefix_cache_queries_total{{model_name="m"}} 1000
# TYPE vllm:prefix_cache_hits counter
vllm:prefix_cache_hits_total{{model_name="m"}} {hits}
"""


def test_parse_health_totals_instances() -> None:
    a = METRICS.format(late=2, b1=90, b2=98, steps=100, hits=250)
    b = METRICS.format(late=0, b1=100, b2=100, steps=100, hits=750)
    health = parse_health([a, b])
    assert health.steps == 200 and health.late_steps == 2
    assert health.late_frac == pytest.approx(0.01)
    assert health.step_lag_p99_wall_s == 0.05  # 198 of 200 within 50 ms
    assert health.prefix_hit_frac == pytest.approx(0.5)
    assert math.isnan(health.chunk_lag_p99_wall_s)


def test_bucket_quantile() -> None:
    assert bucket_quantile({0.01: 50.0, 0.1: 99.0, math.inf: 100.0}, 0.5) == 0.01
    assert bucket_quantile({0.01: 50.0, 0.1: 99.0, math.inf: 100.0}, 0.995) == math.inf
    assert math.isnan(bucket_quantile({}, 0.5))
    assert math.isnan(bucket_quantile({1.0: 0.0}, 0.5))


def test_parse_fallbacks() -> None:
    text = (
        "# HELP lodestar_gateway_fallbacks_total x\n"
        'lodestar_gateway_fallbacks_total{reason="timeout"} 3.0\n'
        'lodestar_gateway_fallbacks_total{reason="circuit_open"} 1.0\n'
        "lodestar_gateway_requests_total 9.0\n"
    )
    assert parse_fallbacks(text) == {"timeout": 3.0, "circuit_open": 1.0}


# --- results ----------------------------------------------------------------------------------


def bench_run(label: str, ttft_s: float, n: int = 50, errors: int = 0, lag_s: float = 0.0) -> BenchRun:
    requests = [RequestSpec(f"r{i}", arrival_s=float(i), prompt=Prompt(16), output_tokens=4) for i in range(n)]
    sends = plan_sends(requests, ["http://x"], TimeScale(1.0))
    results = [
        SendResult(
            s,
            s.due_wall_s + lag_s,
            StreamOutcome(ttft_s, 0.01, ttft_s + 0.1, 4, 16, 4, None)
            if s.index >= errors
            else StreamOutcome(None, None, 1.0, 0, None, None, "timeout"),
            200,
        )
        for s in sends
    ]
    stats = RunStats(wall_s=float(n), client_cpu_s=0.1, peak_in_flight=1, max_connections=10, loop_lag_s=[0.0])
    return build_run(label, {"workload": "w", "time_scale": 1.0}, results, stats, TimeScale(1.0), 0.0, 0.02)


def health(late_frac: float) -> FleetHealth:
    return FleetHealth(1000.0, 1000.0 * late_frac, 0.01, 0.01, 0.2, 0.0, 50.0)


def result(key: str, ttft_s: float, late_frac: float = 0.0, **kw: float) -> CaseResult:
    case = parse_case(key)
    return CaseResult(case, run=bench_run(case.label, ttft_s, **kw), health=health(late_frac))  # type: ignore[arg-type]


def test_validity() -> None:
    plan = RunPlan()
    assert result("vllm:round_robin", 1.0).valid(plan)
    behind = result("vllm:round_robin", 1.0, late_frac=0.05)
    assert not behind.valid(plan)
    assert "emulator fell behind: 5.0 %" in behind.invalid_reasons(plan)[0]
    late = result("vllm:round_robin", 1.0, lag_s=0.5)
    assert "send lag" in late.invalid_reasons(plan)[0]
    assert not result("vllm:round_robin", 1.0, n=10, errors=10).valid(plan)
    failed = CaseResult(parse_case("lodestar:cold"), failure="ProcessStartError: router did not start")
    assert failed.invalid_reasons(plan) == ["ProcessStartError: router did not start"]
    assert math.isnan(failed.metrics()["ttft_mean_s"])


@pytest.mark.parametrize(
    ("errors", "cap_s", "mean_s", "p99_s"),
    [
        ("none", 10.0, 1.0, 1.0),  # no timeout: the bench's own figures
        ("timeouts", 10.0, (8 * 1.0 + 2 * 10.0) / 10, 10.0),  # 2 of 10 abandoned: counted at the cap
        ("all", 10.0, 10.0, 10.0),
    ],
)
def test_capped_ttft_counts_timeouts_at_the_cap(errors: str, cap_s: float, mean_s: float, p99_s: float) -> None:
    n_errors = {"none": 0, "timeouts": 2, "all": 10}[errors]
    run = bench_run("x", 1.0, n=10, errors=n_errors)
    assert capped_ttft(run, cap_s) == (pytest.approx(mean_s), pytest.approx(p99_s))
    if n_errors and n_errors < 10:
        assert run.latency.ttft_s.mean == pytest.approx(1.0)  # what the bench reports: survivors only


def test_capped_ttft_leaves_out_failures_without_a_time() -> None:
    run = bench_run("x", 1.0, n=4, errors=1)
    first = run.records[0]
    run.records[0] = replace(first, record=replace(first.record, error="http_400"))  # refused: no TTFT to count
    assert capped_ttft(run, 10.0) == (pytest.approx(1.0), pytest.approx(1.0))


def test_ratios_pick_the_best_valid_peer() -> None:
    plan = RunPlan()
    results = [
        result("vllm:round_robin", 2.0),
        result("sglang:cache_aware", 0.5, late_frac=0.5),  # invalid: not a reference
        result("sglang:power_of_two", 1.4),
        result("lodestar:cold", 1.0),
        result("lodestar:warm", 0.7),
        result("lodestar:estimated-ttft", 0.1),  # reference profile: not compared
    ]
    found = ratios(results, plan)
    assert [(q.lodestar, q.metric, q.best_peer) for q in found] == [
        ("lodestar:cold", "ttft_mean_s", "sglang:power_of_two"),
        ("lodestar:cold", "ttft_p99_s", "sglang:power_of_two"),
        ("lodestar:warm", "ttft_mean_s", "sglang:power_of_two"),
        ("lodestar:warm", "ttft_p99_s", "sglang:power_of_two"),
    ]
    cold, warm = found[0], found[2]
    assert cold.improvement == pytest.approx(1.4) and cold.met(heterogeneous=True)
    assert warm.improvement == pytest.approx(2.0)
    assert cold.met(heterogeneous=False)  # lower than the best peer: certainly within 3 %
    assert cold.relative_worse == pytest.approx(1.0 / 1.4 - 1.0)
    lines = ratio_lines(found, heterogeneous=True)
    assert "1.40× lower" in lines[0] and "met" in lines[0]
    homo = ratio_lines(found, heterogeneous=False)
    assert "-28.6 %" in homo[0]


def test_homogeneous_target_is_three_percent() -> None:
    plan = RunPlan()
    for lodestar_s, met in ((1.029, True), (1.031, False), (0.9, True)):
        found = ratios([result("vllm:round_robin", 1.0), result("lodestar:cold", lodestar_s)], plan)
        assert found[0].met(heterogeneous=False) is met


def test_tables() -> None:
    plan = RunPlan()
    results = [result("vllm:round_robin", 1.0), result("lodestar:cold", 0.5, late_frac=0.5)]
    md = markdown_table(results, plan)
    assert "| vllm-router round_robin | 1,000 | 1,000 | 1,000 | 1,000 | 1,000 |" in md
    assert "† TTFT with every timeout counted at the cap (60,000 ms)" in md
    assert "no: emulator fell behind" in md
    assert fleet_table("t", results, plan).row_count == 2
    assert is_heterogeneous(["A10G", "H100-SXM"]) and not is_heterogeneous(["H100-SXM"] * 8)


def test_bench_argv_scales_the_ttft_cap(tmp_path: Path) -> None:
    runner = Runner(RunPlan(time_scale=3.0, ttft_cap_s=50.0), LocalInfraSettings(home=tmp_path), lambda _: None)
    argv = runner.bench_argv(tmp_path / "w.jsonl", "http://127.0.0.1:1", "x y", tmp_path / "x.json")
    assert argv[argv.index("--time-scale") + 1] == "3"
    assert argv[argv.index("--timeout") + 1] == "150"
    assert argv[2:5] == ["lodestar", "bench", "run"]
    assert "--no-progress" in argv


# --- the command ------------------------------------------------------------------------------


def invoke(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(build_app(), ["bench", "compare", *args])
    assert "Traceback" not in res.output
    return res.exit_code, res.output


def test_cli_lists_routers() -> None:
    code, out = invoke("--list")
    assert code == 0
    assert "vllm:cache_aware" in out and "lodestar:warm" in out
    assert "not in the default set" in out and "vllm:kv_aware" in out


@pytest.mark.parametrize("key", sorted(EXCLUDED))
def test_excluded_policies_exist_but_are_not_defaults(key: str) -> None:
    assert parse_case(key).key == key  # the wheel offers it: --router runs it
    assert key not in {c.key for c in default_cases()}


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--router", "vllm:nope"], "has no policy"),
        (["--router", "lodestar:cold", "--time-scale", "0"], "time_scale must be > 0"),
        (["--router", "lodestar:cold", "--warmup-start", "10"], "must not overlap"),
        (["--router", "lodestar:cold", "--fleet", "no-such-fleet"], "no-such-fleet"),
    ],
)
def test_cli_refuses_bad_input(args: list[str], fragment: str) -> None:
    code, out = invoke(*args)
    assert code == 2
    assert fragment in out


def test_cli_refuses_an_empty_warmup_window_before_starting_anything(tmp_path: Path) -> None:
    spec = tmp_path / "w.yaml"
    spec.write_text(
        "name: w\nseed: 1\nsource:\n  kind: generator\n  duration_s: 60\n"
        "  arrivals: {process: poisson, rate_rps: 2}\n"
        "  lengths: {kind: uniform, input_min: 40, input_max: 80, output_min: 2, output_max: 4}\n"
    )
    args = ["--fleet", "mini-hetero2", "--trace", str(spec), "--router", "lodestar:warm", "--load", "0.01"]
    code, out = invoke(*args, "--warmup-start", "100000", "--out", str(tmp_path / "out"))
    assert code == 2
    assert "holds no request" in out and "lower --warmup-start" in out
    assert not (tmp_path / "out" / "compare.json").exists()


def test_case_is_frozen() -> None:
    case = RouterCase("peer", "vllm", "round_robin")
    with pytest.raises(AttributeError):
        case.policy = "x"  # type: ignore[misc]


def test_case_result_round_trips_through_json(tmp_path: Path) -> None:
    from lodestar.bench.results import write_json

    res = result("sglang:cache_aware", 0.8)
    assert res.run is not None
    path = tmp_path / "run.json"
    write_json(path, res.run)
    res.bench_json = str(path)
    res.extra = {"router_argv": ["sglang-router", "--policy", "cache_aware"]}
    back = CaseResult.from_json(res.to_json(RunPlan()))
    assert back.case == res.case
    assert back.health == res.health
    assert back.metrics() == pytest.approx(res.metrics())
    assert back.extra == res.extra
    failed = CaseResult(parse_case("vllm:round_robin"), failure="PeerStartError: boom")
    again = CaseResult.from_json(failed.to_json(RunPlan()))
    assert again.failure == "PeerStartError: boom" and again.run is None


def test_cli_rebuild_rejudges_saved_runs(tmp_path: Path) -> None:
    import json

    from lodestar.bench.results import write_json

    rows = []
    for key, ttft, late in (("vllm:round_robin", 1.0, 0.03), ("lodestar:cold", 0.5, 0.0)):
        res = result(key, ttft, late_frac=late)
        assert res.run is not None
        path = tmp_path / f"{key.replace(':', '-')}.json"
        write_json(path, res.run)
        res.bench_json = str(path)
        rows.append(res.to_json(RunPlan()))
    workload = {"workload": "w", "rate_rps": 1.0, "measure": {"requests": 50}}
    fleet = {"cluster": "mini-hetero2", "hardware": ["H100-SXM", "A10G"], "workload": workload, "results": rows}
    report = {"plan": RunPlan().__dict__, "fleets": {"mini-hetero2": fleet}}
    (tmp_path / "compare.json").write_text(json.dumps(report))
    code, out = invoke("--rebuild", "--out", str(tmp_path))
    assert code == 1 and "emulator fell behind" in out  # 3 % late > 2 %
    code, out = invoke("--rebuild", "--out", str(tmp_path), "--max-late-frac", "0.05")
    assert code == 0
    assert "2.00× lower" in out
    saved = json.loads((tmp_path / "compare.json").read_text())
    assert saved["plan"]["max_late_step_frac"] == 0.05
    assert saved["fleets"]["mini-hetero2"]["ratios"][0]["met"] is True
    assert (tmp_path / "compare.md").read_text().startswith("### mini-hetero2")


def test_prioritize_sets_every_thread_and_reports_failure() -> None:
    code = "import threading, time; threading.Thread(target=time.sleep, args=(30,)).start(); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 10
        while len(os.listdir(f"/proc/{child.pid}/task")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        tids = [int(t) for t in os.listdir(f"/proc/{child.pid}/task")]
        assert len(tids) == 2
        assert prioritize(child.pid, 7)  # raising niceness needs no privilege
        assert [os.getpriority(os.PRIO_PROCESS, t) for t in tids] == [7, 7]
    finally:
        child.kill()
        child.wait()
    assert not prioritize(None)
    assert not prioritize(child.pid, 7)  # gone


def test_lodestar_components_get_the_data_path_or_background_priority() -> None:
    """The emulator stands for the GPUs; gateway, router, collector and broker are the data path
    like a peer's process; trainer and history writer, which no request waits for, yield."""
    assert component_niceness("emulator") == EMULATOR_NICE
    for name in ("gateway", "router", "collector", "broker"):
        assert component_niceness(name) == ROUTER_NICE
    for name in ("trainer", "history"):
        assert component_niceness(name) == BACKGROUND_NICE
    assert EMULATOR_NICE < ROUTER_NICE < 0 < BACKGROUND_NICE
