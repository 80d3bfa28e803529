"""Drives one :class:`Engine` in real time and delivers its tokens to the requests' channels.

The engine is pure and virtual-time; this asyncio task is its host:

- loop: ask ``next_event_s()`` (the end of the next single step), sleep until that virtual time
  in wall time, ``advance`` to now, hand each token run / first token / completion to the
  request's :class:`RequestState` and to the metrics; sleep on an event while idle;
- ``submit`` / ``abort`` / faults: ``advance(now)`` first (delivering what is due), then change
  the engine, then wake the loop so that it re-plans;
- lag: each step's wall-clock lateness goes to the :class:`LagMonitor`.

Tokens are delivered when their step ends, never before. If the loop falls behind, several
steps are applied at once with their exact virtual times (metrics stay exact), late.
Event-loop only; one driver per engine.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence

from lodestar.emulator.clock import VirtualClock
from lodestar.emulator.lag import LagMonitor
from lodestar.emulator.metrics import InstanceMetrics
from lodestar.emulator.stream import CloseReason, RequestState
from lodestar.engine.engine import Engine, EngineSnapshot
from lodestar.engine.request import EngineRequest, StepEvents


class EngineDriver:
    def __init__(self, engine: Engine, clock: VirtualClock, metrics: InstanceMetrics, lag: LagMonitor) -> None:
        self.engine = engine
        self.clock = clock
        self.metrics = metrics
        self.lag = lag
        self._active: dict[str, RequestState] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="engine-driver")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- host interface ----------------------------------------------------------------------

    def active(self) -> Iterator[RequestState]:
        """Requests in the engine (submitted, not finished or aborted)."""
        return iter(list(self._active.values()))

    def sync(self) -> float:
        """Advance the engine to now, delivering what is due; returns virtual now."""
        now = self.clock.now_s()
        self._deliver(self.engine.advance(now))
        return now

    def submit(self, state: RequestState, block_hashes: Sequence[int]) -> None:
        """Put ``state``'s request into the engine at virtual now. Raises the engine's
        ``RequestRejectedError`` if it can never fit (nothing is registered then)."""
        now = self.sync()
        request = EngineRequest(state.engine_id, state.prompt_tokens, block_hashes, state.max_tokens, now)
        self.engine.add(request, now)
        state.arrival_s = now
        self._active[state.engine_id] = state
        self._wake.set()

    def abort(self, state: RequestState) -> bool:
        """Take an unfinished request out of the engine (counted as ``abort``)."""
        now = self.sync()
        if self._active.pop(state.engine_id, None) is None:
            return False
        self.engine.abort(state.engine_id, now)
        self.metrics.on_abort()
        self._wake.set()
        return True

    def close_all(self, reason: CloseReason) -> int:
        """Close every active request's channel (its response drops the connection and
        releases it, which aborts it). Returns how many were closed."""
        states = list(self._active.values())
        for state in states:
            state.close(reason)
        return len(states)

    def set_speed_factor(self, factor: float) -> None:
        now = self.sync()
        self.engine.set_speed_factor(factor, now)
        self._wake.set()

    def stall(self, duration_s: float) -> float:
        """Start no step for ``duration_s`` virtual seconds; returns the virtual end."""
        now = self.sync()
        until = now + duration_s
        self.engine.stall(until, now)
        self._wake.set()
        return until

    def snapshot(self) -> EngineSnapshot:
        self.sync()
        return self.engine.snapshot()

    # --- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        wake, engine, clock = self._wake, self.engine, self.clock
        while True:
            target = engine.next_event_s()
            if target is None:
                await wake.wait()
                wake.clear()
                continue
            due = clock.wall_s(target)
            if loop.time() < due:
                timer = loop.call_at(due, wake.set)
                await wake.wait()
                wake.clear()
                timer.cancel()
                if loop.time() < due:
                    continue  # woken by a submit/abort/fault: plan again
            now_wall = loop.time()
            self.lag.observe_step(now_wall - due, now_wall)
            self._deliver(engine.advance(max(clock.virtual_s(now_wall), target)))

    def _deliver(self, events: StepEvents) -> None:
        active, metrics = self._active, self.metrics
        for run in events.token_runs:
            times = run.times_s
            k = len(times)
            itl = metrics.itl
            for rid in run.request_ids:
                state = active.get(rid)
                if state is None:
                    continue
                if state.last_token_s is not None:
                    itl.observe(times[0] - state.last_token_s)
                state.push(k, times[-1])
            batch = len(run.request_ids)
            for j in range(1, k):
                itl.observe(times[j] - times[j - 1], batch)
            metrics.generation_tokens += k * batch
        for rid, t in events.first_tokens:
            state = active.get(rid)
            if state is not None:
                state.first_token_s = t
                metrics.on_first_token(t - state.arrival_s, state.prompt_tokens)
        for done in events.finished:
            state = active.pop(done.request_id, None)
            if state is not None:
                metrics.on_finished(done, state.max_tokens)
                state.finish(done)
