"""``lodestar gateway`` (also ``python -m lodestar_gateway``): the OpenAI-compatible front door.

Settings come from ``LODESTAR_GATEWAY_*`` and ``LODESTAR_KAFKA_*``; the options below override
them. The upstream API key is read only from ``LODESTAR_GATEWAY_UPSTREAM_API_KEY``. A bad
option or profile prints one line naming it and exits with status 2; a port in use exits
with status 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
from typing import Annotated, Any, NoReturn

import typer

from lodestar.bus.settings import KafkaSettings
from lodestar.logs import configure_logging, quiet_kafka_client
from lodestar.serving import event_loop_factory
from lodestar.settings_input import SettingsInputError, load_settings

#: options named otherwise than ``--field-name``
_OPTION_OF = {"route_timeout_s": "--route-timeout", "staleness_s": "--staleness", "remove_after_s": "--remove-after"}


def gateway(
    host: Annotated[str | None, typer.Option(help="listen address [127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="port of the OpenAI API, /health and /metrics [8080]")] = None,
    router_url: Annotated[
        str | None, typer.Option(help="the router's base URL; '' decides locally [http://127.0.0.1:8091]")
    ] = None,
    route_timeout: Annotated[
        float | None,
        typer.Option(help="base seconds per route call (+ ROUTE_TIMEOUT_PER_1K_TOKENS_S per 1k prompt tokens) [0.05]"),
    ] = None,
    fallback_profile: Annotated[
        str | None, typer.Option(help="local policy when the router fails: a profile name or YAML path [least-request]")
    ] = None,
    max_attempts: Annotated[int | None, typer.Option(help="instances tried when connections fail, 1-10 [3]")] = None,
    staleness: Annotated[
        float | None, typer.Option(help="seconds after which an instance's state is stale (unhealthy) [2]")
    ] = None,
    remove_after: Annotated[
        float | None, typer.Option(help="seconds of silence after which an instance is forgotten [30]")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="log level [INFO]")] = None,
) -> None:
    """Serve the OpenAI API (chat/completions, completions, models): ask the router where each
    request goes (local fallback when it is late or down), forward it, measure TTFT/TPOT/E2E,
    send feedback and publish one outcome per request. Ctrl-C or SIGTERM stops (buffered
    events are flushed first)."""
    # Service imports here, so that other `lodestar` commands start fast.
    from lodestar.policy.profile_spec import ProfileError
    from lodestar_gateway.service import EmbeddedRouterError, GatewayService, PortInUseError, serve
    from lodestar_gateway.settings import GatewaySettings
    from lodestar_router.settings import RouterSettings

    overrides: dict[str, Any] = {
        "host": host,
        "port": port,
        "router_url": router_url,
        "route_timeout_s": route_timeout,
        "fallback_profile": fallback_profile,
        "max_attempts": max_attempts,
        "staleness_s": staleness,
        "remove_after_s": remove_after,
        "log_level": log_level,
    }
    try:
        settings = load_settings(GatewaySettings, overrides, _OPTION_OF)
        kafka = load_settings(KafkaSettings)
    except SettingsInputError as exc:
        _fail(str(exc))
    router_settings = None
    if settings.router_embedded:
        try:
            router_settings = load_settings(RouterSettings)
        except SettingsInputError as exc:
            _fail(f"invalid {exc.where} (embedded router): {exc.reason}")
    configure_logging(settings.log_level, settings.json_logs)
    quiet_kafka_client()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    try:
        service = GatewayService.build(settings, kafka, router_settings)
    except EmbeddedRouterError as exc:
        _fail(str(exc))
    except ProfileError as exc:
        _fail(f"invalid --fallback-profile: {exc}")
    except ValueError as exc:  # KeyConfigError, limits of unknown keys: the message names the setting
        _fail(f"invalid API keys or limits: {exc}")
    _raise_open_files_limit()
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(serve(service))
    except PortInUseError as exc:
        _fail(str(exc), code=1)


def _raise_open_files_limit() -> None:
    """Every stream holds two sockets (client, instance): take the hard limit on open files."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"lodestar gateway: {message}", err=True)
    raise typer.Exit(code)


def main() -> None:
    """Entry point of ``python -m lodestar_gateway``."""
    typer.run(gateway)
