"""``lodestar infra``: install, start, stop and inspect the local broker."""

from __future__ import annotations

from typing import Annotated

import typer

from lodestar.localinfra.broker import broker_process, install_tansu, start_broker
from lodestar.localinfra.settings import LocalInfraSettings


def build() -> typer.Typer:
    app = typer.Typer(
        help="Local infrastructure without Docker: the tansu Kafka-protocol broker.", no_args_is_help=True
    )

    @app.command()
    def install() -> None:
        """Download the tansu broker binary into .lodestar/bin (idempotent)."""
        path = install_tansu(LocalInfraSettings())
        typer.echo(f"tansu installed at {path}")

    @app.command()
    def start(
        port: Annotated[int | None, typer.Option(help="broker port (default: LODESTAR_LOCAL_BROKER_PORT)")] = None,
    ) -> None:
        """Start the broker on 127.0.0.1 and wait until it accepts connections (idempotent)."""
        addr = start_broker(LocalInfraSettings(), port)
        typer.echo(f"broker ready at {addr}")

    @app.command()
    def stop() -> None:
        """Stop the broker started by `lodestar infra start`."""
        settings = LocalInfraSettings()
        stopped = broker_process(settings).stop()
        typer.echo("broker stopped" if stopped else "broker was not running")

    @app.command()
    def status() -> None:
        """Say whether the local broker runs."""
        settings = LocalInfraSettings()
        pid = broker_process(settings).pid()
        typer.echo(f"broker running (pid {pid})" if pid else "broker not running")
        raise typer.Exit(0 if pid else 1)

    return app
