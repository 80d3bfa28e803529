"""``lodestar up``: the whole system on this machine, no Docker."""

from __future__ import annotations

import shlex
import signal
import threading
from typing import Annotated

import typer


def traffic_example(gateway_url: str) -> list[str]:
    """The load-generator command ``up`` suggests once ready (argv, ``lodestar`` first)."""
    return ["lodestar", "bench", "run", "azure-conv", "--url", gateway_url, "--rate", "2", "--duration", "60"]


def up(
    cluster: Annotated[str, typer.Option(help="emulated fleet: preset name or cluster YAML")] = "hetero-mix8",
    time_scale: Annotated[float, typer.Option(min=1.0, help="emulator wall seconds per emulated second")] = 1.0,
    profile: Annotated[str, typer.Option(help="routing profile of the router (`lodestar policy list`)")] = "lodestar",
    gateway_port: Annotated[int, typer.Option(help="port of the OpenAI-compatible gateway")] = 8080,
    broker_port: Annotated[int, typer.Option(help="port of the local Kafka-protocol broker")] = 9092,
    emulator_base_port: Annotated[int, typer.Option(help="first port of the emulated instances")] = 8001,
    history: Annotated[bool, typer.Option(help="run the history service (ClickHouse on chDB)")] = True,
    embedded_router: Annotated[
        bool,
        typer.Option(
            "--embedded-router/--separate-router",
            help="the router inside the gateway's process (no HTTP exchange per request), or its own process "
            "(the compose layout)",
        ),
    ] = True,
) -> None:
    """Start everything locally: broker, history (chDB), an emulated fleet, collector, trainer
    and gateway with the router in its process (or the router as its own process:
    --separate-router). Prints where to send traffic; Ctrl-C stops it all."""
    from lodestar.cluster.spec import ClusterFileError, load_cluster
    from lodestar.localinfra.process import ProcessStartError
    from lodestar.localinfra.settings import LocalInfraSettings
    from lodestar.localinfra.stack import Component, Stack, StackConfig, StackPorts

    try:
        spec = load_cluster(cluster)
    except ClusterFileError as exc:
        typer.echo(f"lodestar up: {exc}", err=True)
        raise typer.Exit(2) from None
    ports = StackPorts(broker=broker_port, gateway=gateway_port, emulator_base=emulator_base_port)
    config = StackConfig(
        cluster=spec,
        ports=ports,
        time_scale=time_scale,
        profile=profile,
        history=history,
        embedded_router=embedded_router,
    )
    stack = Stack(config, LocalInfraSettings())

    def ready(comp: Component) -> None:
        typer.echo(f"  {comp.name:<10} ready" + (f"  {comp.url}" if comp.url else ""))

    typer.echo(f"lodestar up: {spec.name} ({len(spec.instances())} emulated instances), profile {profile}")
    try:
        stack.start(on_ready=ready)
    except ProcessStartError as exc:
        typer.echo(f"lodestar up: a component did not start:\n{exc}", err=True)
        raise typer.Exit(1) from None
    gateway = stack.component("gateway").url or f"http://127.0.0.1:{gateway_port}"
    typer.echo(
        f"\nSend OpenAI-style traffic to {gateway}/v1 (model {spec.model}); e.g.\n"
        f"  {shlex.join(traffic_example(gateway))}\n"
        f"Router admin token: {config.admin_token} (port {ports.router_admin}); logs: {stack.local.log_dir}/\n"
        "Ctrl-C stops everything."
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    dead = stack.wait(stop.is_set)
    if dead:
        for comp in dead:
            typer.echo(
                f"lodestar up: {comp.name} exited; its log since it started:\n{comp.process.run_log_tail()}", err=True
            )
    typer.echo("stopping…")
    stack.stop()
    if dead:
        raise typer.Exit(1)
