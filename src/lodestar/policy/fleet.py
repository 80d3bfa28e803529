"""The router-side view of the fleet, kept the same way by the simulator, the live router and
replay: the last scrape of each instance plus the router's own accounting of what it sent.

Call order per request: :meth:`FleetState.on_dispatch` when the request is sent,
:meth:`FleetState.on_first_token` when its first token arrives, :meth:`FleetState.on_finish`
when it ends (finished, failed or cancelled). The latter two are idempotent and ignore unknown
request ids. Times are host seconds (virtual in the simulator, monotonic when live).
Not thread-safe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from lodestar.policy.contracts import InstanceView


@dataclass(slots=True)
class _Instance:
    instance_id: str
    model: str
    max_model_len: int | None
    healthy: bool = True
    num_running: int = 0
    num_waiting: int = 0
    kv_usage_frac: float = 0.0
    prefix_hit_rate: float | None = None
    kv_capacity_blocks: int | None = None
    scraped_at_s: float | None = None
    inflight_requests: int = 0
    inflight_prefill_requests: int = 0
    inflight_prefill_tokens: int = 0
    requests: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Request:
    instance_id: str
    prompt_tokens: int
    prefilling: bool = True


class FleetState:
    """Instances by id, their last scrape, and the requests dispatched to them."""

    def __init__(self) -> None:
        self._instances: dict[str, _Instance] = {}
        self._requests: dict[str, _Request] = {}

    # --- instances -------------------------------------------------------------------------

    def upsert_instance(self, instance_id: str, model: str, max_model_len: int | None = None) -> None:
        """Add an instance (healthy, never scraped) or update its model and context limit,
        keeping its scrape and in-flight accounting."""
        if max_model_len is not None and max_model_len < 1:
            raise ValueError(f"max_model_len must be >= 1, got {max_model_len}")
        inst = self._instances.get(instance_id)
        if inst is None:
            self._instances[instance_id] = _Instance(instance_id, model, max_model_len)
        else:
            inst.model = model
            inst.max_model_len = max_model_len

    def remove_instance(self, instance_id: str) -> None:
        """Forget an instance and the requests in flight on it (no-op if unknown)."""
        inst = self._instances.pop(instance_id, None)
        if inst is not None:
            for rid in inst.requests:
                self._requests.pop(rid, None)

    def update_scrape(
        self,
        instance_id: str,
        *,
        num_running: int,
        num_waiting: int,
        kv_usage_frac: float,
        prefix_hit_rate: float | None,
        healthy: bool,
        at_s: float,
        kv_capacity_blocks: int | None = None,
    ) -> bool:
        """Record one scrape taken at ``at_s`` (``kv_capacity_blocks``: the KV blocks the engine
        reports, kept from an earlier scrape when None). Returns False (and changes nothing)
        for an instance that was never upserted."""
        inst = self._instances.get(instance_id)
        if inst is None:
            return False
        inst.num_running = num_running
        inst.num_waiting = num_waiting
        inst.kv_usage_frac = kv_usage_frac
        inst.prefix_hit_rate = prefix_hit_rate
        inst.healthy = healthy
        inst.scraped_at_s = at_s
        if kv_capacity_blocks is not None:
            inst.kv_capacity_blocks = kv_capacity_blocks
        return True

    def instance_ids(self) -> list[str]:
        return sorted(self._instances)

    # --- requests --------------------------------------------------------------------------

    def on_dispatch(self, request_id: str, instance_id: str, prompt_tokens: int, at_s: float) -> None:
        """``request_id`` (``prompt_tokens`` long) was sent to ``instance_id``. A request id
        already in flight is first released (a retry moves it)."""
        inst = self._instances.get(instance_id)
        if inst is None:
            raise KeyError(f"dispatch to unknown instance {instance_id!r}")
        if prompt_tokens < 0:
            raise ValueError(f"prompt_tokens must be >= 0, got {prompt_tokens}")
        if request_id in self._requests:
            self.on_finish(request_id, at_s)
        self._requests[request_id] = _Request(instance_id, prompt_tokens)
        inst.requests.add(request_id)
        inst.inflight_requests += 1
        inst.inflight_prefill_requests += 1
        inst.inflight_prefill_tokens += prompt_tokens

    def on_first_token(self, request_id: str, at_s: float) -> None:
        """The first token of ``request_id`` arrived (idempotent; unknown ids ignored)."""
        req = self._requests.get(request_id)
        if req is None or not req.prefilling:
            return
        req.prefilling = False
        inst = self._instances[req.instance_id]
        inst.inflight_prefill_requests -= 1
        inst.inflight_prefill_tokens -= req.prompt_tokens

    def on_finish(self, request_id: str, at_s: float) -> None:
        """``request_id`` ended, with or without error (idempotent; unknown ids ignored)."""
        req = self._requests.pop(request_id, None)
        if req is None:
            return
        inst = self._instances[req.instance_id]
        inst.requests.discard(request_id)
        inst.inflight_requests -= 1
        if req.prefilling:
            inst.inflight_prefill_requests -= 1
            inst.inflight_prefill_tokens -= req.prompt_tokens

    def inflight(self, request_id: str) -> str | None:
        """The instance ``request_id`` is in flight on, if any."""
        req = self._requests.get(request_id)
        return req.instance_id if req is not None else None

    # --- views -----------------------------------------------------------------------------

    def candidates(self, model: str, now_s: float) -> list[InstanceView]:
        """Every instance serving ``model`` (healthy or not), sorted by instance id."""
        out: list[InstanceView] = []
        for iid in sorted(self._instances):
            inst = self._instances[iid]
            if inst.model != model:
                continue
            age = math.inf if inst.scraped_at_s is None else max(0.0, now_s - inst.scraped_at_s)
            out.append(
                InstanceView(
                    instance_id=iid,
                    model=inst.model,
                    healthy=inst.healthy,
                    num_running=inst.num_running,
                    num_waiting=inst.num_waiting,
                    kv_usage_frac=inst.kv_usage_frac,
                    prefix_hit_rate=inst.prefix_hit_rate,
                    state_age_s=age,
                    max_model_len=inst.max_model_len,
                    kv_capacity_blocks=inst.kv_capacity_blocks,
                    inflight_requests=inst.inflight_requests,
                    inflight_prefill_requests=inst.inflight_prefill_requests,
                    inflight_prefill_tokens=inst.inflight_prefill_tokens,
                )
            )
        return out
