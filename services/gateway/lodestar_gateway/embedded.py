"""The router in the gateway's own process (``LODESTAR_GATEWAY_ROUTER_EMBEDDED=true``).

The same :class:`~lodestar_router.service.RouterService` as ``lodestar router`` (its settings
from ``LODESTAR_ROUTER_*``: profile, static instances, ports, admin token), run in the gateway's
event loop: its feeds follow the instance-state and model topics, it publishes its decision
events, and it still serves its API (``/v1/model``, ``/health``, ``/metrics``, and ``/v1/route``
for other gateways) and admin API on its own ports. This gateway calls its dispatcher directly:
no HTTP exchange per request (the largest part of the added TTFT of a separate router process)
and feedback applied in the loop, not batched over HTTP.

:class:`EmbeddedRouter` answers like :class:`~lodestar_gateway.routing.RouterClient`: a
:class:`RouteResponse`, or :class:`RouterUnavailableError` with ``no_instance`` (no candidate)
or ``router_error`` (the policy raised: a bug, logged; the gateway decides locally, as for a
remote router's 5xx). Nothing can time out between the two, so it is never skipped (``open``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from lodestar.policy.contracts import NoCandidateError
from lodestar_gateway.metrics import GatewayMetrics
from lodestar_gateway.routing import RouterUnavailableError
from lodestar_router.dispatch import Dispatcher
from lodestar_schemas.router_api import Feedback, RouteRequest, RouteResponse

log = structlog.get_logger(__name__)


class EmbeddedRouter:
    """Route and feedback calls into an in-process dispatcher. Event-loop only."""

    open = False

    def __init__(
        self,
        dispatcher: Dispatcher,
        metrics: GatewayMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.clock = clock
        self.applied = 0
        self._pending: list[Feedback] = []
        self._scheduled = False

    async def route(self, request: RouteRequest) -> RouteResponse:
        t0 = time.perf_counter()
        try:
            answer = self.dispatcher.route(request, self.clock())
        except NoCandidateError as exc:
            self._observe("no_instance", t0)
            raise RouterUnavailableError("no_instance", exc.reason) from None
        except Exception as exc:  # a policy bug must not fail the request: decide locally
            self._observe("router_error", t0)
            log.exception("embedded_router_error", request_id=request.request_id)
            raise RouterUnavailableError("router_error", f"{type(exc).__name__}: {exc}") from None
        self._observe("ok", t0)
        return answer

    def feedback(self, event: Feedback) -> bool:
        """Queue ``event``; what is queued is applied in one pass on the loop's next turn, off
        the response being relayed."""
        self._pending.append(event)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)
        return True

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> None:
        """Apply the queued feedback now."""
        self._scheduled = False
        events, self._pending = self._pending, []
        if events:
            self.dispatcher.feedback(events, self.clock())
            self.applied += len(events)

    def _observe(self, result: str, t0: float) -> None:
        if self.metrics is not None:
            self.metrics.observe_route(result, time.perf_counter() - t0)


def defer_past_the_upstream_write(loop: asyncio.AbstractEventLoop) -> Callable[[Callable[[], None]], object]:
    """The embedded dispatcher's ``defer`` (when the decision event is built): one loop turn
    later than ``call_soon``. The gateway sends the upstream request right after the decision,
    and a client that writes the request from a task of its own (aiohttp did, eagerly only from
    Python 3.12; :mod:`~lodestar.http_client` writes it in the call) would have it
    queued *behind* the event's build with ``call_soon``; this way the request leaves first
    whatever the client, and the event is built while the instance works on it."""

    def defer(fn: Callable[[], None]) -> object:
        return loop.call_soon(loop.call_soon, fn)

    return defer
