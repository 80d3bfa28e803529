"""Starting the routers under test.

Peers: :func:`lodestar.peers.launch.start_peer` (pinned wheel in its own venv, ready when it
counts every worker healthy). Lodestar: a :class:`~lodestar.localinfra.stack.Stack` as ``lodestar
up`` runs it (broker, emulator, collector, router, trainer, gateway; no history service, which
is off the data path) on free ports under its own name, so it can coexist with a ``lodestar up``;
by default with the router embedded in the gateway's process (one process on the data path, as
each peer is; ``RunPlan.lodestar_embedded``).
What a Lodestar run reports besides latencies: the gateway's local fallbacks (decisions the
router did not make in time) and the router's model (``GET /v1/model``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from lodestar.bus.model_topic import newest_model_update, put_model_update
from lodestar.bus.settings import KafkaSettings
from lodestar.cluster.spec import ClusterSpec
from lodestar.localinfra.ports import free_port
from lodestar.localinfra.process import ManagedProcess
from lodestar.localinfra.settings import LocalInfraSettings
from lodestar.localinfra.stack import Component, Stack, StackConfig
from lodestar.localinfra.stack_ports import StackPorts
from lodestar.peers.catalog import peer_spec
from lodestar.peers.launch import PeerLaunch, PeerRouter, start_peer

from .emulator import ROUTER_NICE, component_niceness, prioritize


def start_peer_router(router: str, policy: str, workers: list[str], local: LocalInfraSettings) -> PeerRouter:
    launch = PeerLaunch(peer_spec(router), policy, tuple(workers), port=free_port(), log_level="warning")
    started = start_peer(launch, local, timeout_s=90.0)
    prioritize(started.pid, ROUTER_NICE)
    return started


class LodestarStack:
    """A Lodestar stack for one or two runs (cold; or warm-up then measured)."""

    def __init__(
        self,
        cluster: ClusterSpec,
        profile: str,
        time_scale: float,
        local: LocalInfraSettings,
        extra_env: dict[str, str],
        embedded_router: bool = False,
    ) -> None:
        ports = StackPorts.free(len(cluster.instances()))
        tag = uuid.uuid4().hex[:6]
        config = StackConfig(
            cluster=cluster,
            ports=ports,
            name=f"compare-{tag}",
            time_scale=time_scale,
            profile=profile,
            topic_prefix=f"compare{tag}.",
            history=False,
            extra_env=extra_env,
            embedded_router=embedded_router,
        )
        self.stack = Stack(config, local)

    @property
    def gateway_url(self) -> str:
        url = self.stack.component("gateway").url
        assert url is not None
        return url

    @property
    def router_url(self) -> str:
        return self.stack.router_url

    @property
    def instance_urls(self) -> list[str]:
        return list(self.stack.instance_urls().values())

    @property
    def emulator(self) -> ManagedProcess:
        return self.stack.component("emulator").process

    def start(self) -> None:
        self.stack.start(on_ready=_prioritize)

    def stop(self) -> None:
        self.stack.stop()

    def kafka(self) -> KafkaSettings:
        c = self.stack.config
        return KafkaSettings(bootstrap_servers=f"127.0.0.1:{c.ports.broker}", topic_prefix=c.topic_prefix)

    def redeploy_keeping_model(self) -> int | None:
        """Every process of the stack anew — the broker (empty logs), the emulator (cold KV
        cache), collector, trainer, router and gateway — carrying over only the newest model:
        read from the old broker's model topic, put on the new one as soon as the broker is up,
        before any service starts (the trainer resumes from it, the router loads it). Returns its
        version (None: there was none).

        Why not keep the broker: tansu's in-memory log makes every fetch cost time in
        proportion to the bytes already in the partition (measured: a consumer tailing a
        partition that holds 100 MB costs the broker ~4× the CPU of tailing an empty one), so
        a broker that carried the warm-up's events would tax the measured run on a shared
        2-core machine; Kafka's offset index has no such cost."""
        kafka = self.kafka()
        update = asyncio.run(newest_model_update(kafka))
        self.stop()

        def on_ready(comp: Component) -> None:
            _prioritize(comp)
            if comp.name == "broker" and update is not None:
                asyncio.run(put_model_update(kafka, update))

        self.stack.start(on_ready=on_ready)
        return update.version if update is not None else None

    def model(self) -> dict[str, Any]:
        """The router's ``GET /v1/model`` (``{}`` if it does not answer)."""
        try:
            body = httpx.get(f"{self.router_url}/v1/model", timeout=5.0).json()
        except (httpx.HTTPError, ValueError):
            return {}
        return body if isinstance(body, dict) else {}

    def wait_for_model(
        self, timeout_s: float, min_version: int = 0, sleep: Callable[[float], None] = time.sleep
    ) -> dict[str, Any]:
        """Poll until the router decides with a model (``confident``) of at least ``min_version``
        or ``timeout_s`` passes; the last ``GET /v1/model`` either way."""

        def done(info: dict[str, Any]) -> bool:
            return bool(info.get("confident")) and int(info.get("active_version") or 0) >= min_version

        deadline = time.monotonic() + timeout_s
        info = self.model()
        while not done(info) and time.monotonic() < deadline:
            sleep(1.0)
            info = self.model()
        return info

    def fallbacks(self) -> dict[str, float]:
        """``lodestar_gateway_fallbacks_total`` by reason (local decisions: the router was late or down)."""
        try:
            text = httpx.get(f"{self.gateway_url}/metrics", timeout=5.0).text
        except httpx.HTTPError:
            return {}
        return parse_fallbacks(text)


def parse_fallbacks(metrics_text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in metrics_text.splitlines():
        if line.startswith("lodestar_gateway_fallbacks_total{"):
            labels, value = line.rsplit(" ", 1)
            reason = labels.split('"')[1] if '"' in labels else "?"
            out[reason] = out.get(reason, 0.0) + float(value)
    return out


def _prioritize(comp: Component) -> None:
    """A started component of the stack at its comparison niceness (see :mod:`.emulator`)."""
    prioritize(comp.process.pid(), component_niceness(comp.name))
