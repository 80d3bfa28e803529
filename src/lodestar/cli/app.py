"""Build the ``lodestar`` app from its command modules (no import-time registration)."""

from __future__ import annotations

import inspect

import typer

from lodestar.cli import (
    bench_cmd,
    collector_cmd,
    emulate_cmd,
    engine_cmd,
    gateway_cmd,
    grafana_cmd,
    history_cmd,
    infra_cmd,
    keys_cmd,
    peers_cmd,
    policy_cmd,
    replay_cmd,
    report_cmd,
    router_cmd,
    schemas_cmd,
    sim_cmd,
    trainer_cmd,
    up_cmd,
    workload_cmd,
)


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="lodestar",
        help="Lodestar: an online-learning request router for LLM inference fleets.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.command("up")(up_cmd.up)
    app.add_typer(infra_cmd.build(), name="infra")
    app.add_typer(schemas_cmd.build(), name="schemas")
    app.add_typer(engine_cmd.build(), name="engine")
    app.command("emulate")(emulate_cmd.emulate)
    app.add_typer(workload_cmd.build(), name="workload")
    app.add_typer(policy_cmd.build(), name="policy")
    sim_cmd.register(app)
    app.add_typer(bench_cmd.build(), name="bench")
    app.command("trainer")(trainer_cmd.trainer)
    app.add_typer(history_cmd.build(), name="history")
    app.command("collector")(collector_cmd.collector)
    app.command("router")(router_cmd.router)
    app.command("gateway")(gateway_cmd.gateway)
    app.add_typer(keys_cmd.build(), name="keys")
    app.add_typer(peers_cmd.build(), name="peers")
    app.add_typer(grafana_cmd.build(), name="grafana")
    app.command("report")(report_cmd.report)
    app.add_typer(replay_cmd.build(), name="replay")
    one_line_summaries(app)
    return app


def one_line_summaries(app: typer.Typer) -> None:
    """Each command's summary in its group's command list: the first paragraph of its
    docstring on one line (Typer's rich help keeps the docstring's line breaks there, so a
    summary broke off mid-sentence; the command's own ``--help`` page already joins them)."""
    for info in app.registered_commands:
        doc = info.help or (info.callback.__doc__ if info.callback is not None else None)
        if info.short_help is None and doc:
            info.short_help = " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())
    for group in app.registered_groups:
        if group.typer_instance is not None:
            one_line_summaries(group.typer_instance)


def main() -> None:
    build_app()()
