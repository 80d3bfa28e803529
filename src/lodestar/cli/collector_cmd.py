"""``lodestar collector`` (also ``python -m lodestar_collector``): scrape instances, publish their state.

Settings come from ``LODESTAR_COLLECTOR_*`` and ``LODESTAR_KAFKA_*``; the options below override
them. A bad option or instance list prints one line naming it and exits with status 2.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from lodestar.bus.settings import KafkaSettings
from lodestar.logs import configure_logging
from lodestar.settings_input import SettingsInputError, load_settings

#: options named otherwise than ``--field-name``
_OPTION_OF = {"interval_s": "--interval", "timeout_s": "--timeout"}


def collector(
    instances_file: Annotated[
        Path | None,
        typer.Option(help="YAML list of instances, re-read on change (env LODESTAR_COLLECTOR_INSTANCES_FILE)"),
    ] = None,
    instance: Annotated[
        list[str] | None,
        typer.Option(
            "--instance",
            "-i",
            help="a static instance ID=URL (repeatable; env LODESTAR_COLLECTOR_INSTANCES, comma-separated)",
        ),
    ] = None,
    interval: Annotated[float | None, typer.Option(help="scrape period in seconds, <= 0.5 [0.25]")] = None,
    timeout: Annotated[float | None, typer.Option(help="per-request deadline in seconds [0.5]")] = None,
    failure_threshold: Annotated[
        int | None, typer.Option(help="consecutive failures before an instance is unhealthy [3]")
    ] = None,
    host: Annotated[str | None, typer.Option(help="address of the own /health and /metrics [127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="port of the own /health and /metrics [8092]")] = None,
    log_level: Annotated[str | None, typer.Option(help="log level [INFO]")] = None,
) -> None:
    """Scrape every instance's /metrics every --interval and publish one InstanceState per scrape
    to the instance-state topic. Ctrl-C or SIGTERM stops (buffered states are flushed first)."""
    # Service imports here, so that other `lodestar` commands start fast.
    from lodestar_collector.config import InstancesConfigError
    from lodestar_collector.service import CollectorService, PortInUseError, serve
    from lodestar_collector.settings import CollectorSettings

    overrides: dict[str, Any] = {
        "instances_file": instances_file,
        "interval_s": interval,
        "timeout_s": timeout,
        "failure_threshold": failure_threshold,
        "host": host,
        "port": port,
        "log_level": log_level,
    }
    try:
        settings = load_settings(CollectorSettings, overrides, _OPTION_OF)
        kafka = load_settings(KafkaSettings)
    except SettingsInputError as exc:
        _fail(str(exc))
    configure_logging(settings.log_level, settings.json_logs)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    try:
        service = CollectorService.build(settings, kafka, instance or [])
    except InstancesConfigError as exc:
        _fail(str(exc))
    if not service.scraper.targets and settings.instances_file is None:
        _fail("no instances: give --instances-file FILE or --instance ID=URL (or LODESTAR_COLLECTOR_INSTANCES)")
    try:
        asyncio.run(serve(service))
    except PortInUseError as exc:
        _fail(str(exc), code=1)


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"lodestar collector: {message}", err=True)
    raise typer.Exit(code)


def main() -> None:
    """Entry point of ``python -m lodestar_collector``."""
    typer.run(collector)
