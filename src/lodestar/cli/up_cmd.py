"""``lodestar up``: the whole system on this machine, no Docker."""

from __future__ import annotations

import re
import shlex
import signal
import threading
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from lodestar.localinfra.ports import HIGHEST as MAX_PORT
from lodestar.localinfra.stack_ports import StackPorts

if TYPE_CHECKING:
    from lodestar.localinfra.stack import Component, Stack

_DEFAULT = StackPorts()
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _port(what: str) -> Any:
    return typer.Option(min=1, max=MAX_PORT, help=f"port of {what}")


def traffic_example(gateway_url: str) -> list[str]:
    """The load-generator command ``up`` suggests once ready (argv, ``lodestar`` first)."""
    return ["lodestar", "bench", "run", "azure-conv", "--url", gateway_url, "--rate", "2", "--duration", "60"]


def up(
    cluster: Annotated[str, typer.Option(help="emulated fleet: preset name or cluster YAML")] = "hetero-mix8",
    time_scale: Annotated[float, typer.Option(min=1.0, help="emulator wall seconds per emulated second")] = 1.0,
    profile: Annotated[str, typer.Option(help="routing profile of the router (`lodestar policy list`)")] = "lodestar",
    gateway_port: Annotated[int, _port("the OpenAI-compatible gateway")] = _DEFAULT.gateway,
    broker_port: Annotated[int, _port("the local Kafka-protocol broker")] = _DEFAULT.broker,
    emulator_base_port: Annotated[
        int, _port("the first emulated instance (the others take the ports after it)")
    ] = _DEFAULT.emulator_base,
    router_port: Annotated[
        int, _port("the router's API (in the gateway's process unless --separate-router)")
    ] = _DEFAULT.router,
    router_admin_port: Annotated[int, _port("the router's admin API (token-protected)")] = _DEFAULT.router_admin,
    collector_port: Annotated[int, _port("the collector's health and metrics")] = _DEFAULT.collector,
    trainer_port: Annotated[int, _port("the trainer's health and metrics")] = _DEFAULT.trainer,
    history_port: Annotated[int, _port("the history service (Grafana's data source)")] = _DEFAULT.history,
    name: Annotated[
        str,
        typer.Option(
            help="name of this stack: its pid and log files and its data directory under .lodestar/ carry it, "
            "so two stacks (on other ports) can run side by side"
        ),
    ] = "stack",
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
    from lodestar.localinfra.settings import LocalInfraSettings
    from lodestar.localinfra.stack import Stack, StackConfig
    from lodestar.localinfra.stack_lock import StackLock, StackLockedError

    if not _NAME.fullmatch(name):
        _fail(f"--name {name!r}: use letters, digits, '.', '_' and '-' (it names files)")
    try:
        spec = load_cluster(cluster)
    except ClusterFileError as exc:
        _fail(str(exc))
    ports = StackPorts(
        broker=broker_port,
        gateway=gateway_port,
        router=router_port,
        router_admin=router_admin_port,
        collector=collector_port,
        trainer=trainer_port,
        history=history_port,
        emulator_base=emulator_base_port,
    )
    n_instances = len(spec.instances())
    if emulator_base_port + n_instances - 1 > MAX_PORT:
        _fail(
            f"--emulator-base-port {emulator_base_port}: {n_instances} instances would need ports up to "
            f"{emulator_base_port + n_instances - 1} (the highest is {MAX_PORT})"
        )
    for first, second, port in ports.clashes(n_instances, history):
        _fail(f"{_option(first, ports, n_instances)} and {_option(second, ports, n_instances)} both take port {port}")
    config = StackConfig(
        cluster=spec,
        ports=ports,
        name=name,
        time_scale=time_scale,
        profile=profile,
        history=history,
        embedded_router=embedded_router,
    )
    stack = Stack(config, LocalInfraSettings())
    try:
        with StackLock(stack.local.run_dir, name):
            _run(stack)
    except StackLockedError as exc:
        _fail(f"{exc}; stop it first (Ctrl-C where it runs), or start this one with another --name and other ports")


def _run(stack: Stack) -> None:
    """Start ``stack`` (after stopping what an earlier, killed run left), serve until Ctrl-C
    or a component dies, then stop it all; exit status 1 when a component died."""
    from lodestar.localinfra.ports import PortInUseError, bind_socket
    from lodestar.localinfra.process import ProcessStartError

    config, spec = stack.config, stack.config.cluster
    leftovers = stack.running()
    if leftovers:
        typer.echo(
            "lodestar up: stopping what an earlier run left running: "
            + ", ".join(f"{c.name} (pid {c.process.pid()})" for c in leftovers)
        )
        stack.stop()

    n_instances = len(spec.instances())
    for role, port in config.ports.roles(n_instances, config.history):
        owner = "an emulated instance's" if role == "emulator" else f"the {role.replace('_', ' ')}"
        try:
            bind_socket("127.0.0.1", port, owner).close()
        except PortInUseError as exc:
            typer.echo(f"lodestar up: {exc}; choose another with {_option(role, config.ports, n_instances)}", err=True)
            raise typer.Exit(1) from None

    def ready(comp: Component) -> None:
        typer.echo(f"  {comp.name:<10} ready" + (f"  {comp.url}" if comp.url else ""))

    typer.echo(f"lodestar up: {spec.name} ({n_instances} emulated instances), profile {config.profile}")
    try:
        stack.start(on_ready=ready)
    except ProcessStartError as exc:
        typer.echo(f"lodestar up: a component did not start:\n{exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("lodestar up: interrupted while starting; what had started is stopped", err=True)
        raise typer.Exit(130) from None
    gateway = stack.component("gateway").url or f"http://127.0.0.1:{config.ports.gateway}"
    typer.echo(
        f"\nSend OpenAI-style traffic to {gateway}/v1 (model {spec.model}); e.g.\n"
        f"  {shlex.join(traffic_example(gateway))}\n"
        f"Router admin token: {config.admin_token} (port {config.ports.router_admin}); logs: {stack.local.log_dir}/\n"
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


def _option(role: str, ports: StackPorts, n_instances: int) -> str:
    """The option that set a role's port, as an error names it."""
    if role == "emulator":
        last = ports.emulator_base + n_instances - 1
        return f"--emulator-base-port (the emulated instances take {ports.emulator_base}–{last})"
    return f"--{role.replace('_', '-')}-port"


def _fail(message: str) -> NoReturn:
    typer.echo(f"lodestar up: {message}", err=True)
    raise typer.Exit(2)
