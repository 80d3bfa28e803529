"""``lodestar emulate``: serve emulated vLLM instances (OpenAI API + ``/metrics``) on local ports."""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import structlog
import typer

from lodestar.cluster.spec import ClusterFileError, InstanceSpec, load_cluster
from lodestar.engine.profiles import UnknownProfileError, instance_profile
from lodestar.logs import configure_logging
from lodestar.settings_input import SettingsInputError, load_settings

if TYPE_CHECKING:
    from lodestar.emulator.settings import EmulatorSettings


def emulate(
    cluster: Annotated[
        str | None, typer.Option(help="a cluster preset (e.g. hetero-mix8) or YAML file: one instance per entry")
    ] = None,
    hardware: Annotated[str | None, typer.Option(help="one instance on this GPU profile (e.g. H100-SXM)")] = None,
    model: Annotated[str, typer.Option(help="model profile of the single instance")] = "llama-3-8b",
    tp: Annotated[int, typer.Option(min=1, help="tensor-parallel GPUs of the single instance")] = 1,
    instance_id: Annotated[str | None, typer.Option(help="id of the single instance (default <hardware>-0)")] = None,
    port: Annotated[
        int,
        typer.Option(
            "--port", "--base-port", min=0, max=65535, help="port of the first instance, the next ones follow (0: any)"
        ),
    ] = 8001,
    host: Annotated[
        str | None, typer.Option(help="listen address (default 127.0.0.1; env LODESTAR_EMULATOR_HOST)")
    ] = None,
    time_scale: Annotated[
        float | None,
        typer.Option(help="wall seconds per emulated second, >= 1 (default 1; env LODESTAR_EMULATOR_TIME_SCALE)"),
    ] = None,
    default_max_tokens: Annotated[
        int | None, typer.Option(help="tokens for chat requests without max_tokens (default 128)")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="seed of ids, output text and fault decisions (default 0)")] = None,
    admin_port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="also serve the fleet control API on this port")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="log level (default INFO)")] = None,
) -> None:
    """Serve emulated vLLM instances: a fleet from --cluster, or one from --hardware/--model.

    Each instance serves vLLM's OpenAI API, /health and /metrics, and takes faults on
    POST /admin/fault. Ctrl-C or SIGTERM stops.
    """
    # Emulator imports here, so that other `lodestar` commands start fast.
    from lodestar.emulator.settings import EmulatorSettings
    from lodestar.localinfra.ports import HIGHEST as MAX_PORT

    overrides: dict[str, Any] = {
        "host": host,
        "time_scale": time_scale,
        "default_max_tokens": default_max_tokens,
        "seed": seed,
        "log_level": log_level,
    }
    try:
        settings = load_settings(EmulatorSettings, overrides)
    except SettingsInputError as exc:
        _fail(str(exc))
    specs = _instance_specs(cluster, hardware, model, tp, instance_id)
    if port and port + len(specs) - 1 > MAX_PORT:
        _fail(f"--port {port}: {len(specs)} instances need ports up to {port + len(specs) - 1} > {MAX_PORT}")
    configure_logging(settings.log_level, settings.json_logs)
    code = asyncio.run(_serve(specs, port, settings, admin_port))
    if code:
        raise typer.Exit(code)


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"lodestar emulate: {message}", err=True)
    raise typer.Exit(code)


def _instance_specs(
    cluster: str | None, hardware: str | None, model: str, tp: int, instance_id: str | None
) -> list[InstanceSpec]:
    if cluster is not None and hardware is not None:
        _fail("give either --cluster (a fleet) or --hardware (one instance), not both")
    if cluster is not None:
        try:
            return load_cluster(cluster).instances()
        except ClusterFileError as exc:
            _fail(str(exc))
    if hardware is None:
        _fail("give --cluster NAME|FILE for a fleet or --hardware NAME for one instance")
    try:
        profile = instance_profile(hardware, model, tp)
    except UnknownProfileError as exc:
        _fail(f"--{exc.kind}: {exc.args[0]}")
    return [InstanceSpec(instance_id=instance_id or f"{hardware.lower()}-0", profile=profile)]


async def _serve(specs: list[InstanceSpec], port: int, settings: EmulatorSettings, admin_port: int | None) -> int:
    from lodestar.emulator.fleet import EmulatedFleet
    from lodestar.gc_tuning import freeze_startup_heap
    from lodestar.localinfra.ports import PortInUseError

    log = structlog.get_logger("lodestar.emulator")
    try:
        fleet = EmulatedFleet.build(specs, port, settings, log, admin_port)
        fleet.start()
    except (PortInUseError, ValueError) as exc:
        typer.echo(f"lodestar emulate: {exc}", err=True)
        return 1 if isinstance(exc, PortInUseError) else 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    typer.echo(f"lodestar emulate: {len(fleet.instances)} instance(s), time scale {settings.time_scale:g}")
    for inst in fleet.instances.values():
        typer.echo(f"  {inst.instance_id:<16} {inst.spec.hardware_name:<10} {inst.model_name:<14} {inst.url}")
    if fleet.control is not None:
        typer.echo(f"  {'control':<16} {fleet.control.url}/admin/instances")
    freeze_startup_heap()  # the engines' steps must not wait for full collections of it
    log.info(
        "emulator ready",
        instances={i.instance_id: i.url for i in fleet.instances.values()},
        time_scale=settings.time_scale,
    )
    await stop.wait()
    log.info("emulator stopping")
    await fleet.stop()
    log.info("emulator stopped")
    return 0
