"""Where a request goes: the router first, within a small time budget; the local fallback
policy when the router is unset, skipped, late or failing. Never silently: every local
decision is counted by reason and marked in the outcome.

Reasons for a local decision: ``no_router`` (no router URL), ``router_error`` (the embedded
router's policy raised, :mod:`lodestar_gateway.embedded`), ``circuit_open`` (the router is
skipped for ``cooldown_s`` after ``failure_threshold`` consecutive timeouts/connection/5xx
errors; then asked again), ``timeout``, ``connect``, ``http_error`` (a 5xx), ``rejected`` (a
4xx: a contract mismatch, logged), ``bad_response`` (an answer that does not parse), and
``no_instance`` (the router has no usable instance; the gateway's own view may differ).

Instances the gateway holds ejected (outlier ejection, :mod:`lodestar.policy.ejection`) are
added to the router's ``exclude``, so a failure counts at once, before the router has the
failed feedback; the local policy sees them as unhealthy through the same directory.

The router expects feedback only for its own decisions (:attr:`Route.via_router`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Protocol

import structlog
from pydantic import ValidationError

from lodestar.http_client import HttpClient, HttpError
from lodestar.policy.contracts import NoCandidateError, Policy, RequestView
from lodestar_gateway.errors import no_instance
from lodestar_gateway.fleet import LocalFleet
from lodestar_gateway.metrics import GatewayMetrics
from lodestar_schemas.router_api import RouteRequest, RouteResponse

log = structlog.get_logger(__name__)

_JSON = {"content-type": "application/json"}


@dataclass(frozen=True, slots=True)
class Route:
    instance_id: str
    url: str
    policy: str
    via_router: bool
    fallback_reason: str | None = None
    explore: bool = False
    model_version: int | None = None
    heuristic: bool = False  # the router's policy decided with its own heuristic (no confident model)


class RouteSource(Protocol):
    """The router as the gateway asks it: over HTTP (:class:`RouterClient`) or in this process
    (:class:`~lodestar_gateway.embedded.EmbeddedRouter`)."""

    @property
    def open(self) -> bool:
        """True while the router is skipped."""
        ...

    async def route(self, request: RouteRequest) -> RouteResponse:
        """The router's answer; RouterUnavailableError with the reason otherwise."""
        ...


class RouterUnavailableError(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class RouterClient:
    """``POST {base_url}/v1/route`` on a shared keep-alive client, with a circuit breaker."""

    def __init__(
        self,
        client: HttpClient,
        base_url: str,
        timeout_s: float,
        failure_threshold: int = 3,
        cooldown_s: float = 1.0,
        metrics: GatewayMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        timeout_per_1k_tokens_s: float = 0.0,
    ) -> None:
        self.client = client
        self.url = base_url.rstrip("/") + "/v1/route"
        self.timeout_s = timeout_s
        self.timeout_per_1k_tokens_s = timeout_per_1k_tokens_s
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.metrics = metrics
        self.clock = clock
        self.consecutive_failures = 0
        self._skip_until = 0.0

    @property
    def open(self) -> bool:
        """True while the router is skipped."""
        return self.clock() < self._skip_until

    def budget_s(self, prompt_tokens: int) -> float:
        """Time allowed for one route call: the base budget plus an allowance per 1,000 prompt
        tokens. A long prompt's body (its block hashes) and the router's prefix lookup grow with
        it, and so does what a blind fallback choice can cost (seconds of uncached prefill)."""
        return self.timeout_s + self.timeout_per_1k_tokens_s * prompt_tokens / 1000.0

    async def route(self, request: RouteRequest) -> RouteResponse:
        """The router's answer; RouterUnavailableError with the reason otherwise."""
        if self.open:
            raise RouterUnavailableError("circuit_open")
        budget = self.budget_s(request.prompt_tokens)
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(budget):
                response = await self.client.request("POST", self.url, request.model_dump_json().encode(), _JSON)
                try:
                    content = await response.read()
                finally:
                    response.close()
        except TimeoutError:
            raise self._failed("timeout", t0, f"no answer in {budget * 1000:.0f} ms") from None
        except HttpError as exc:
            raise self._failed("connect", t0, f"{type(exc).__name__}: {exc}") from None
        status = response.status
        if status == 200:
            try:
                answer = RouteResponse.model_validate_json(content)
            except ValidationError as exc:
                self._observe("bad_response", t0)
                self._success()
                raise RouterUnavailableError("bad_response", str(exc.errors(include_url=False)[:1])) from None
            self._observe("ok", t0)
            self._success()
            return answer
        if status == 503:
            self._observe("no_instance", t0)
            self._success()
            raise RouterUnavailableError("no_instance", _message(content))
        if status >= 500:
            raise self._failed("http_error", t0, f"HTTP {status}: {_message(content)}")
        self._observe("rejected", t0)
        self._success()
        raise RouterUnavailableError("rejected", f"HTTP {status}: {_message(content)}")

    def _observe(self, result: str, t0: float) -> None:
        if self.metrics is not None:
            self.metrics.observe_route(result, time.perf_counter() - t0)

    def _success(self) -> None:
        if self.consecutive_failures >= self.failure_threshold:
            log.info("router_back", after_failures=self.consecutive_failures)
        self.consecutive_failures = 0

    def _failed(self, reason: str, t0: float, detail: str) -> RouterUnavailableError:
        self._observe(reason, t0)
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.failure_threshold:
            self._skip_until = self.clock() + self.cooldown_s
            if self.consecutive_failures == self.failure_threshold:
                log.warning(
                    "router_skipped", reason=reason, detail=detail, failures=self.consecutive_failures,
                    cooldown_s=self.cooldown_s,
                )  # fmt: skip
        return RouterUnavailableError(reason, detail)


def _message(content: bytes) -> str:
    try:
        error = json.loads(content).get("error", {})
        return str(error.get("message", ""))[:300]
    except (ValueError, AttributeError):
        return ""


class Routing:
    """The router, else the local policy over the gateway's own fleet view."""

    def __init__(self, router: RouteSource | None, fleet: LocalFleet, policy: Policy, metrics: GatewayMetrics) -> None:
        self.router = router
        self.fleet = fleet
        self.policy = policy
        self.metrics = metrics

    async def route(self, request: RouteRequest, exclude: Collection[str] = ()) -> Route:
        """A route for ``request`` (``request.exclude`` is replaced by ``exclude``); a 503
        OpenAIError when neither the router nor the local policy has an instance."""
        if self.router is None:
            reason = "no_router"
        else:
            # the gateway's own ejections hold before the router has the failed feedback
            ejected = [i for i in self.fleet.ejected_ids(time.monotonic()) if i not in exclude]
            excluding = [*exclude, *ejected]
            req = request if not excluding else request.model_copy(update={"exclude": excluding})
            try:
                answer = await self.router.route(req)
            except RouterUnavailableError as exc:
                reason = exc.reason
                if reason in ("rejected", "bad_response"):
                    log.error("router_contract_error", reason=reason, detail=exc.detail, request_id=request.request_id)
            else:
                return Route(
                    instance_id=answer.instance_id,
                    url=answer.url,
                    policy=answer.policy,
                    via_router=True,
                    explore=answer.explore,
                    model_version=answer.model_version,
                    heuristic=answer.fallback,
                )
        self.metrics.fallbacks.labels(reason).inc()
        return self.local(request, exclude, reason)

    def local(self, request: RouteRequest, exclude: Collection[str], reason: str) -> Route:
        now = time.monotonic()
        candidates = self.fleet.candidates(request.model, now, exclude)
        if not candidates:
            why = "every instance failed" if exclude else "the gateway knows no instance serving it"
            raise no_instance(request.model, why)
        view = RequestView(
            request_id=request.request_id,
            model=request.model,
            prompt_tokens=request.prompt_tokens,
            block_hashes=tuple(request.block_hashes),
            expected_output_tokens=request.expected_output_tokens,
            tenant=request.tenant,
            session_id=request.session_id,
        )
        try:
            decision = self.policy.decide(view, candidates, now)
        except NoCandidateError as exc:
            raise no_instance(request.model, exc.reason) from None
        url = self.fleet.url(decision.instance_id)
        if url is None:  # a policy bug: it chose an instance it was not offered
            raise no_instance(request.model, f"policy {self.policy.name!r} chose an unknown instance")
        return Route(
            instance_id=decision.instance_id,
            url=url,
            policy=decision.policy,
            via_router=False,
            fallback_reason=reason,
            explore=decision.explore,
        )
