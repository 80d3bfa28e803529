"""Start a peer router in front of worker URLs, wait until it can route, stop it.

The router runs as a :class:`~lodestar.localinfra.process.ManagedProcess` named
``peer-<name>-<port>`` (pid file in ``.lodestar/run``, log in ``.lodestar/log``). It binds
127.0.0.1 unless told otherwise, and its Prometheus exporter always gets its own port on the
same host: both wheels default it to port 29000 (sglang-router on 0.0.0.0), and a second router
on the same machine would panic at start-up on the busy port. Ready means ``GET /readiness``
counts every worker healthy (:func:`lodestar.peers.status.is_ready`); sglang-router registers
workers in the background after it starts listening, vllm-router before.

Starting a router whose process already runs is a no-op if it was started with the same
command line, and an error otherwise (stop it first).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from lodestar.localinfra.ports import free_port
from lodestar.localinfra.process import ManagedProcess, ProcessStartError
from lodestar.localinfra.settings import LocalInfraSettings
from lodestar.peers.catalog import PeerSpec
from lodestar.peers.install import install_peer, peer_install
from lodestar.peers.status import RouterWorker, is_ready, router_workers


class PeerStartError(RuntimeError):
    """The router exited, never became ready, or another one runs under its name."""


@dataclass(frozen=True)
class PeerLaunch:
    """How to run one peer router. Thresholds left at None take the wheel's CLI defaults."""

    spec: PeerSpec
    policy: str
    workers: tuple[str, ...]
    port: int
    host: str = "127.0.0.1"
    metrics_port: int | None = None
    log_level: str = "info"
    cache_threshold: float | None = None
    balance_abs_threshold: int | None = None
    balance_rel_threshold: float | None = None
    extra_args: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.workers:
            raise ValueError("give at least one worker URL")
        self.spec.check_policy(self.policy, len(self.workers))
        for url in self.workers:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.port is None:
                raise ValueError(f"worker URL {url!r} is not http(s)://host:port")
        if len(set(self.workers)) != len(self.workers):
            raise ValueError("worker URLs repeat")
        for port in (self.port, self.metrics_port):
            if port is not None and not 0 < port < 65536:
                raise ValueError(f"port {port} is out of range")
        if self.log_level not in self.spec.log_levels:
            raise ValueError(f"log level {self.log_level!r} is not one of {', '.join(self.spec.log_levels)}")
        thresholds = (self.cache_threshold, self.balance_abs_threshold, self.balance_rel_threshold)
        if self.policy != "cache_aware" and any(t is not None for t in thresholds):
            raise ValueError("cache-aware thresholds apply only to --policy cache_aware")
        if self.cache_threshold is not None and not 0.0 <= self.cache_threshold <= 1.0:
            raise ValueError(f"cache threshold {self.cache_threshold} is not in [0, 1]")
        if self.balance_abs_threshold is not None and self.balance_abs_threshold < 0:
            raise ValueError("balance abs threshold must be >= 0")
        if self.balance_rel_threshold is not None and self.balance_rel_threshold < 0:
            raise ValueError("balance rel threshold must be >= 0")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def process_name(self) -> str:
        return f"peer-{self.spec.name}-{self.port}"

    def argv(self, script: Path | str, metrics_port: int) -> list[str]:
        """The router's command line (``script`` = the wheel's console script)."""
        out = [str(script), *self.spec.subcommand, "--host", self.host, "--port", str(self.port)]
        out += ["--worker-urls", *self.workers, "--policy", self.policy]
        out += ["--prometheus-host", self.host, "--prometheus-port", str(metrics_port)]
        out += ["--log-level", self.spec.log_levels[self.log_level]]
        if self.cache_threshold is not None:
            out += ["--cache-threshold", repr(self.cache_threshold)]
        if self.balance_abs_threshold is not None:
            out += ["--balance-abs-threshold", str(self.balance_abs_threshold)]
        if self.balance_rel_threshold is not None:
            out += ["--balance-rel-threshold", repr(self.balance_rel_threshold)]
        return [*out, *self.extra_args]


@dataclass(frozen=True)
class PeerRouter:
    """A started peer router."""

    launch: PeerLaunch
    process: ManagedProcess
    pid: int
    ready_after_s: float
    argv_file: Path

    @property
    def url(self) -> str:
        return self.launch.url

    @property
    def argv(self) -> list[str]:
        return list(self.process.argv)

    def workers(self) -> list[RouterWorker]:
        """``GET /workers``: the router's worker order and its in-flight count per worker."""
        return router_workers(self.url)

    def stop(self) -> bool:
        """SIGTERM, then SIGKILL after 10 s (sglang-router would otherwise wait up to its
        180 s shutdown grace period for requests in flight). True if it ran."""
        self.argv_file.unlink(missing_ok=True)
        return self.process.stop()


def peer_process(launch: PeerLaunch, settings: LocalInfraSettings, metrics_port: int) -> ManagedProcess:
    script = peer_install(launch.spec, settings).script
    return ManagedProcess(
        name=launch.process_name,
        argv=launch.argv(script, metrics_port),
        run_dir=settings.run_dir,
        log_dir=settings.log_dir,
    )


def start_peer(launch: PeerLaunch, settings: LocalInfraSettings, timeout_s: float = 60.0) -> PeerRouter:
    """Install the peer if needed, start it, wait until every worker is healthy in it."""
    install_peer(launch.spec, settings)
    running = _running_argv(settings, launch.process_name)
    metrics_port = launch.metrics_port or (_metrics_port_of(running) if running else None) or free_port()
    process = peer_process(launch, settings, metrics_port)
    if running is not None and running != list(process.argv):
        raise PeerStartError(
            f"{launch.process_name} already runs with another command line; stop it first "
            f"(lodestar peers stop {launch.spec.name} --port {launch.port})"
        )
    started = time.monotonic()
    try:
        pid = process.start(ready=lambda: is_ready(launch.url, len(launch.workers)), timeout_s=timeout_s)
    except ProcessStartError as exc:
        _argv_file(settings, launch.process_name).unlink(missing_ok=True)
        raise PeerStartError(str(exc)) from None
    argv_file = _argv_file(settings, launch.process_name)
    argv_file.write_text(json.dumps(list(process.argv)))
    return PeerRouter(launch, process, pid, time.monotonic() - started, argv_file)


def stop_peer(spec: PeerSpec, port: int, settings: LocalInfraSettings) -> bool:
    """Stop the router ``peer-<name>-<port>``; True if one ran."""
    name = f"peer-{spec.name}-{port}"
    process = ManagedProcess(name=name, argv=(), run_dir=settings.run_dir, log_dir=settings.log_dir)
    _argv_file(settings, name).unlink(missing_ok=True)
    return process.stop()


def _argv_file(settings: LocalInfraSettings, name: str) -> Path:
    return settings.run_dir / f"{name}.argv.json"


def _running_argv(settings: LocalInfraSettings, name: str) -> list[str] | None:
    """The command line of the live process ``name``, if one runs (None otherwise)."""
    probe = ManagedProcess(name=name, argv=(), run_dir=settings.run_dir, log_dir=settings.log_dir)
    if probe.pid() is None:
        return None
    try:
        recorded = json.loads(_argv_file(settings, name).read_text())
    except (OSError, ValueError):
        return []
    return [str(a) for a in recorded] if isinstance(recorded, list) else []


def _metrics_port_of(argv: Sequence[str]) -> int | None:
    try:
        return int(argv[list(argv).index("--prometheus-port") + 1])
    except (ValueError, IndexError):
        return None
