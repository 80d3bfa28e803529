"""The whole Lodestar system as local processes (what ``lodestar up`` runs): the tansu broker,
the history service on chDB, an emulated fleet, and the collector, router, trainer and gateway.

Components start in dependency order, each waiting until it answers its health check; stop
goes in reverse. Every process gets its settings through the same environment variables the
compose file sets, so the local stack and ``docker compose`` differ only in where Kafka and
ClickHouse run.
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from lodestar.cluster.spec import ClusterSpec
from lodestar.localinfra.broker import install_tansu, port_open
from lodestar.localinfra.process import ManagedProcess
from lodestar.localinfra.settings import LocalInfraSettings
from lodestar.localinfra.stack_ports import StackPorts


@dataclass(frozen=True)
class StackConfig:
    """What to run. ``name`` prefixes pid/log files, so several stacks (tests) can coexist."""

    cluster: ClusterSpec
    ports: StackPorts = field(default_factory=StackPorts)
    name: str = "stack"
    time_scale: float = 1.0
    profile: str = "lodestar"
    topic_prefix: str = ""
    history: bool = True
    publish_interval_s: float = 5.0
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    extra_env: Mapping[str, str] = field(default_factory=dict)
    #: the router inside the gateway's process (``LODESTAR_GATEWAY_ROUTER_EMBEDDED``): no router
    #: process, no HTTP exchange per request; its API is still served on ``ports.router``
    embedded_router: bool = False


@dataclass(frozen=True)
class Component:
    name: str
    process: ManagedProcess
    ready: Callable[[], bool]
    url: str | None = None
    timeout_s: float = 60.0


def http_ok(url: str, timeout_s: float = 1.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout_s).is_success
    except httpx.HTTPError:
        return False


def sees_instances(health_url: str, n_instances: int, timeout_s: float = 1.0) -> bool:
    """``/health`` answers and reports at least ``n_instances`` healthy instances (the gateway
    and the router learn them from the collector's events, after they are up)."""
    try:
        response = httpx.get(health_url, timeout=timeout_s)
        return response.is_success and int(response.json().get("healthy_instances", 0)) >= n_instances
    except (httpx.HTTPError, ValueError, TypeError, AttributeError):
        return False


class Stack:
    """Build with a config, then :meth:`start` / :meth:`stop` (idempotent)."""

    def __init__(self, config: StackConfig, local: LocalInfraSettings) -> None:
        self.config = config
        self.local = local
        self.data_dir = (local.data_dir / config.name).resolve()
        self.components = self._components()

    # --- wiring ----------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        c = self.config
        return {
            "LODESTAR_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{c.ports.broker}",
            "LODESTAR_KAFKA_TOPIC_PREFIX": c.topic_prefix,
            "PYTHONUNBUFFERED": "1",
            **c.extra_env,
        }

    def _proc(self, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> ManagedProcess:
        return ManagedProcess(
            name=f"{self.config.name}-{name}",
            argv=argv,
            run_dir=self.local.run_dir,
            log_dir=self.local.log_dir,
            env={**self._env(), **(env or {})},
        )

    def instances_file(self) -> Path:
        return self.data_dir / "instances.yaml"

    def instance_urls(self) -> dict[str, str]:
        base = self.config.ports.emulator_base
        return {
            inst.instance_id: f"http://127.0.0.1:{base + k}" for k, inst in enumerate(self.config.cluster.instances())
        }

    @property
    def router_url(self) -> str:
        """The router's API (in the gateway's process when embedded)."""
        return f"http://127.0.0.1:{self.config.ports.router}"

    def router_host(self) -> Component:
        """The component whose process runs the router: ``router``, or ``gateway`` when embedded."""
        return self.component("gateway" if self.config.embedded_router else "router")

    def _components(self) -> list[Component]:
        c, p = self.config, self.config.ports
        py = sys.executable
        n_instances = len(self.instance_urls())
        out: list[Component] = []
        broker_argv = [
            str(self.local.tansu_path.resolve()),
            "broker",
            "--listener-url",
            f"tcp://127.0.0.1:{p.broker}",
            "--advertised-listener-url",
            f"tcp://127.0.0.1:{p.broker}",
            "--storage-engine",
            "memory://tansu/",
        ]
        out.append(
            Component(
                "broker",
                self._proc("broker", broker_argv, {"RUST_LOG": "warn"}),
                lambda: port_open("127.0.0.1", p.broker),
            )
        )
        if c.history:
            history_env = {
                "LODESTAR_HISTORY_CLICKHOUSE_DSN": f"chdb://{self.data_dir / 'history'}",
                "LODESTAR_HISTORY_PORT": str(p.history),
            }
            url = f"http://127.0.0.1:{p.history}"
            out.append(
                Component(
                    "history",
                    self._proc("history", [py, "-m", "lodestar_history"], history_env),
                    lambda: http_ok(f"{url}/health"),
                    url,
                )
            )
        emulate = [
            py, "-m", "lodestar", "emulate",
            "--cluster", self._cluster_arg(),
            "--base-port", str(p.emulator_base),
            "--time-scale", str(c.time_scale),
        ]  # fmt: skip
        urls = list(self.instance_urls().values())
        out.append(
            Component("emulator", self._proc("emulator", emulate), lambda: all(http_ok(f"{u}/health") for u in urls))
        )
        collector_url = f"http://127.0.0.1:{p.collector}"
        out.append(
            Component(
                "collector",
                self._proc(
                    "collector",
                    [py, "-m", "lodestar_collector"],
                    {
                        "LODESTAR_COLLECTOR_INSTANCES_FILE": str(self.instances_file()),
                        "LODESTAR_COLLECTOR_PORT": str(p.collector),
                    },
                ),
                lambda: http_ok(f"{collector_url}/health"),
                collector_url,
            )
        )
        router_url = self.router_url
        router_env = {
            "LODESTAR_ROUTER_PORT": str(p.router),
            "LODESTAR_ROUTER_ADMIN_PORT": str(p.router_admin),
            "LODESTAR_ROUTER_ADMIN_TOKEN": c.admin_token,
            "LODESTAR_ROUTER_PROFILE": c.profile,
        }
        if not c.embedded_router:
            out.append(
                Component(
                    "router",
                    self._proc("router", [py, "-m", "lodestar_router"], router_env),
                    lambda: http_ok(f"{router_url}/health"),
                    router_url,
                )
            )
        trainer_url = f"http://127.0.0.1:{p.trainer}"
        trainer_env = {
            "LODESTAR_TRAINER_PORT": str(p.trainer),
            "LODESTAR_TRAINER_PUBLISH_INTERVAL_S": str(c.publish_interval_s),
        }
        out.append(
            Component(
                "trainer",
                self._proc("trainer", [py, "-m", "lodestar_trainer"], trainer_env),
                lambda: http_ok(f"{trainer_url}/health"),
                trainer_url,
            )
        )
        gateway_url = f"http://127.0.0.1:{p.gateway}"
        gateway_env = {"LODESTAR_GATEWAY_PORT": str(p.gateway), "LODESTAR_GATEWAY_ROUTER_URL": router_url}
        if c.embedded_router:
            gateway_env |= {**router_env, "LODESTAR_GATEWAY_ROUTER_EMBEDDED": "true"}
        out.append(
            Component(
                "gateway",
                self._proc("gateway", [py, "-m", "lodestar_gateway"], gateway_env),
                # ready to serve: it knows every instance (a request before that is a 503)
                lambda: (
                    sees_instances(f"{gateway_url}/health", n_instances)
                    and (not c.embedded_router or http_ok(f"{router_url}/health"))
                ),
                gateway_url,
            )
        )
        return out

    def _cluster_arg(self) -> str:
        path = self.data_dir / "cluster.yaml"
        return str(path)

    # --- lifecycle -------------------------------------------------------------------------

    def _write_files(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cluster = self.config.cluster
        (self.data_dir / "cluster.yaml").write_text(yaml.safe_dump(cluster.model_dump(mode="json"), sort_keys=False))
        instances = [
            {"instance_id": inst.instance_id, "url": url, "hardware": inst.hardware_name, "model": inst.model_name}
            for inst, url in zip(cluster.instances(), self.instance_urls().values(), strict=True)
        ]
        self.instances_file().write_text(yaml.safe_dump({"instances": instances}, sort_keys=False))

    def start(self, on_ready: Callable[[Component], None] | None = None) -> None:
        """Start every component in order; on any failure, Ctrl-C (KeyboardInterrupt)
        included, stop what started (the one starting too) and re-raise."""
        install_tansu(self.local)
        self._write_files()
        begun: list[Component] = []
        try:
            for comp in self.components:
                begun.append(comp)
                comp.process.start(ready=comp.ready, timeout_s=comp.timeout_s)
                if on_ready is not None:
                    on_ready(comp)
        except BaseException:
            for comp in reversed(begun):
                comp.process.stop()
            raise

    def stop(self) -> None:
        for comp in reversed(self.components):
            comp.process.stop()

    def running(self) -> list[Component]:
        """Components whose pid file names a live process (perhaps left by an earlier run)."""
        return [c for c in self.components if c.process.is_running()]

    def dead(self) -> list[Component]:
        """Components whose process is no longer running."""
        return [c for c in self.components if not c.process.is_running()]

    def component(self, name: str) -> Component:
        return next(c for c in self.components if c.name == name)

    def wait(self, should_stop: Callable[[], bool], poll_s: float = 1.0) -> list[Component]:
        """Block until ``should_stop()`` or a component dies; returns the dead ones."""
        while not should_stop():
            dead = self.dead()
            if dead:
                return dead
            time.sleep(poll_s)
        return []
