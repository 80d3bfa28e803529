"""``lodestar engine``: inspect the engine model's profiles and validate it against references."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from lodestar.engine.calibration import TOLERANCE, validate
from lodestar.engine.profiles import hardware_profiles, instance_profile, model_profiles
from lodestar.engine.steptime import StepCostModel, batch_work


def build() -> typer.Typer:
    app = typer.Typer(help="The engine model: profiles and calibration.", no_args_is_help=True)

    @app.command("validate")
    def validate_cmd(
        json_path: Annotated[Path | None, typer.Option("--json", help="also write the rows as JSON")] = None,
    ) -> None:
        """Compare the model with every reference point of CALIBRATION.md it covers (±25 % target)."""
        rows, skipped = validate()
        table = Table(title="Engine model vs. published reference points")
        for col in ("source", "instance", "point", "model", "reference", "error", "ok"):
            table.add_column(col, justify="right" if col in ("model", "reference", "error") else "left")
        for r in rows:
            err = f"{r.error_frac * 100:+.1f}%"
            ok = "yes" if r.within else "NO"
            if r.kind == "bound":
                ok = "yes (≥ floor)" if r.within else "NO (below floor)"
            table.add_row(
                r.source, r.instance, f"{r.metric}: {r.point}", f"{r.model_value:.2f}", f"{r.reference:.2f}", err, ok
            )
        console = Console(width=160)
        console.print(table)
        points = [r for r in rows if r.kind == "point"]
        worst = max(points, key=lambda r: abs(r.error_frac))
        console.print(
            f"{sum(r.within for r in points)}/{len(points)} points within ±{TOLERANCE:.0%}; "
            f"worst {worst.error_frac * 100:+.1f}% ({worst.source}, {worst.point})"
        )
        console.print("Not covered, and why:")
        for s in skipped:
            console.print(f"- {s.source}: {s.reason}")
        if json_path is not None:
            json_path.write_text(
                json.dumps(
                    {"rows": [r.model_dump() for r in rows], "not_covered": [s.model_dump() for s in skipped]},
                    indent=2,
                )
            )
        if not all(r.within for r in rows):
            raise typer.Exit(1)

    @app.command("profiles")
    def profiles_cmd(
        model: Annotated[str, typer.Option(help="model profile to show per GPU")] = "llama-3-8b",
    ) -> None:
        """Per GPU: KV capacity, batch limits, a decode step and prefill speed for MODEL."""
        if model not in model_profiles():
            typer.echo(f"unknown model {model!r}; known: {', '.join(sorted(model_profiles()))}", err=True)
            raise typer.Exit(2)
        table = Table(title=f"{model} on each GPU (TP1)")
        for col in ("gpu", "KV tokens", "max_model_len", "batched tokens", "max seqs", "decode step", "prefill tok/s"):
            table.add_column(col, justify="right")
        for name in hardware_profiles():
            p = instance_profile(name, model)
            cost = StepCostModel(p)
            decode = cost.step_time(*batch_work([(1, 1024)]))
            prefill = p.batched_tokens / cost.step_time(*batch_work([(p.batched_tokens, 0)]))
            table.add_row(
                name,
                f"{p.kv_capacity_tokens:,}",
                f"{p.context_limit:,}",
                str(p.batched_tokens),
                str(p.seqs_limit),
                f"{decode * 1e3:.1f} ms",
                f"{prefill:,.0f}",
            )
        Console(width=160).print(table)

    return app
