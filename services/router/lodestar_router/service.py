"""Wiring of one router process: settings → policy, fleet, model store, publisher, feeds, APIs.

:meth:`RouterService.build` builds the policy from the profile (a bad profile fails here,
before anything starts) and the object graph; :meth:`RouterService.run` serves in the current
event loop until ``stop`` is set: the public API, the admin API (only with a token), the
instance-state and model-update feeds (after making sure the topics exist), and the sweep that
forgets long-silent instances and expires in-flight decisions. Shutdown stops the feeds and the
APIs, then flushes the decision publisher (bounded). Ports, uvicorn and signals are handled as
in every service (:mod:`lodestar.serving`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from starlette.types import ASGIApp

from lodestar.bus.publish import BufferedPublisher
from lodestar.bus.settings import KafkaSettings
from lodestar.plugins import full_registry, resolve_profile
from lodestar.policy.contracts import Policy
from lodestar.policy.directory import InstanceDirectory
from lodestar.policy.ejection import EjectionPolicy
from lodestar.policy.fleet import FleetState
from lodestar.policy.profile_spec import build_policy
from lodestar.serving import ApiServer, PortInUseError, bind_socket, ensure_topics_retrying, run_until_signal
from lodestar_router.admin import AdminState, build_admin_app
from lodestar_router.api import Health, build_app
from lodestar_router.dispatch import Dispatcher
from lodestar_router.feeds import Feed, ModelInstaller, StateListener, instance_state_feed, model_update_feed
from lodestar_router.metrics import RouterMetrics, Snapshot
from lodestar_router.model_updates import ModelStore
from lodestar_router.settings import RouterSettings
from lodestar_schemas.topics import TopicName, topic_spec

__all__ = ["PortInUseError", "RouterService", "policy_builder", "serve"]

log = structlog.get_logger(__name__)

_TOPICS = (TopicName.INSTANCE_STATE, TopicName.ROUTE_DECISIONS, TopicName.MODEL_UPDATES)


def policy_builder(seed: int) -> Callable[[str], Policy]:
    """``build(name_or_path)``: a fresh policy from a profile with the full registry
    (ProfileError naming the field when the profile is unusable)."""
    registry = full_registry()

    def build(profile: str) -> Policy:
        return build_policy(resolve_profile(profile), registry, seed=seed)

    return build


@dataclass
class RouterService:
    """The object graph of one process."""

    settings: RouterSettings
    kafka: KafkaSettings
    metrics: RouterMetrics
    directory: InstanceDirectory
    models: ModelStore
    dispatcher: Dispatcher
    publisher: BufferedPublisher
    installer: ModelInstaller
    admin: AdminState
    feeds: tuple[Feed, Feed]
    state_listeners: list[StateListener] = field(default_factory=list)
    api_port: int | None = None
    admin_port: int | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, repr=False)

    @classmethod
    def build(cls, settings: RouterSettings, kafka: KafkaSettings) -> RouterService:
        """Build everything; ProfileError if the profile is unusable."""
        build = policy_builder(settings.seed)
        policy = build(settings.profile)
        ejection = EjectionPolicy(
            base_s=settings.ejection_base_s,
            max_s=settings.ejection_max_s,
            max_ejected_fraction=settings.ejection_max_fraction,
        )
        directory = InstanceDirectory(
            FleetState(), settings.staleness_s, settings.remove_after_s, ejection, settings.hold_states_when_silent
        )
        for inst in settings.instances:
            directory.add_static(inst.instance_id, inst.url, inst.model, inst.max_model_len)
        metrics = RouterMetrics()
        models = ModelStore()
        publisher = BufferedPublisher(kafka, capacity=settings.publish_buffer, linger_s=settings.publish_linger_s)
        dispatcher = Dispatcher(
            directory, policy, models, metrics, publisher.publish, inflight_timeout_s=settings.inflight_timeout_s
        )
        installer = ModelInstaller(models, dispatcher)
        listeners: list[StateListener] = []
        feeds = (instance_state_feed(kafka, directory, listeners), model_update_feed(kafka, installer))
        admin = AdminState(dispatcher, build, settings.profile)
        service = cls(
            settings, kafka, metrics, directory, models, dispatcher, publisher, installer, admin, feeds, listeners
        )
        metrics.bind(service.snapshot)
        return service

    @property
    def admin_enabled(self) -> bool:
        token = self.settings.admin_token
        return token is not None and bool(token.get_secret_value())

    def snapshot(self) -> Snapshot:
        now = time.monotonic()
        stats = self.publisher.stats
        return Snapshot(
            policy=self.dispatcher.policy.name,
            active_model_version=self.dispatcher.model_version,
            latest_model_version=self.models.latest_version,
            models_accepted=self.models.accepted,
            models_stale=self.models.stale,
            models_rejected=dict(self.models.rejected),
            instances=len(self.directory),
            instances_healthy=self.directory.healthy_count(now),
            inflight_decisions=self.dispatcher.inflight,
            states_applied=self.directory.states_applied,
            states_out_of_order=self.directory.states_out_of_order,
            states_arrived_stale=self.directory.states_arrived_stale,
            consumer_dead_letters=sum(f.undecodable for f in self.feeds),
            publisher=stats,
            events_pending=self.publisher.pending,
            ejection=self.directory.ejections.counters,
            instances_ejected=self.directory.ejections.ejected_count(),
        )

    def health(self) -> Health:
        return Health(
            status="ok",
            policy=self.dispatcher.policy.name,
            model_version=self.dispatcher.model_version,
            instances=len(self.directory),
            healthy_instances=self.directory.healthy_count(time.monotonic()),
            inflight=self.dispatcher.inflight,
            pending_events=self.publisher.pending,
            admin=self.admin_enabled,
        )

    def sweep(self, now_s: float) -> None:
        """Forget long-silent instances and release expired dispatches."""
        for iid in self.directory.sweep(now_s):
            self.metrics.removed_instances.inc()
            self.metrics.forget_instance(iid)
            log.warning("instance_removed", instance_id=iid, silent_for_s=self.settings.remove_after_s)
        self.dispatcher.expire(now_s)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set; PortInUseError before anything starts if a port is taken."""
        s = self.settings
        api = build_app(self.dispatcher, self.metrics, self.health)
        sockets: list[tuple[socket.socket, ASGIApp]] = [(bind_socket(s.host, s.port, "router API"), api)]
        if self.admin_enabled:
            assert s.admin_token is not None
            try:
                admin_sock = bind_socket(s.admin_host, s.admin_port, "router admin")
            except PortInUseError:
                sockets[0][0].close()
                raise
            sockets.append((admin_sock, build_admin_app(self.admin, s.admin_token)))
        servers = [ApiServer(app, sock) for sock, app in sockets]
        self.api_port = servers[0].port
        self.admin_port = servers[1].port if len(servers) > 1 else None
        if self.dispatcher.defer is None:  # an embedding gateway may have set its own
            self.dispatcher.defer = asyncio.get_running_loop().call_soon
        self.publisher.start()
        self._tasks = [
            asyncio.create_task(self._follow(), name="router-feeds"),
            asyncio.create_task(self._sweep_forever(), name="router-sweep"),
        ]
        for server in servers:
            server.start()
        log.info(
            "router_ready",
            policy=self.dispatcher.policy.name,
            profile=s.profile,
            api=f"http://{s.host}:{self.api_port}",
            admin=f"http://{s.admin_host}:{self.admin_port}" if self.admin_port else "disabled (no token)",
            static_instances=[i.instance_id for i in s.instances],
            staleness_s=s.staleness_s,
        )
        try:
            await stop.wait()
        finally:
            await self._shutdown(servers)

    async def _follow(self) -> None:
        await ensure_topics_retrying(self.kafka, tuple(topic_spec(t) for t in _TOPICS))
        await asyncio.gather(*(feed.run() for feed in self.feeds))

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval_s)
            self.sweep(time.monotonic())

    async def _shutdown(self, servers: list[ApiServer]) -> None:
        log.info("router_stopping", inflight=self.dispatcher.inflight, pending_events=self.publisher.pending)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for server in servers:
            await server.stop()
        await self.publisher.close(drain_timeout_s=self.settings.drain_timeout_s)
        stats = self.publisher.stats
        log.info("router_stopped", accepted=stats.accepted, sent=stats.sent, dropped=stats.dropped)


async def serve(service: RouterService) -> None:
    """Run ``service`` until SIGINT or SIGTERM."""
    await run_until_signal(service.run)
