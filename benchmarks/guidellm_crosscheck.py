"""Cross-check ``lodestar bench`` against guidellm: same server, same rate, same lengths.

    .venv/bin/python benchmarks/guidellm_crosscheck.py [--rate 2] [--prompt-tokens 512]
        [--output-tokens 128] [--requests 300] [--hardware A10G] [--time-scale 1]

1. guidellm (its own virtualenv, made by ``benchmarks/setup_guidellm.sh`` if missing) runs
   against a freshly started ``lodestar emulate --hardware H`` instance, constant rate R,
   synthetic prompts of exactly P tokens (a local tokenizer that counts as the emulator does,
   ``benchmarks/guidellm_tokenizer.py``), O output tokens, N requests, on ``/v1/completions``.
2. ``lodestar bench run`` runs against another freshly started instance with the same rate,
   lengths and count (a trace file with arrivals every 1/R s and unique prompts).
3. The TTFT means and medians must agree within ±10 % (exit status 1 otherwise); P90/P99,
   inter-token time and E2E are shown for information. Prompt and output lengths as the
   server counted them are checked too (a length mismatch would make the comparison moot).

With ``--time-scale S`` both instances run S× slower than real time: guidellm is given rate R/S
and its wall-clock latencies are divided by S, as ``lodestar bench --time-scale S`` does itself.
Writes ``out/benchmarks/guidellm_crosscheck.json`` (figures, commands, machine load).
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import REPO, Row, emulator, load_average, lodestar_argv, print_rows, run

from lodestar import tokenizer
from lodestar.workload.request import Prompt, RequestSpec
from lodestar.workload.segments import SegmentIds, unique_segment_base
from lodestar.workload.traces.lodestar_jsonl import dump_requests

GUIDELLM_VENV: Path = REPO / ".lodestar" / "guidellm-venv"
TOKENIZER_DIR: Path = REPO / ".lodestar" / "guidellm-tokenizer"


def ensure_guidellm() -> Path:
    exe = GUIDELLM_VENV / "bin" / "guidellm"
    if not exe.exists():
        run(["bash", str(REPO / "benchmarks" / "setup_guidellm.sh")])
    if not (TOKENIZER_DIR / "tokenizer.json").exists():
        py = GUIDELLM_VENV / "bin" / "python"
        run([str(py), str(REPO / "benchmarks" / "guidellm_tokenizer.py"), str(TOKENIZER_DIR), tokenizer._PIECE.pattern])
    return exe


def guidellm_version() -> str:
    py = GUIDELLM_VENV / "bin" / "python"
    out = subprocess.run(
        [str(py), "-c", "import importlib.metadata as m; print(m.version('guidellm'))"], capture_output=True, text=True
    )
    return out.stdout.strip()


def make_trace(path: Path, n: int, rate_rps: float, prompt_tokens: int, output_tokens: int, profile: str) -> None:
    """``n`` requests at a constant rate (or Poisson, seed 0), each prompt unique."""
    if profile == "constant":
        arrivals = np.arange(n) / rate_rps
    else:
        gaps = np.random.default_rng(0).exponential(1.0 / rate_rps, n)
        arrivals = np.concatenate([[0.0], np.cumsum(gaps[:-1])])
    ids = SegmentIds(unique_segment_base(f"guidellm-crosscheck:{path}"))
    requests = [
        RequestSpec(
            request_id=f"x-{k}",
            arrival_s=float(t),
            prompt=Prompt(prompt_tokens, ids.cover(prompt_tokens, tokenizer.BLOCK_SIZE), tokenizer.BLOCK_SIZE),
            output_tokens=output_tokens,
        )
        for k, t in enumerate(arrivals)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_requests(requests), encoding="utf-8")


def _stat(metric: dict[str, Any], key: str) -> float:
    ok = metric["successful"]
    return float(ok["mean"] if key == "mean" else ok["percentiles"][key])


def guidellm_figures(path: Path, time_scale: float) -> dict[str, float]:
    """Seconds of workload time from guidellm's JSON (its latencies are wall ms)."""
    bench = json.loads(path.read_text())["benchmarks"][0]
    m = bench["metrics"]
    to_s = 1e-3 / time_scale
    totals = m["request_totals"]
    return {
        "ttft_mean_s": _stat(m["time_to_first_token_ms"], "mean") * to_s,
        "ttft_p50_s": _stat(m["time_to_first_token_ms"], "p50") * to_s,
        "ttft_p90_s": _stat(m["time_to_first_token_ms"], "p90") * to_s,
        "ttft_p99_s": _stat(m["time_to_first_token_ms"], "p99") * to_s,
        "itl_mean_s": _stat(m["inter_token_latency_ms"], "mean") * to_s,
        "e2e_mean_s": _stat(m["request_latency"], "mean") / time_scale,
        "ok": float(totals["successful"]),
        "errors": float(totals["errored"] + totals["incomplete"]),
        "prompt_tokens_mean": _stat(m["prompt_token_count"], "mean"),
        "output_tokens_mean": _stat(m["output_token_count"], "mean"),
    }


def lodestar_figures(path: Path) -> dict[str, float]:
    data = json.loads(path.read_text())
    lat, summary = data["latency"], data["runs"][0]["summary"]
    ok = [r for r in data["records"] if r["error"] is None]
    return {
        "ttft_mean_s": lat["ttft_s"]["mean"],
        "ttft_p50_s": lat["ttft_s"]["p50"],
        "ttft_p90_s": lat["ttft_s"]["p90"],
        "ttft_p99_s": lat["ttft_s"]["p99"],
        "itl_mean_s": lat["tpot_s"]["mean"],
        "e2e_mean_s": lat["e2e_s"]["mean"],
        "ok": float(summary["n_requests"] - summary["n_errors"]),
        "errors": float(summary["n_errors"]),
        "prompt_tokens_mean": float(np.mean([r["server_prompt_tokens"] for r in ok])) if ok else math.nan,
        "output_tokens_mean": float(np.mean([r["output_tokens"] for r in ok])) if ok else math.nan,
        "send_lag_p99_wall_s": data["send_lag_wall"]["p99_s"],
    }


def main(
    rate: Annotated[float, typer.Option(help="requests/s (workload time)")] = 2.0,
    prompt_tokens: Annotated[int, typer.Option(help="prompt tokens per request")] = 512,
    output_tokens: Annotated[int, typer.Option(help="output tokens per request")] = 128,
    requests: Annotated[int, typer.Option(help="requests per run")] = 300,
    hardware: Annotated[str, typer.Option(help="emulated GPU of the instance")] = "A10G",
    model: Annotated[str, typer.Option(help="model profile of the instance")] = "llama-3-8b",
    profile: Annotated[str, typer.Option(help="arrivals: constant or poisson")] = "constant",
    time_scale: Annotated[float, typer.Option(help="emulator --time-scale (both runs)")] = 1.0,
    tolerance: Annotated[float, typer.Option(help="allowed relative TTFT difference")] = 0.10,
    out_dir: Annotated[Path, typer.Option(help="where traces and results go")] = REPO / "out" / "benchmarks",
) -> None:
    """Run guidellm, then lodestar bench, each against a fresh emulated instance; compare TTFT."""
    if profile not in ("constant", "poisson"):
        raise typer.BadParameter("--profile: constant or poisson")
    guidellm = ensure_guidellm()
    out_dir.mkdir(parents=True, exist_ok=True)
    gl_json = out_dir / "crosscheck-guidellm.json"
    ls_json = out_dir / "crosscheck-lodestar.json"
    trace = out_dir / "crosscheck-trace.jsonl"
    make_trace(trace, requests, rate, prompt_tokens, output_tokens, profile)
    emu_args = ["--hardware", hardware, "--model", model, "--time-scale", f"{time_scale:g}"]
    load_before = load_average()
    commands: dict[str, list[str]] = {}

    with emulator(emu_args, 1, "crosscheck-guidellm") as urls:
        commands["guidellm"] = [
            str(guidellm),
            "run",
            "--backend",
            f"kind=openai_http,target={urls[0]},model={model},request_format=/v1/completions",
            "--profile",
            f"kind={profile},rate={rate / time_scale:g}",
            "--constraint",
            f"kind=max_requests,count={requests}",
            "--data",
            f"kind=synthetic_text,prompt_tokens={prompt_tokens},output_tokens={output_tokens}",
            "--tokenizer",
            f"kind=huggingface_auto,model={TOKENIZER_DIR}",
            "--output",
            f"kind=json,path={gl_json}",
            "--disable-progress",
        ]
        run(commands["guidellm"], env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})

    with emulator(emu_args, 1, "crosscheck-lodestar") as urls:
        commands["lodestar"] = [
            *lodestar_argv(),
            "bench",
            "run",
            str(trace),
            "--url",
            urls[0],
            "--model",
            model,
            "--time-scale",
            f"{time_scale:g}",
            "--label",
            "lodestar-bench",
            "--json",
            str(ls_json),
            "--no-progress",
        ]
        run(commands["lodestar"])

    load_after = load_average()
    g = guidellm_figures(gl_json, time_scale)
    ls = lodestar_figures(ls_json)
    rows = [
        Row("TTFT mean", g["ttft_mean_s"], ls["ttft_mean_s"], tolerance=tolerance),
        Row("TTFT P50", g["ttft_p50_s"], ls["ttft_p50_s"], tolerance=tolerance),
        Row("TTFT P90", g["ttft_p90_s"], ls["ttft_p90_s"]),
        Row("TTFT P99", g["ttft_p99_s"], ls["ttft_p99_s"]),
        Row("ITL / TPOT mean", g["itl_mean_s"], ls["itl_mean_s"]),
        Row("E2E mean", g["e2e_mean_s"], ls["e2e_mean_s"], unit_scale=1.0, unit="s"),
    ]
    title = (
        f"guidellm vs lodestar bench · {hardware} {model} · {profile} {rate:g} req/s · "
        f"{prompt_tokens} in / {output_tokens} out · {requests} requests · time scale {time_scale:g}"
    )
    print_rows(title, "guidellm", "lodestar bench", rows)
    print(
        f"requests ok: guidellm {g['ok']:.0f} ({g['errors']:.0f} failed), lodestar {ls['ok']:.0f} "
        f"({ls['errors']:.0f} failed); server-counted prompt/output tokens: guidellm "
        f"{g['prompt_tokens_mean']:.1f}/{g['output_tokens_mean']:.1f}, lodestar "
        f"{ls['prompt_tokens_mean']:.1f}/{ls['output_tokens_mean']:.1f}"
    )
    print(f"load average (1/5/15 min) before {load_before}, after {load_after}")
    lengths_ok = all(
        math.isclose(f["prompt_tokens_mean"], prompt_tokens) and math.isclose(f["output_tokens_mean"], output_tokens)
        for f in (g, ls)
    )
    all_ok = g["errors"] == 0 and ls["errors"] == 0
    passed = all(r.passed for r in rows if r.tolerance is not None) and lengths_ok and all_ok
    result = {
        "benchmark": "guidellm_crosscheck",
        "passed": passed,
        "lengths_match": lengths_ok,
        "all_requests_ok": all_ok,
        "config": {
            "rate_rps": rate,
            "profile": profile,
            "prompt_tokens": prompt_tokens,
            "output_tokens": output_tokens,
            "requests": requests,
            "hardware": hardware,
            "model": model,
            "time_scale": time_scale,
            "tolerance": tolerance,
        },
        "rows": [r.to_json() for r in rows],
        "guidellm": g,
        "lodestar": ls,
        "commands": commands,
        "guidellm_version": guidellm_version(),
        "machine": {"load_before": load_before, "load_after": load_after, "cpus": os.cpu_count()},
        "python": platform.python_version(),
    }
    path = out_dir / "guidellm_crosscheck.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    print("PASS" if passed else "FAIL")
    if not passed:
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
