"""``lodestar router`` (also ``python -m lodestar_router``): route requests with a policy profile.

Settings come from ``LODESTAR_ROUTER_*`` and ``LODESTAR_KAFKA_*``; the options below override
them. The admin token is read only from ``LODESTAR_ROUTER_ADMIN_TOKEN`` (never an option, so it
stays out of process listings). A bad option or profile prints one line naming it and exits
with status 2; a port in use exits with status 1.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, NoReturn

import typer

from lodestar.bus.settings import KafkaSettings
from lodestar.logs import configure_logging, quiet_kafka_client
from lodestar.policy.profile_spec import ProfileError
from lodestar.serving import event_loop_factory
from lodestar.settings_input import SettingsInputError, load_settings

#: options named otherwise than ``--field-name``
_OPTION_OF = {"staleness_s": "--staleness", "remove_after_s": "--remove-after"}


def router(
    profile: Annotated[
        str | None, typer.Option(help="policy profile: a shipped name or a YAML path [lodestar]")
    ] = None,
    host: Annotated[str | None, typer.Option(help="address of /v1/route, /v1/feedback, /health… [127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="port of the public API [8091]")] = None,
    admin_host: Annotated[str | None, typer.Option(help="address of /admin/* [127.0.0.1]")] = None,
    admin_port: Annotated[
        int | None, typer.Option(help="port of /admin/* (opened only if LODESTAR_ROUTER_ADMIN_TOKEN is set) [8095]")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="seed of the policy's stochastic plugins [0]")] = None,
    staleness: Annotated[
        float | None, typer.Option(help="seconds after which an instance's state is stale (unhealthy) [2]")
    ] = None,
    remove_after: Annotated[
        float | None, typer.Option(help="seconds of silence after which an instance is forgotten [30]")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="log level [INFO]")] = None,
) -> None:
    """Answer POST /v1/route with the instance the policy picks and publish every decision;
    follow instance states and model updates on Kafka. Ctrl-C or SIGTERM stops (buffered
    decision events are flushed first)."""
    from lodestar_router.service import PortInUseError, RouterService, serve
    from lodestar_router.settings import RouterSettings

    overrides: dict[str, Any] = {
        "profile": profile,
        "host": host,
        "port": port,
        "admin_host": admin_host,
        "admin_port": admin_port,
        "seed": seed,
        "staleness_s": staleness,
        "remove_after_s": remove_after,
        "log_level": log_level,
    }
    try:
        settings = load_settings(RouterSettings, overrides, _OPTION_OF)
        kafka = load_settings(KafkaSettings)
    except SettingsInputError as exc:
        _fail(str(exc))
    configure_logging(settings.log_level, settings.json_logs)
    quiet_kafka_client()
    try:
        service = RouterService.build(settings, kafka)
    except ProfileError as exc:
        _fail(f"invalid --profile: {exc}")
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(serve(service))
    except PortInUseError as exc:
        _fail(str(exc), code=1)


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"lodestar router: {message}", err=True)
    raise typer.Exit(code)


def main() -> None:
    """Entry point of ``python -m lodestar_router``."""
    typer.run(router)
