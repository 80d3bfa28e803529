"""One proxied request, as an ASGI response: route, forward, relay, measure, report.

Per request (:meth:`Exchange.__call__`):

1. Ask for a route (router, else local fallback; 503 if none). Open the upstream request —
   always a stream, so the first token of every request is timed (connect timeout; then the
   first-token deadline, or the response deadline for a non-streamed client if shorter). A
   connection failure before any response — refused, connect timeout, the instance closing
   the connection unanswered (twice: the client already sent it once more) — is retried on
   another instance (the router is asked again with ``exclude``), up to ``max_attempts``
   instances; then 502.
2. The answer is relayed (:mod:`lodestar_gateway.relay`): an upstream status other than 200
   as it came; to a client stream event by event (usage chunk stripped when the gateway asked
   for it on the client's behalf), with the first-token and idle deadlines; to a non-streamed
   client as one answer assembled from the stream (:mod:`lodestar_gateway.assemble`; an
   ``{"error"}`` event in the stream is answered as a JSON error with its ``code`` as the
   status), with the same deadlines and the response deadline.
   A failure after bytes went to the client ends the stream with an SSE error event and
   ``[DONE]``; before that it is a JSON error (504 for deadlines, 502 otherwise; a stream
   that ends without ``[DONE]`` is 502 ``upstream_incomplete``).
3. A client that disconnects cancels the upstream request (a watcher task cancels this one).
4. In every case the request ends with: ``on_done`` called (the client's stream slot is
   released), the local in-flight accounting released, the attempt reported to the fleet's
   outlier ejection (every failed attempt is too), final feedback queued for the router (its
   own decisions only), the local policy's hook called (its own decisions only), one
   ``RequestOutcome`` published, metrics observed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus

import structlog
from pydantic import ValidationError
from starlette.responses import Response as AsgiResponse
from starlette.types import Receive, Scope, Send

from lodestar.http_client import ConnectFailed, ConnectionBroken, HttpClient, HttpError, ProtocolError, Response
from lodestar.openai_errors import JSON, OpenAIError, context_too_long, model_not_found
from lodestar.policy.contracts import Outcome
from lodestar_gateway.access import Access
from lodestar_gateway.assemble import Assembler
from lodestar_gateway.fleet import LocalFleet
from lodestar_gateway.inputs import ParsedRequest
from lodestar_gateway.metrics import GatewayMetrics
from lodestar_gateway.outcomes import (
    Measured,
    attempt_failed_feedback,
    final_feedback,
    first_token_feedback,
    outcome_event,
)
from lodestar_gateway.relay import Downstream, RelayTimeout, pass_error, relay_stream
from lodestar_gateway.routing import Route, Routing
from lodestar_gateway.settings import GatewaySettings
from lodestar_gateway.sse import StreamScanner
from lodestar_schemas.events import Event
from lodestar_schemas.router_api import Feedback, RouteRequest

log = structlog.get_logger(__name__)


@dataclass
class Proxy:
    """What every exchange shares (one per process)."""

    settings: GatewaySettings
    routing: Routing
    upstream: HttpClient
    fleet: LocalFleet
    metrics: GatewayMetrics
    publish: Callable[[Event], bool]
    feedback: Callable[[Feedback], bool] | None
    upstream_headers: dict[str, str]
    access: Access
    inflight_requests: int = 0
    inflight_streams: int = 0


def _endpoint(parsed: ParsedRequest) -> str:
    return "chat" if parsed.kind == "chat" else "completions"


class Exchange(AsgiResponse):
    """``on_done`` is called exactly once, when the exchange ends (whatever the outcome)."""

    def __init__(
        self,
        proxy: Proxy,
        parsed: ParsedRequest,
        route_request: RouteRequest,
        start_s: float,
        parsed_s: float,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        """``start_s``: ``time.perf_counter()`` when the handler took the request; ``parsed_s``:
        when its body had been read and parsed (both for ``Server-Timing``)."""
        self.proxy = proxy
        self._parse_s = parsed_s - start_s
        self.on_done = on_done
        self.parsed = parsed
        self.route_request = route_request
        self.request_id = route_request.request_id
        self.m = Measured(
            request_id=route_request.request_id,
            model=parsed.model,
            stream=parsed.stream,
            prompt_tokens=parsed.prompt_tokens,
            start_s=start_s,
        )
        self.status_code = 200
        self.background = None
        self._client_gone = False
        self._route: Route | None = None
        self._sent_at = 0.0  # loop time the upstream request was sent
        self._sent_mono = 0.0  # time.monotonic() then (the fleet's clock)
        self._route_s = 0.0  # spent deciding, every attempt
        self._upstream_s = 0.0  # perf_counter when the latest attempt's upstream request was issued

    # --- ASGI ----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        down = Downstream(send, [(b"x-request-id", self.request_id.encode())])
        watcher = asyncio.get_running_loop().create_task(self._watch(receive, task, down))
        proxy = self.proxy
        proxy.inflight_requests += 1
        if self.parsed.stream:
            proxy.inflight_streams += 1
        try:
            await self._serve(down)
        except OpenAIError as exc:
            await self._send_error(down, exc)
        except asyncio.CancelledError:
            if not self._client_gone:
                raise
            task.uncancel()
            self.m.fail("cancelled", 499, "client_disconnected")
        except Exception as exc:  # a bug: answer 500 and report it, never hang the client
            log.exception("exchange_failed", request_id=self.request_id)
            await self._send_error(down, OpenAIError(HTTPStatus.INTERNAL_SERVER_ERROR, "internal gateway error"))
            self.m.error_class = f"internal:{type(exc).__name__}"
        finally:
            down.done = True
            watcher.cancel()
            proxy.inflight_requests -= 1
            if self.parsed.stream:
                proxy.inflight_streams -= 1
            if self.on_done is not None:
                self.on_done()
            self._finish()

    async def _watch(self, receive: Receive, task: asyncio.Task[None], down: Downstream) -> None:
        """Cancel the exchange when the client goes away before its response is complete
        (``done``: the last body part is being sent, so a disconnect is the normal end)."""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if not down.done:
                    self._client_gone = True
                    task.cancel()
                return

    async def _send_error(self, down: Downstream, exc: OpenAIError) -> None:
        self.m.fail("error", exc.status.value, exc.error_class)
        await down.error(exc)

    # --- attempts ------------------------------------------------------------------------

    async def _serve(self, down: Downstream) -> None:
        proxy, m = self.proxy, self.m
        self._check_fleet()
        exclude: list[str] = []
        failure = ""
        while True:
            asked_s = time.perf_counter()
            try:
                route = await proxy.routing.route(self.route_request, exclude)
            except OpenAIError as exc:
                if not exclude:
                    raise
                raise self._unreachable(failure) from exc  # every instance left has failed
            finally:
                self._route_s += time.perf_counter() - asked_s
            self._route = route
            m.attempts += 1
            m.instance_id, m.policy, m.fallback = route.instance_id, route.policy, not route.via_router
            proxy.fleet.on_dispatch(self.request_id, route.instance_id, m.prompt_tokens, time.monotonic())
            try:
                response = await self._open(route)
            except (ConnectFailed, ConnectionBroken) as exc:
                # Failures before any response: the request never reached an engine, so
                # another instance may take it. After the response head, never.
                if isinstance(exc, ConnectionBroken) and not exc.before_response:
                    raise _upstream_broke(route, exc) from None
                kind = "connect" if isinstance(exc, ConnectFailed) else "disconnected"
                self._attempt_failed(route, kind, str(exc))
                exclude.append(route.instance_id)
                failure = kind
                if m.attempts >= proxy.settings.max_attempts:
                    raise self._unreachable(kind) from None
                proxy.metrics.retries.inc()
                continue
            except ProtocolError as exc:
                raise _upstream_broke(route, exc) from None
            break
        down.extra_headers.extend(route_headers(route))
        down.extra_headers.append(server_timing(self._parse_s, self._route_s, self._upstream_s - m.start_s))
        try:
            if response.status != 200:
                m.fail("error", response.status, f"upstream_{response.status}")
                await pass_error(down, response, proxy.settings.idle_timeout_s)
            elif self.parsed.stream:
                await self._relay(down, response)
            else:
                await self._assemble(down, response)
        except RelayTimeout as exc:
            raise self._deadline(exc.what) from None
        except HttpError as exc:
            raise _upstream_broke(route, exc) from None
        finally:
            response.close()

    def _unreachable(self, kind: str) -> OpenAIError:
        m = self.m
        last = f"; last: {m.instance_id} ({kind})" if m.instance_id else ""
        return OpenAIError(
            HTTPStatus.BAD_GATEWAY,
            f"Could not reach an instance for model `{m.model}` ({m.attempts} attempts{last}).",
            error_class=f"upstream_{kind}",
        )

    def _check_fleet(self) -> None:
        """404 for a model no known instance serves (when the gateway knows any instance);
        400 for a request that fits no instance's context, in vLLM's words."""
        fleet, m, parsed = self.proxy.fleet, self.m, self.parsed
        if len(fleet) and not fleet.serves(m.model):
            raise model_not_found(m.model)
        limit = fleet.context_limit(m.model)
        if limit is not None and m.prompt_tokens + (parsed.expected_output_tokens or 0) > limit:
            raise context_too_long(
                limit, m.prompt_tokens, parsed.expected_output_tokens, parsed.prompt_param, parsed.output_param
            )

    async def _open(self, route: Route) -> Response:
        proxy = self.proxy
        s = proxy.settings
        url = route.url.rstrip("/") + self.parsed.path
        headers = {**proxy.upstream_headers, "x-request-id": self.request_id}
        self._sent_at = asyncio.get_running_loop().time()
        self._sent_mono = time.monotonic()
        self._upstream_s = time.perf_counter()
        whole = not self.parsed.stream and s.response_timeout_s < s.first_token_timeout_s
        try:
            async with asyncio.timeout(s.response_timeout_s if whole else s.first_token_timeout_s):
                return await proxy.upstream.request("POST", url, self.parsed.upstream_body, headers)
        except TimeoutError:
            raise self._deadline("response_timeout" if whole else "first_token_timeout") from None

    def _attempt_failed(self, route: Route, kind: str, detail: str) -> None:
        proxy, now = self.proxy, time.monotonic()
        proxy.metrics.upstream_failures.labels(kind).inc()
        proxy.fleet.on_finish(self.request_id, now)
        self._report(route.instance_id, f"upstream_{kind}", now)
        log.warning(
            "upstream_unreachable", request_id=self.request_id, instance_id=route.instance_id, kind=kind, error=detail
        )
        if route.via_router:
            if proxy.feedback is not None:
                proxy.feedback(
                    attempt_failed_feedback(self.m, route.instance_id, f"upstream_{kind}", time.perf_counter())
                )
        else:
            outcome = Outcome(self.request_id, route.instance_id, self.m.prompt_tokens, 0, None, None, 0.0, kind)
            proxy.routing.policy.on_outcome(outcome, now)

    def _report(
        self, instance_id: str, error_class: str | None, now: float, silent_since_s: float | None = None
    ) -> None:
        """Outlier ejection: a failure that blames the instance ejects it for a backoff (not a
        deadline missed by an attempt that received nothing since ``silent_since_s`` while the
        instance served others: that is queueing)."""
        backoff = self.proxy.fleet.report(instance_id, error_class, now, silent_since_s)
        if backoff is not None:
            log.warning(
                "instance_ejected", request_id=self.request_id, instance_id=instance_id, error_class=error_class,
                backoff_s=backoff,
            )  # fmt: skip

    def _deadline(self, what: str) -> OpenAIError:
        s = self.proxy.settings
        limits = {
            "first_token_timeout": s.first_token_timeout_s,
            "response_timeout": s.response_timeout_s,
            "idle_timeout": s.idle_timeout_s,
        }
        instance = self._route.instance_id if self._route is not None else "?"
        return OpenAIError(
            HTTPStatus.GATEWAY_TIMEOUT,
            f"Instance {instance} exceeded the gateway's {what} ({limits[what]:g} s).",
            error_class=what,
        )

    # --- responses -----------------------------------------------------------------------

    async def _assemble(self, down: Downstream, response: Response) -> None:
        """A non-streamed client: the upstream stream collected into one answer."""
        s, m = self.proxy.settings, self.m
        scanner = StreamScanner(strip_usage=False)
        assembler = Assembler(self.parsed.kind)

        async def collect(events: bytes) -> None:
            assembler.feed(events)

        try:
            async with asyncio.timeout_at(self._sent_at + s.response_timeout_s):
                await self._scan(collect, response, scanner)
        except TimeoutError:
            raise RelayTimeout("response_timeout") from None
        if assembler.error is not None:
            code = assembler.error.get("code")
            status = code if isinstance(code, int) and 400 <= code <= 599 else 500
            m.fail("error", status, "upstream_stream_error")
            await down.whole(status, JSON.encode(), json.dumps({"error": assembler.error}).encode())
            return
        await down.whole(200, JSON.encode(), json.dumps(assembler.body()).encode())

    async def _relay(self, down: Downstream, response: Response) -> None:
        m = self.m
        scanner = StreamScanner(strip_usage=not self.parsed.client_usage)
        await self._scan(down.part, response, scanner)
        if scanner.error is not None:
            code = scanner.error.get("code")
            m.fail("error", code if isinstance(code, int) and 400 <= code <= 599 else 500, "upstream_stream_error")
        await down.end()

    async def _scan(
        self, forward: Callable[[bytes], Awaitable[None]], response: Response, scanner: StreamScanner
    ) -> None:
        """Relay the upstream stream to ``forward`` with the first-token and idle deadlines;
        502 ``upstream_incomplete`` if it ends without ``[DONE]``."""
        s, m = self.proxy.settings, self.m
        try:
            await relay_stream(
                forward, response, scanner, self._sent_at + s.first_token_timeout_s, s.idle_timeout_s, self._first_token
            )
        finally:
            m.last_token_s = scanner.last_token_s
            m.completion_tokens = scanner.completion_tokens
        if not scanner.done:
            raise OpenAIError(
                HTTPStatus.BAD_GATEWAY,
                f"Instance {m.instance_id} ended the stream without [DONE].",
                error_class="upstream_incomplete",
            )

    def _first_token(self, at_s: float) -> None:
        proxy, m, route = self.proxy, self.m, self._route
        assert route is not None
        m.first_token_s = at_s
        now = time.monotonic()
        proxy.fleet.on_first_token(self.request_id, now)
        proxy.fleet.progress(route.instance_id, now)
        if route.via_router:
            if proxy.feedback is not None:
                proxy.feedback(first_token_feedback(m, route.instance_id))
        else:
            proxy.routing.policy.on_first_token(self.request_id, route.instance_id, now)

    # --- the end -------------------------------------------------------------------------

    def _finish(self) -> None:
        proxy, m, route = self.proxy, self.m, self._route
        m.end_s = time.perf_counter()
        now = time.monotonic()
        if route is not None:
            proxy.fleet.on_finish(self.request_id, now)
            silent_since = self._sent_mono if m.first_token_s is None else None
            self._report(route.instance_id, None if m.status == "ok" else m.error_class, now, silent_since)
            if route.via_router:
                if proxy.feedback is not None:
                    proxy.feedback(final_feedback(m, route.instance_id))
            else:
                error = None if m.status == "ok" else (m.error_class or m.status)
                outcome = Outcome(
                    self.request_id, route.instance_id, m.prompt_tokens, m.completion_tokens,
                    m.ttft_s, m.tpot_s, m.e2e_s, error,
                )  # fmt: skip
                proxy.routing.policy.on_outcome(outcome, now)
            if m.status == "ok":
                proxy.metrics.observe_latency(route.instance_id, route.policy, m.ttft_s, m.tpot_s, m.e2e_s)
        proxy.metrics.requests.labels(_endpoint(self.parsed), m.status, str(m.http_status)).inc()
        try:
            proxy.publish(outcome_event(m))
        except ValidationError as exc:  # a bug in the mapping: never the client's problem
            log.error("outcome_invalid", request_id=self.request_id, error=str(exc))
        if m.status == "error":
            log.info(
                "request_failed", request_id=self.request_id, model=m.model, instance_id=m.instance_id,
                http_status=m.http_status, error_class=m.error_class, attempts=m.attempts, fallback=m.fallback,
            )  # fmt: skip
        else:
            log.debug(
                "request_done", request_id=self.request_id, instance_id=m.instance_id, status=m.status,
                ttft_s=m.ttft_s, tpot_s=m.tpot_s, e2e_s=m.e2e_s, completion_tokens=m.completion_tokens,
            )  # fmt: skip


def _upstream_broke(route: Route | None, exc: HttpError) -> OpenAIError:
    instance = route.instance_id if route is not None else "?"
    return OpenAIError(
        HTTPStatus.BAD_GATEWAY,
        f"The connection to instance {instance} broke ({type(exc).__name__}).",
        error_class="upstream_disconnected",
    )


def server_timing(parse_s: float, route_s: float, gateway_s: float) -> tuple[bytes, bytes]:
    """The W3C ``Server-Timing`` header of an answer, in milliseconds: ``parse``, from the moment
    the gateway's handler took the request to its body read and parsed (admission, validation,
    tokenising, hashing); ``route``, the time spent deciding where to send it (every
    attempt's); ``gateway``, from the same first moment to the moment it issued the upstream
    request of the attempt that answered: the gateway's own share of the time to first token,
    without the network hops and the instance (which the client's own clock cannot separate).
    ``parse`` and ``route`` are disjoint parts of ``gateway``."""
    return (
        b"server-timing",
        f"parse;dur={parse_s * 1e3:.3f}, route;dur={route_s * 1e3:.3f}, gateway;dur={gateway_s * 1e3:.3f}".encode(),
    )


def route_headers(route: Route) -> list[tuple[bytes, bytes]]:
    """Which instance answered and how it was chosen, as response headers, so clients and
    benchmarks attribute latency to instances without reading the gateway's events: ``router``
    (the router's policy), ``explore`` (its exploration), ``heuristic`` (its policy's own
    fallback, e.g. the learned policy before a confident model) or ``fallback:<reason>`` (this
    gateway decided locally)."""
    if not route.via_router:
        how = f"fallback:{route.fallback_reason or 'local'}"
    elif route.heuristic:
        how = "heuristic"
    else:
        how = "explore" if route.explore else "router"
    return [(b"x-lodestar-instance", route.instance_id.encode()), (b"x-lodestar-decision", how.encode())]
