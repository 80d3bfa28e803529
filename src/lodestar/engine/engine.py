"""One inference instance in virtual time: vLLM's scheduler over a paged KV cache, timed by
the roofline step model.

Scheduling follows vLLM v1: each step first serves running requests in admission order (one
token per decoding request; the rest of the budget to unfinished prefills, i.e. chunked
prefill), preempting the newest running request by recompute when KV blocks run out; then,
if nothing was preempted, admits waiting requests first-come-first-served while the token
budget (``max_num_batched_tokens``), ``max_num_seqs`` and free blocks allow, reusing cached
prefix blocks. A request samples a token at the end of the step that computes its last
pending token; its first token ends its prefill.

Decode-only stretches (no admission possible, nothing preempted, nobody finishing) are
planned as one *run* of k steps whose durations come from a closed form; this is exactly
equal to k single steps and makes hour-long simulations fast. Any arrival, abort or fault
truncates a run to the step in progress, and a run planned while a request is still in the
API server's hand-off (``api_overhead_s``) ends with the step in progress when it arrives.

Hosts drive an engine with: ``advance(until_s)`` (apply every step that ends by then),
``add(request, now_s)`` / ``abort(request_id, now_s)`` after advancing to ``now_s``, and
``next_event_s()`` to know when to come back. Not thread-safe.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from lodestar.engine.kvcache import KVCache
from lodestar.engine.profiles import InstanceProfile
from lodestar.engine.request import EngineRequest, FinishedRequest, SeqStatus, StepEvents, TokenRun
from lodestar.engine.steptime import StepCostModel, batch_work


class RequestRejectedError(ValueError):
    """The request can never run on this instance (too long for its context or KV cache)."""


@dataclass
class _Plan:
    """Planned steps: ``ends_s[i]`` is the end of step i; the first ``done`` are applied."""

    start_s: float
    ends_s: list[float]
    entries: list[tuple[EngineRequest, int]] = field(default_factory=list)
    run: list[EngineRequest] | None = None
    done: int = 0


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    num_running: int
    num_waiting: int
    kv_usage_frac: float
    prefix_query_tokens: int
    prefix_hit_tokens: int
    num_preemptions: int
    num_gpu_blocks: int


def _cut_after_step_at(ends_s: list[float], at_s: float, lo: int = 0) -> None:
    """Drop the planned steps after the one in progress at ``at_s`` (those ending by then stay;
    ``lo``: steps already applied)."""
    del ends_s[bisect.bisect_right(ends_s, at_s, lo=lo) + 1 :]


class Engine:
    """A single vLLM-like instance. ``speed_factor`` > 1 slows every step (fault injection)."""

    def __init__(self, profile: InstanceProfile, max_run_steps: int = 4096) -> None:
        self.profile = profile
        self.cost = StepCostModel(profile)
        self.kv = KVCache(profile.num_gpu_blocks, profile.block_size, profile.enable_prefix_caching)
        self.block_size = profile.block_size
        self.max_run_steps = max_run_steps
        self.running: list[EngineRequest] = []
        self.waiting: deque[EngineRequest] = deque()
        self._arriving: list[tuple[float, int, EngineRequest]] = []
        self._arrival_seq = itertools.count()
        self._requests: dict[str, EngineRequest] = {}
        self._plan: _Plan | None = None
        self._clock = 0.0
        self._stalled_until = 0.0
        self.speed_factor = 1.0
        self.num_preemptions = 0
        self.num_steps = 0

    # --- host interface --------------------------------------------------------------------

    def add(self, request: EngineRequest, now_s: float) -> None:
        """Queue ``request`` arriving at ``now_s`` (call ``advance(now_s)`` first). It reaches
        the scheduler ``api_overhead_s`` later (the API server's parsing and hand-off)."""
        limit = self.profile.context_limit
        if request.prompt_tokens + request.max_output_tokens > limit:
            raise RequestRejectedError(
                f"request {request.request_id}: {request.prompt_tokens} prompt + {request.max_output_tokens} "
                f"output tokens exceed this instance's max_model_len {limit}"
            )
        if request.request_id in self._requests:
            raise ValueError(f"duplicate request id {request.request_id!r}")
        ready = now_s + self.profile.api_overhead_s
        self._interrupt(now_s, ready)
        request.status = SeqStatus.WAITING
        heapq.heappush(self._arriving, (ready, next(self._arrival_seq), request))
        self._requests[request.request_id] = request

    def abort(self, request_id: str, now_s: float) -> bool:
        """Drop a request (client went away). True if it was still in the engine."""
        req = self._requests.pop(request_id, None)
        if req is None:
            return False
        self._interrupt(now_s)
        if req.status is SeqStatus.RUNNING:
            self.running.remove(req)
            self.kv.free(req.blocks)
            req.blocks = []
        elif req in self.waiting:
            self.waiting.remove(req)
        else:
            self._arriving = [a for a in self._arriving if a[2] is not req]
            heapq.heapify(self._arriving)
        req.status = SeqStatus.ABORTED
        return True

    def set_speed_factor(self, factor: float, now_s: float) -> None:
        """Make every step from the next one ``factor`` times slower (1.0 = nominal)."""
        if factor <= 0:
            raise ValueError(f"speed factor must be > 0, got {factor}")
        self._interrupt(now_s)
        self.speed_factor = factor

    def stall(self, until_s: float, now_s: float) -> None:
        """Start no step before ``until_s`` (the step in progress still ends)."""
        self._interrupt(now_s)
        self._stalled_until = max(self._stalled_until, until_s)

    def has_work(self) -> bool:
        return bool(self.running or self.waiting or self._arriving)

    def next_event_s(self) -> float | None:
        """End of the next planned step (planning one if there is work), else None."""
        plan = self._ensure_plan()
        return None if plan is None else plan.ends_s[plan.done]

    def plan_end_s(self) -> float | None:
        """End of the whole current plan (a run's last step): no event happens before it
        unless the host adds, aborts or injects a fault."""
        plan = self._ensure_plan()
        return None if plan is None else plan.ends_s[-1]

    def advance(self, until_s: float) -> StepEvents:
        """Apply every step that ends at or before ``until_s``; return what happened."""
        events = StepEvents()
        while True:
            plan = self._ensure_plan()
            if plan is None:
                break
            ready = bisect.bisect_right(plan.ends_s, until_s, lo=plan.done)
            if ready <= plan.done:
                break
            self._apply(plan, ready, events)
            if plan.done < len(plan.ends_s):
                break
            self._clock = plan.ends_s[-1]
            self._plan = None
        return events

    def snapshot(self) -> EngineSnapshot:
        return EngineSnapshot(
            num_running=len(self.running),
            num_waiting=len(self.waiting),
            kv_usage_frac=self.kv.usage_frac,
            prefix_query_tokens=self.kv.query_tokens,
            prefix_hit_tokens=self.kv.hit_tokens,
            num_preemptions=self.num_preemptions,
            num_gpu_blocks=self.kv.num_blocks,
        )

    def request(self, request_id: str) -> EngineRequest | None:
        return self._requests.get(request_id)

    # --- planning --------------------------------------------------------------------------

    def _ensure_plan(self) -> _Plan | None:
        if self._plan is None and self.has_work():
            self._plan = self._make_plan(max(self._clock, self._stalled_until))
        return self._plan

    def _interrupt(self, now_s: float, at_s: float | None = None) -> None:
        """Keep the planned steps that end by ``at_s`` (default ``now_s``) and the one in
        progress then; drop the rest so that the next plan sees what changes at ``at_s``."""
        at_s = now_s if at_s is None else at_s
        plan = self._plan
        if plan is None:
            self._clock = max(self._clock, now_s)
            return
        if plan.done == 0 and plan.start_s >= at_s:
            # Not started yet (it starts then, or after a stall): plan again. Blocks already
            # allocated stay with their requests, and the next pass accounts for them.
            self._plan = None
            return
        _cut_after_step_at(plan.ends_s, at_s, plan.done)

    def _make_plan(self, start_s: float) -> _Plan | None:
        arriving = self._arriving
        while arriving and arriving[0][0] <= start_s:
            self.waiting.append(heapq.heappop(arriving)[2])
        entries, admitted, preempted = self._schedule(start_s)
        if not entries:
            if arriving:  # idle until the next request reaches the scheduler
                return _Plan(start_s=start_s, ends_s=[max(arriving[0][0], start_s)])
            return None
        self.num_steps += 1
        pure_decode = not admitted and not preempted and len(entries) == len(self.running)
        if pure_decode and all(n == 1 for _, n in entries):
            reqs = [r for r, _ in entries]
            steps = self._run_length(reqs)
            if steps >= 2:
                ctx = sum(r.computed for r in reqs)
                durations = self.cost.decode_run_times(len(reqs), ctx, steps, self.speed_factor)
                ends = (start_s + np.cumsum(durations)).tolist()
                if arriving:  # a request reaches the scheduler during the run: it joins the step after
                    _cut_after_step_at(ends, arriving[0][0])
                return _Plan(start_s=start_s, ends_s=ends, run=reqs)
        work = batch_work([(n, r.computed) for r, n in entries])
        dt = self.cost.step_time(*work, speed_factor=self.speed_factor)
        return _Plan(start_s=start_s, ends_s=[start_s + dt], entries=entries)

    def _schedule(self, start_s: float) -> tuple[list[tuple[EngineRequest, int]], bool, bool]:
        """One vLLM v1 scheduling pass; allocates the blocks of the scheduled tokens."""
        kv, bs = self.kv, self.block_size
        budget = self.profile.batched_tokens
        entries: list[tuple[EngineRequest, int]] = []
        preempted = False
        running = self.running
        i = 0
        while i < len(running) and budget > 0:
            req = running[i]
            n = min(req.num_tokens - req.computed, budget)
            need = -(-(req.computed + n) // bs) - len(req.blocks)
            scheduled = True
            while need > kv.num_free:
                victim = running[-1]
                self._preempt(victim)
                preempted = True
                if victim is req:
                    scheduled = False
                    break
            if not scheduled:
                break
            if need > 0:
                req.blocks.extend(kv.allocate(need))
            entries.append((req, n))
            budget -= n
            i += 1
        admitted = False
        if not preempted:
            seqs_limit = self.profile.seqs_limit
            waiting = self.waiting
            while waiting and budget > 0 and len(running) < seqs_limit:
                req = waiting[0]
                hits = kv.cached_prefix(req.block_hashes[: (req.num_tokens - 1) // bs])
                computed = len(hits) * bs
                n = min(req.num_tokens - computed, budget)
                need = -(-(computed + n) // bs) - len(hits)
                if not kv.can_allocate(hits, need):
                    break
                kv.touch(hits)
                req.blocks = hits + kv.allocate(need)
                kv.record_query(req.num_tokens, computed)
                if req.preemptions == 0:
                    req.prefix_hit_tokens = computed
                req.computed = computed
                req.registered_blocks = len(hits)
                req.status = SeqStatus.RUNNING
                if req.scheduled_s is None:
                    req.scheduled_s = start_s
                waiting.popleft()
                running.append(req)
                entries.append((req, n))
                budget -= n
                admitted = True
        return entries, admitted, preempted

    def _run_length(self, reqs: list[EngineRequest]) -> int:
        """How many decode-only steps the current batch can take unchanged: until the first
        request finishes, within ``max_run_steps``, and while free blocks cover growth."""
        limit = min(min(r.remaining_output for r in reqs), self.max_run_steps)
        if limit < 2:
            return limit
        bs, free = self.block_size, self.kv.num_free
        computed = np.fromiter((r.computed for r in reqs), dtype=np.int64, count=len(reqs))
        have = np.fromiter((len(r.blocks) for r in reqs), dtype=np.int64, count=len(reqs))

        def extra_blocks(steps: int) -> int:
            return int(np.maximum(0, -(-(computed + steps) // bs) - have).sum())

        if extra_blocks(limit) <= free:
            return limit
        lo, hi = 1, limit  # extra_blocks(lo) == 0 <= free; extra_blocks(hi) > free
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if extra_blocks(mid) <= free:
                lo = mid
            else:
                hi = mid
        return lo

    def _preempt(self, req: EngineRequest) -> None:
        self.running.remove(req)
        self.kv.free(req.blocks)
        req.blocks = []
        req.computed = 0
        req.registered_blocks = 0
        req.status = SeqStatus.WAITING
        req.preemptions += 1
        self.num_preemptions += 1
        self.waiting.appendleft(req)

    # --- applying steps --------------------------------------------------------------------

    def _apply(self, plan: _Plan, ready: int, events: StepEvents) -> None:
        if plan.run is not None:
            self._apply_run(plan, ready, events)
            return
        end = plan.ends_s[0]
        sampled: list[str] = []
        for req, n in plan.entries:
            if req.status is not SeqStatus.RUNNING:
                continue  # aborted while the step ran
            req.computed += n
            self._register_prompt_blocks(req)
            if req.computed == req.num_tokens:
                req.output_tokens += 1
                sampled.append(req.request_id)
                if req.first_token_s is None:
                    req.first_token_s = end
                    events.first_tokens.append((req.request_id, end))
                if req.output_tokens >= req.max_output_tokens:
                    self._finish(req, end, events)
        if sampled:
            events.token_runs.append(TokenRun((end,), tuple(sampled)))
        plan.done = 1

    def _apply_run(self, plan: _Plan, ready: int, events: StepEvents) -> None:
        assert plan.run is not None
        steps = ready - plan.done
        kv, bs = self.kv, self.block_size
        alive = [r for r in plan.run if r.status is SeqStatus.RUNNING]
        for req in alive:
            # Step 1's blocks were allocated when the run was planned; later steps' now.
            need = -(-(req.computed + steps) // bs) - len(req.blocks)
            if need > 0:
                req.blocks.extend(kv.allocate(need))
            req.computed += steps
            req.output_tokens += steps
        end = plan.ends_s[ready - 1]
        if alive:
            events.token_runs.append(TokenRun(plan.ends_s[plan.done : ready], tuple(r.request_id for r in alive)))
        for req in alive:
            if req.output_tokens >= req.max_output_tokens:
                self._finish(req, end, events)
        plan.done = ready

    def _register_prompt_blocks(self, req: EngineRequest) -> None:
        full = min(min(req.computed, req.prompt_tokens) // self.block_size, len(req.block_hashes))
        if full > req.registered_blocks:
            for j in range(req.registered_blocks, full):
                self.kv.register(req.blocks[j], req.block_hashes[j])
            req.registered_blocks = full

    def _finish(self, req: EngineRequest, end_s: float, events: StepEvents) -> None:
        self.running.remove(req)
        self.kv.free(req.blocks)
        req.blocks = []
        req.status = SeqStatus.FINISHED
        req.finish_s = end_s
        self._requests.pop(req.request_id, None)
        first = req.first_token_s if req.first_token_s is not None else end_s
        events.finished.append(
            FinishedRequest(
                request_id=req.request_id,
                arrival_s=req.arrival_s,
                first_token_s=first,
                finish_s=end_s,
                prompt_tokens=req.prompt_tokens,
                output_tokens=req.output_tokens,
                prefix_hit_tokens=req.prefix_hit_tokens,
                preemptions=req.preemptions,
                queue_s=(req.scheduled_s if req.scheduled_s is not None else end_s) - req.arrival_s,
            )
        )
