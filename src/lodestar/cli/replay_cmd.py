"""``lodestar replay``: re-run recorded traffic in the simulator, or evaluate policies off-policy
on the recorded decisions."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from lodestar.bus.settings import KafkaSettings
    from lodestar.learn.blob import ModelState
    from lodestar.replay.logged import LoggedWindow
    from lodestar.replay.ope import TargetPolicy

SOURCE_HELP = "read the recorded window from: a history service URL (default), --chdb DIR, or --kafka"


def _bounds(start: str, end: str) -> tuple[datetime, datetime]:
    """``--from`` and ``--to`` as times, checked before any source is read: an error names the
    option, and a window that ends before it starts is refused (it read nothing and said only
    that no request was recorded)."""
    from lodestar_history.params import parse_window

    try:
        return parse_window(start, end, datetime.now(UTC))
    except ValueError as exc:
        typer.echo(f"lodestar replay: {exc}", err=True)
        raise typer.Exit(2) from None


def _window(url: str | None, chdb: Path | None, kafka: bool, start: str, end: str, policy: str) -> LoggedWindow:
    from lodestar.replay.logged import from_history
    from lodestar.report.source import ApiSource, ChdbSource, ReportSourceError

    first, last = _bounds(start, end)
    try:
        if kafka:
            return _from_kafka(first, last)
        if chdb is not None:
            from lodestar_history.queries import QueryCatalog
            from lodestar_history.settings import HistorySettings

            source: ApiSource | ChdbSource = ChdbSource(chdb, QueryCatalog.load(HistorySettings().sql_dir / "queries"))
        else:
            source = ApiSource(url or "http://127.0.0.1:8090")
        try:
            return from_history(source, start, end, policy)
        finally:
            source.close()
    except (ReportSourceError, ValueError) as exc:
        typer.echo(f"lodestar replay: {exc}", err=True)
        raise typer.Exit(2) from None


def _from_kafka(first: datetime, last: datetime) -> LoggedWindow:
    from aiokafka.errors import KafkaError

    from lodestar.bus.settings import KafkaSettings
    from lodestar.replay.logged import from_kafka

    settings = KafkaSettings()
    try:
        return from_kafka(settings, first, last)
    except KafkaError as exc:
        typer.echo(f"lodestar replay: --kafka: {_kafka_unreachable(settings, exc)}", err=True)
        raise typer.Exit(2) from None


def _kafka_unreachable(settings: KafkaSettings, exc: Exception) -> str:
    return (
        f"cannot read the broker at {settings.bootstrap_servers} (LODESTAR_KAFKA_BOOTSTRAP_SERVERS): "
        f"{type(exc).__name__}: {exc}"
    )


def build() -> typer.Typer:
    app = typer.Typer(
        help="Replay recorded traffic (from history or Kafka) for offline evaluation.", no_args_is_help=True
    )

    @app.command("sim")
    def resimulate(
        policy: Annotated[list[str], typer.Option("--policy", "-p", help="profile(s) to re-run the traffic under")],
        cluster: Annotated[str, typer.Option(help="cluster preset or YAML to simulate")] = "hetero-mix8",
        start: Annotated[str, typer.Option("--from", help="window start (ISO 8601, epoch s, now-15m)")] = "now-1h",
        end: Annotated[str, typer.Option("--to", help="window end")] = "now",
        logged_policy: Annotated[str, typer.Option(help="only decisions of this policy ('' = all)")] = "",
        url: Annotated[str | None, typer.Option(help=SOURCE_HELP)] = None,
        chdb: Annotated[Path | None, typer.Option(help="history chDB directory (when no service runs)")] = None,
        kafka: Annotated[bool, typer.Option(help="read the decision/outcome topics (LODESTAR_KAFKA_*)")] = False,
        seeds: Annotated[int, typer.Option(min=1, help="seeds per policy")] = 1,
        json_path: Annotated[Path | None, typer.Option("--json", help="write the comparison as JSON")] = None,
        plots: Annotated[Path | None, typer.Option(help="directory for PNG plots")] = None,
    ) -> None:
        """Rebuild the recorded requests (arrivals, prompt sizes and prefix structure, output
        lengths) and re-run them in the simulator under each policy; print a comparison."""
        import torch

        from lodestar.cluster.spec import ClusterFileError, load_cluster
        from lodestar.sim.report import print_table, write_json, write_plots
        from lodestar.sim.run import make_policy, run_one

        torch.set_num_threads(1)
        profiles = [p.strip() for item in policy for p in item.split(",") if p.strip()]
        try:
            spec = load_cluster(cluster)
            for profile in profiles:
                make_policy(profile, spec, 0)
        except (ClusterFileError, ValueError) as exc:
            typer.echo(f"lodestar replay: {exc}", err=True)
            raise typer.Exit(2) from None
        window = _window(url, chdb, kafka, start, end, logged_policy)
        requests = window.requests()
        if not requests:
            typer.echo("lodestar replay: no recorded request with a known outcome in that window", err=True)
            raise typer.Exit(1)
        typer.echo(f"{len(requests)} recorded requests ({len(window.decisions)} decisions) re-run on {spec.name}")
        runs = [run_one(spec, requests, p, s) for p in profiles for s in range(seeds)]
        title = f"replay {start} → {end} on {spec.name}"
        print_table(runs, title)
        meta = {"cluster": spec.name, "from": start, "to": end, "n_requests": len(requests), "seeds": seeds}
        if json_path is not None:
            write_json(json_path, runs, meta)
        if plots is not None:
            write_plots(plots, runs, title)

    @app.command("ope")
    def off_policy(
        target: Annotated[
            list[str],
            typer.Option(
                "--target",
                "-t",
                help="logged | min:<feature> (e.g. min:inflight_requests_log) | model:<blob.npz> | model:latest",
            ),
        ],
        start: Annotated[str, typer.Option("--from", help="window start")] = "now-1h",
        end: Annotated[str, typer.Option("--to", help="window end")] = "now",
        logged_policy: Annotated[str, typer.Option(help="only decisions of this policy ('' = all)")] = "",
        url: Annotated[str | None, typer.Option(help=SOURCE_HELP)] = None,
        chdb: Annotated[Path | None, typer.Option(help="history chDB directory (when no service runs)")] = None,
        kafka: Annotated[bool, typer.Option(help="read the decision/outcome topics (LODESTAR_KAFKA_*)")] = False,
        reward_model: Annotated[
            str | None, typer.Option(help="model for the doubly-robust correction: <blob.npz> or latest")
        ] = None,
        json_path: Annotated[Path | None, typer.Option("--json", help="write the estimates as JSON")] = None,
    ) -> None:
        """Estimate each target policy's mean TTFT on the recorded decisions (IPS, SNIPS and,
        with a reward model, doubly robust), with 95 % bootstrap intervals."""
        from rich.console import Console
        from rich.table import Table

        from lodestar.replay.ope import FeatureArgmin, LoggedPolicy, ModelPolicy, evaluate

        window = _window(url, chdb, kafka, start, end, logged_policy)
        targets: list[TargetPolicy] = []
        for name in target:
            if name == "logged":
                targets.append(LoggedPolicy())
            elif name.startswith("min:"):
                targets.append(FeatureArgmin(name[4:]))
            elif name.startswith("model:"):
                targets.append(ModelPolicy(_model(name[6:])))
            else:
                raise typer.BadParameter(f"--target {name!r}: expected logged, min:<feature> or model:<blob|latest>")
        reward = ModelPolicy(_model(reward_model)) if reward_model else None
        table = Table(title=f"Off-policy estimates of mean TTFT, {len(window.decisions)} logged decisions")
        for col in ("target", "judged", "matched", "observed", "IPS", "SNIPS", "DR", "95 % CI"):
            table.add_column(col, justify="right")
        estimates = []
        for policy_ in targets:
            try:
                e = evaluate(window.decisions, policy_, reward)
            except ValueError as exc:
                typer.echo(f"lodestar replay: {exc}", err=True)
                continue
            estimates.append(e)
            dr = "—" if e.dr_s is None else f"{e.dr_s:.3f}"
            table.add_row(
                e.policy, str(e.n), str(e.matched), f"{e.observed_mean_s:.3f}", f"{e.ips_s:.3f}",
                f"{e.snips_s:.3f}", dr, f"[{e.ci_low_s:.3f}, {e.ci_high_s:.3f}]",
            )  # fmt: skip
        Console(width=160).print(table)
        if json_path is not None:
            json_path.write_text(json.dumps([e.__dict__ for e in estimates], indent=2))
        if not estimates:
            raise typer.Exit(1)

    return app


def _model(spec: str) -> ModelState:
    """A model state from a blob file, or ``latest`` from the model topic."""
    from lodestar.learn.blob import BlobError, decode_blob

    try:
        if spec == "latest":
            return _latest_model()
        return decode_blob(Path(spec).read_bytes())
    except (OSError, BlobError) as exc:
        raise typer.BadParameter(f"model {spec!r}: {exc}") from None


def _latest_model() -> ModelState:
    import asyncio

    from aiokafka.errors import KafkaError

    from lodestar.bus.model_topic import newest_model_update
    from lodestar.bus.settings import KafkaSettings
    from lodestar.learn.blob import decode_blob

    settings = KafkaSettings()
    try:
        newest = asyncio.run(newest_model_update(settings, idle_s=1.5))
    except KafkaError as exc:
        raise OSError(_kafka_unreachable(settings, exc)) from None
    if newest is None:
        raise OSError("no model on the model topic")
    return decode_blob(newest.weights)
