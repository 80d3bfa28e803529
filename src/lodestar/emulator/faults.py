"""Faults on demand, for reliability tests: a Python API and the admin endpoint's body.

Kinds (each applies from the moment it is set; durations are emulated seconds, i.e. wall
seconds × ``time_scale``; a fault with ``duration_s`` restores itself when it ends):

- ``slowdown``: every engine step from now on takes ``factor`` × its time (engine speed factor);
- ``stall``: the engine starts no step for ``duration_s`` (the step in progress still ends);
  a stall cannot be cut short (the engine has no call for it), not even by ``restore``;
- ``fail``: a ``fraction`` of new requests get HTTP 500 with an OpenAI error body (seeded RNG);
- ``drop``: a ``fraction`` of streams, new and in flight, lose their connection after a random
  number of tokens (at least one token is sent, and never the last one) (seeded RNG);
- ``go_away``: the listener closes (connections refused) and every connection drops; it comes
  back on the same port after ``duration_s`` or on ``restore``;
- ``restore``: back to nominal (except a running stall).

Several kinds can be active at once; setting a kind again replaces its previous setting.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat

from lodestar.emulator.clock import VirtualClock
from lodestar.emulator.driver import EngineDriver
from lodestar.emulator.metrics import InstanceMetrics
from lodestar.emulator.stream import CloseReason, RequestState

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class _Fault(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlowdownFault(_Fault):
    kind: Literal["slowdown"]
    factor: PositiveFloat = Field(description="step-time multiplier; 1 = nominal, 4 = four times slower")
    duration_s: PositiveFloat | None = None


class StallFault(_Fault):
    kind: Literal["stall"]
    duration_s: PositiveFloat


class FailFault(_Fault):
    kind: Literal["fail"]
    fraction: Fraction
    duration_s: PositiveFloat | None = None


class DropFault(_Fault):
    kind: Literal["drop"]
    fraction: Fraction
    duration_s: PositiveFloat | None = None


class GoAwayFault(_Fault):
    kind: Literal["go_away"]
    duration_s: PositiveFloat | None = Field(default=None, description="come back after this; else on restore")


class RestoreFault(_Fault):
    kind: Literal["restore"]


FaultSpec = Annotated[
    SlowdownFault | StallFault | FailFault | DropFault | GoAwayFault | RestoreFault,
    Field(discriminator="kind"),
]


class FaultStatus(BaseModel):
    """Faults in force on one instance; times are the instance's virtual seconds."""

    now_s: float
    speed_factor: float
    stalled_until_s: float | None
    fail_fraction: float
    drop_fraction: float
    gone: bool
    ends_s: dict[str, float] = Field(description="fault kind → virtual time it restores itself")


class Listener(Protocol):
    """What a fault needs from the instance's HTTP server (``server.InstanceServer``)."""

    def go_away(self) -> None: ...

    def come_back(self) -> None: ...

    @property
    def gone(self) -> bool: ...


class FaultInjector:
    """Applies faults to one instance. Event-loop only."""

    def __init__(
        self,
        driver: EngineDriver,
        listener: Listener,
        clock: VirtualClock,
        metrics: InstanceMetrics,
        seed: str,
        log: Any,
    ) -> None:
        self.driver = driver
        self.listener = listener
        self.clock = clock
        self.metrics = metrics
        self.log = log
        self.fail_fraction = 0.0
        self.drop_fraction = 0.0
        self._fail_rng = random.Random(f"{seed}:fail")
        self._drop_rng = random.Random(f"{seed}:drop")
        self._timers: dict[str, tuple[float, asyncio.TimerHandle]] = {}
        self._stalled_until_s: float | None = None

    # --- per-request decisions ---------------------------------------------------------------

    def should_fail(self) -> bool:
        """Whether this new request is failed (counts it)."""
        if self.fail_fraction <= 0.0 or self._fail_rng.random() >= self.fail_fraction:
            return False
        self.metrics.injected_failures += 1
        return True

    def arm_drop(self, state: RequestState) -> None:
        """With probability ``drop_fraction``, make a stream drop after some of its tokens."""
        if not state.stream or self.drop_fraction <= 0.0 or state.drop_after is not None:
            return
        remaining = state.max_tokens - state.tokens
        if remaining < 2 or self._drop_rng.random() >= self.drop_fraction:
            return
        state.drop_after = state.tokens + self._drop_rng.randint(1, remaining - 1)

    # --- the Python API ----------------------------------------------------------------------

    def slow_down(self, factor: float, duration_s: float | None = None) -> None:
        self.driver.set_speed_factor(factor)
        self._expire("slowdown", duration_s, lambda: self.driver.set_speed_factor(1.0))
        self.log.warning("fault: slowdown", factor=factor, duration_s=duration_s)

    def stall(self, duration_s: float) -> None:
        self._stalled_until_s = self.driver.stall(duration_s)
        self.log.warning("fault: stall", duration_s=duration_s)

    def fail(self, fraction: float, duration_s: float | None = None) -> None:
        self.fail_fraction = fraction
        self._expire("fail", duration_s, lambda: setattr(self, "fail_fraction", 0.0))
        self.log.warning("fault: fail", fraction=fraction, duration_s=duration_s)

    def drop_streams(self, fraction: float, duration_s: float | None = None) -> None:
        self._set_drop(fraction)
        self._expire("drop", duration_s, lambda: self._set_drop(0.0))
        self.log.warning("fault: drop", fraction=fraction, duration_s=duration_s)

    def _set_drop(self, fraction: float) -> None:
        self.drop_fraction = fraction
        for state in self.driver.active():
            if fraction <= 0.0:
                state.drop_after = None
            else:
                self.arm_drop(state)

    def go_away(self, duration_s: float | None = None) -> None:
        if not self.listener.gone:
            self.listener.go_away()
            dropped = self.driver.close_all(CloseReason.GONE)
            self.log.warning("fault: go_away", duration_s=duration_s, dropped_connections=dropped)
        self._expire("go_away", duration_s, self.come_back)

    def come_back(self) -> bool:
        """Listen again on the same port. False (logged, still gone) if the port was taken
        meanwhile; a later ``come_back``/``restore`` tries again."""
        self._cancel("go_away")
        if self.listener.gone:
            try:
                self.listener.come_back()
            except OSError as exc:
                self.log.error("fault: cannot come back", error=str(exc))
                return False
            self.log.warning("fault: back")
        return True

    def restore(self) -> None:
        for kind in list(self._timers):
            self._cancel(kind)
        self.driver.set_speed_factor(1.0)
        self.fail_fraction = 0.0
        self._set_drop(0.0)
        self.come_back()
        self.log.warning("fault: restored")

    def apply(self, spec: FaultSpec) -> FaultStatus:
        match spec:
            case SlowdownFault():
                self.slow_down(spec.factor, spec.duration_s)
            case StallFault():
                self.stall(spec.duration_s)
            case FailFault():
                self.fail(spec.fraction, spec.duration_s)
            case DropFault():
                self.drop_streams(spec.fraction, spec.duration_s)
            case GoAwayFault():
                self.go_away(spec.duration_s)
            case RestoreFault():
                self.restore()
        return self.status()

    def status(self) -> FaultStatus:
        now = self.clock.now_s()
        stalled = self._stalled_until_s if self._stalled_until_s is not None and self._stalled_until_s > now else None
        return FaultStatus(
            now_s=now,
            speed_factor=self.driver.engine.speed_factor,
            stalled_until_s=stalled,
            fail_fraction=self.fail_fraction,
            drop_fraction=self.drop_fraction,
            gone=self.listener.gone,
            ends_s={kind: end for kind, (end, _) in self._timers.items()},
        )

    def close(self) -> None:
        for kind in list(self._timers):
            self._cancel(kind)

    # --- timers ------------------------------------------------------------------------------

    def _expire(self, kind: str, duration_s: float | None, undo: Callable[[], object]) -> None:
        self._cancel(kind)
        if duration_s is None:
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.pop(kind, None)
            undo()
            self.log.warning("fault ended", kind=kind)

        handle = loop.call_later(self.clock.wall_duration_s(duration_s), fire)
        self._timers[kind] = (self.clock.now_s() + duration_s, handle)

    def _cancel(self, kind: str) -> None:
        entry = self._timers.pop(kind, None)
        if entry is not None:
            entry[1].cancel()
