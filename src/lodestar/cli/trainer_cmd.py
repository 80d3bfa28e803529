"""``lodestar trainer``: run the trainer service."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer


def trainer(
    port: Annotated[int | None, typer.Option(help="port of /health and /metrics [8094]")] = None,
    publish_interval: Annotated[float | None, typer.Option(help="seconds between model versions [5]")] = None,
) -> None:
    """Join decisions with outcomes, train the predictor incrementally, publish model versions
    to the model topic. Resumes from the newest published model. Ctrl-C or SIGTERM stops."""
    from lodestar.bus.settings import KafkaSettings
    from lodestar.logs import configure_logging
    from lodestar.serving import PortInUseError, run_until_signal
    from lodestar.settings_input import SettingsInputError, load_settings
    from lodestar_trainer.service import TrainerService
    from lodestar_trainer.settings import TrainerSettings

    overrides: dict[str, Any] = {"port": port, "publish_interval_s": publish_interval}
    try:
        settings = load_settings(TrainerSettings, overrides, {"publish_interval_s": "--publish-interval"})
        kafka = load_settings(KafkaSettings)
    except SettingsInputError as exc:
        typer.echo(f"lodestar trainer: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level, settings.json_logs)
    service = TrainerService.build(settings, kafka)
    try:
        asyncio.run(run_until_signal(service.run))
    except PortInUseError as exc:
        typer.echo(f"lodestar trainer: {exc}", err=True)
        raise typer.Exit(1) from None


def main() -> None:
    typer.run(trainer)
