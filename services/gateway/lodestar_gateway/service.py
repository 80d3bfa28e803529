"""Wiring of one gateway process: settings → local fleet and fallback policy, router client,
upstream client, feedback queue, outcome publisher, instance-state feed, API; with
``router_embedded`` the router's own service in the same event loop
(:mod:`lodestar_gateway.embedded`) instead of the router client and feedback queue.

:meth:`GatewayService.build` builds the fallback policy from its profile (a bad profile fails
here, before anything starts) and the object graph; :meth:`GatewayService.run` serves in the
current event loop until ``stop`` is set: the API, the feed (after making sure the topics
exist; with the router embedded, the router's instance-state consumer updates this gateway's
fleet too, so the process reads the topic once), the fleet sweep, the feedback and publisher
tasks. Shutdown stops the API (in-flight
requests get a short grace), then flushes feedback and outcome events (bounded) and closes
the clients. :func:`serve` adds SIGINT/SIGTERM handling.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from lodestar.bus.publish import BufferedPublisher
from lodestar.bus.settings import KafkaSettings
from lodestar.http_client import HttpClient
from lodestar.plugins import full_registry, resolve_profile
from lodestar.policy.ejection import EjectionPolicy
from lodestar.policy.profile_spec import ProfileError, build_policy
from lodestar.serving import ApiServer, PortInUseError, bind_socket, ensure_topics_retrying, run_until_signal
from lodestar_gateway.access import Access
from lodestar_gateway.api import Health, build_app
from lodestar_gateway.embedded import EmbeddedRouter, defer_past_the_upstream_write
from lodestar_gateway.exchange import Proxy
from lodestar_gateway.feed import InstanceStateFeed
from lodestar_gateway.feedback import FeedbackQueue
from lodestar_gateway.fleet import LocalFleet
from lodestar_gateway.metrics import GatewayMetrics, Snapshot
from lodestar_gateway.routing import RouterClient, RouteSource, Routing
from lodestar_gateway.settings import GatewaySettings
from lodestar_router.dispatch import Dispatcher
from lodestar_router.service import RouterService
from lodestar_router.settings import RouterSettings
from lodestar_schemas.events import Event
from lodestar_schemas.topics import TopicName, topic_spec

log = structlog.get_logger(__name__)

__all__ = ["EmbeddedRouterError", "GatewayService", "PortInUseError", "serve"]

_DRAIN_TIMEOUT_S = 5.0
_API_STOP_TIMEOUT_S = 5.0
_SWEEP_INTERVAL_S = 0.5
_TOPICS = (TopicName.INSTANCE_STATE, TopicName.REQUEST_OUTCOMES)


def upstream_headers(settings: GatewaySettings) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept-encoding": "identity"}
    if settings.upstream_api_key is not None:
        headers["authorization"] = f"Bearer {settings.upstream_api_key.get_secret_value()}"
    return headers


class EmbeddedRouterError(Exception):
    """The embedded router cannot be built (its profile is unusable)."""


@dataclass(frozen=True)
class Core:
    """The request path without Kafka: the proxy, its feedback queue and router client."""

    proxy: Proxy
    feedback: FeedbackQueue | None
    router_http: HttpClient
    embedded: EmbeddedRouter | None = None


def build_core(settings: GatewaySettings, publish: Callable[[Event], bool], embedded: Dispatcher | None = None) -> Core:
    """Fallback policy (ProfileError if its profile is unusable), local fleet with the static
    instances, router client and feedback queue (if a router URL is set; with ``embedded``,
    that dispatcher instead), upstream client, API keys and client limits (KeyConfigError /
    ValueError if unusable)."""
    policy = build_policy(resolve_profile(settings.fallback_profile), full_registry(), seed=settings.fallback_seed)
    ejection = EjectionPolicy(
        base_s=settings.ejection_base_s,
        max_s=settings.ejection_max_s,
        max_ejected_fraction=settings.ejection_max_fraction,
    )
    fleet = LocalFleet(settings.staleness_s, settings.remove_after_s, ejection, settings.hold_states_when_silent)
    for inst in settings.instances:
        fleet.add_static(inst.instance_id, inst.url, inst.model, inst.max_model_len)
    metrics = GatewayMetrics()
    router_http = HttpClient(connect_timeout_s=max(settings.route_timeout_s, settings.feedback_timeout_s))
    router_url = settings.router_url.strip()
    router: RouteSource | None = None
    feedback = in_process = None
    if embedded is not None:
        router = in_process = EmbeddedRouter(embedded, metrics)
    elif router_url:
        router = RouterClient(
            router_http,
            router_url,
            settings.route_timeout_s,
            settings.router_failure_threshold,
            settings.router_cooldown_s,
            metrics,
            timeout_per_1k_tokens_s=settings.route_timeout_per_1k_tokens_s,
        )
        feedback = FeedbackQueue(
            router_http,
            router_url,
            capacity=settings.feedback_queue,
            batch_size=settings.feedback_batch,
            linger_s=settings.feedback_linger_s,
            timeout_s=settings.feedback_timeout_s,
        )
    proxy = Proxy(
        settings=settings,
        routing=Routing(router, fleet, policy, metrics),
        upstream=HttpClient(settings.connect_timeout_s, settings.max_connections),
        fleet=fleet,
        metrics=metrics,
        publish=publish,
        feedback=in_process.feedback if in_process is not None else feedback.put if feedback is not None else None,
        upstream_headers=upstream_headers(settings),
        access=Access.from_settings(settings),
    )
    return Core(proxy, feedback, router_http, in_process)


@dataclass
class GatewayService:
    """The object graph of one process."""

    settings: GatewaySettings
    kafka: KafkaSettings
    metrics: GatewayMetrics
    fleet: LocalFleet
    routing: Routing
    proxy: Proxy
    publisher: BufferedPublisher
    feedback: FeedbackQueue | None
    feed: InstanceStateFeed | None  # None with the router embedded: its feed serves both
    router_http: HttpClient
    embedded: EmbeddedRouter | None = None
    router_service: RouterService | None = None
    api_port: int | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, repr=False)

    @classmethod
    def build(
        cls, settings: GatewaySettings, kafka: KafkaSettings, router_settings: RouterSettings | None = None
    ) -> GatewayService:
        """Build everything; ProfileError if the fallback profile is unusable, EmbeddedRouterError
        if the embedded router's is (its settings: ``router_settings``, else from the environment)."""
        publisher = BufferedPublisher(kafka, capacity=settings.publish_buffer, linger_s=settings.publish_linger_s)
        router_service = None
        if settings.router_embedded:
            try:
                router_service = RouterService.build(router_settings or RouterSettings(), kafka)
            except ProfileError as exc:
                raise EmbeddedRouterError(f"invalid LODESTAR_ROUTER_PROFILE: {exc}") from exc
        core = build_core(settings, publisher.publish, router_service.dispatcher if router_service else None)
        proxy = core.proxy
        feed = None
        if router_service is None:
            feed = InstanceStateFeed(kafka, proxy.fleet)
        else:  # one consumer of the topic in this process: the embedded router's, shared
            router_service.state_listeners.append(proxy.fleet.apply)
        service = cls(
            settings, kafka, proxy.metrics, proxy.fleet, proxy.routing, proxy, publisher, core.feedback, feed,
            core.router_http, core.embedded, router_service,
        )  # fmt: skip
        proxy.metrics.bind(service.snapshot)
        return service

    def snapshot(self) -> Snapshot:
        stats, fb = self.publisher.stats, self.feedback
        router = self.routing.router
        return Snapshot(
            publisher=stats,
            events_pending=self.publisher.pending,
            feedback_sent=fb.sent if fb is not None else 0,
            feedback_dropped_full=fb.dropped_full if fb is not None else 0,
            feedback_dropped_failed=fb.dropped_failed if fb is not None else 0,
            feedback_pending=fb.pending if fb is not None else self.embedded.pending if self.embedded else 0,
            instances=len(self.fleet),
            instances_healthy=self.fleet.healthy_count(time.monotonic()),
            instance_states=self.fleet.states_applied,
            undecodable_states=self._state_feed_undecodable(),
            router_open=router is not None and router.open,
            inflight_requests=self.proxy.inflight_requests,
            inflight_streams=self.proxy.inflight_streams,
            ejection=self.fleet.ejections.counters,
            instances_ejected=self.fleet.ejections.ejected_count(),
        )

    def _state_feed_undecodable(self) -> int:
        if self.feed is not None:
            return self.feed.undecodable
        return self.router_service.feeds[0].undecodable if self.router_service is not None else 0

    def health(self) -> Health:
        router = self.routing.router
        return Health(
            status="ok",
            instances=len(self.fleet),
            healthy_instances=self.fleet.healthy_count(time.monotonic()),
            router="none" if router is None else "embedded" if self.embedded else "skipped" if router.open else "ok",
            inflight_requests=self.proxy.inflight_requests,
            pending_events=self.publisher.pending,
            pending_feedback=self.feedback.pending if self.feedback is not None else 0,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set; PortInUseError before anything starts if the port is taken."""
        s = self.settings
        sock = bind_socket(s.host, s.port, "gateway")
        # Accepted sockets inherit TCP_NODELAY from the listener. asyncio sets it only on
        # sockets whose proto is IPPROTO_TCP, which a socket(family, SOCK_STREAM) is not:
        # without it a response written in two parts (headers, body) waits ~40 ms for the
        # client's delayed ACK (Nagle).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        api = ApiServer(build_app(self.proxy, self.health), sock)
        self.api_port = api.port
        router_stop = asyncio.Event()
        router_task = None
        if self.router_service is not None:
            self.router_service.dispatcher.defer = defer_past_the_upstream_write(asyncio.get_running_loop())
            router_task = asyncio.create_task(self.router_service.run(router_stop), name="embedded-router")
            await asyncio.sleep(0)  # it binds its ports before its first await
            if router_task.done():
                sock.close()
                router_task.result()  # PortInUseError (or what else stopped it) raised here
        self.publisher.start()
        if self.feedback is not None:
            self.feedback.start()
        self._tasks = [
            asyncio.create_task(self._follow(), name="gateway-feed"),
            asyncio.create_task(self._sweep_forever(), name="gateway-sweep"),
        ]
        api.start()
        log.info(
            "gateway_ready",
            api=f"http://{s.host}:{self.api_port}",
            router="embedded" if self.router_service is not None else s.router_url or None,
            route_timeout_s=s.route_timeout_s,
            fallback_profile=s.fallback_profile,
            static_instances=[i.instance_id for i in s.instances],
            topic_prefix=self.kafka.topic_prefix,
        )
        try:
            await stop.wait()
        finally:
            await self._shutdown(api)
            if router_task is not None:
                router_stop.set()
                await router_task

    async def _follow(self) -> None:
        await ensure_topics_retrying(self.kafka, tuple(topic_spec(t) for t in _TOPICS))
        if self.feed is not None:
            await self.feed.run()

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(_SWEEP_INTERVAL_S)
            for iid in self.fleet.sweep(time.monotonic()):
                log.warning("instance_removed", instance_id=iid, silent_for_s=self.settings.remove_after_s)

    async def _shutdown(self, api: ApiServer) -> None:
        inflight = self.proxy.inflight_requests
        log.info("gateway_stopping", inflight_requests=inflight, pending_events=self.publisher.pending)
        await api.stop(_API_STOP_TIMEOUT_S)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.feedback is not None:
            await self.feedback.close()
        if self.embedded is not None:
            self.embedded.flush()
        await self.publisher.close(drain_timeout_s=_DRAIN_TIMEOUT_S)
        await self.proxy.upstream.aclose()
        await self.router_http.aclose()
        stats = self.publisher.stats
        log.info("gateway_stopped", accepted=stats.accepted, sent=stats.sent, dropped=stats.dropped)


async def serve(service: GatewayService) -> None:
    """Run ``service`` until SIGINT or SIGTERM."""
    await run_until_signal(service.run)
