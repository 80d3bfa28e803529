"""Statistics the router measures itself, per instance, from the outcomes of its decisions.

No hardware table: an instance's prefill speed is inferred from how long its prefills took
(``(pending uncached tokens at dispatch + own uncached tokens) / TTFT``), its decode speed from
observed TPOT. Values are exponentially weighted in log space. Unknown instances borrow the
fleet median, so a new instance is scored sensibly from its first request.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# Priors before any instance has reported anything (a mid-range GPU serving an 8B model).
PRIOR_PREFILL_TOKENS_PER_S = 10_000.0
PRIOR_DECODE_STEP_S = 0.025
PRIOR_TTFT_S = 0.5


@dataclass(slots=True)
class _Ewma:
    log_value: float
    n: int = 0

    def update(self, value: float, alpha: float) -> None:
        lv = math.log(max(value, 1e-9))
        if self.n == 0:
            self.log_value = lv
        else:
            a = max(alpha, 1.0 / (self.n + 1))
            self.log_value += a * (lv - self.log_value)
        self.n += 1


@dataclass(slots=True)
class _RatioEwma:
    """Exponentially weighted ratio of sums Σwork / Σtime: long prefills, which show the
    speed best, weigh most; short requests dominated by fixed overheads weigh little."""

    work: float = 0.0
    time: float = 0.0
    n: int = 0

    def update(self, work: float, time_s: float, alpha: float) -> None:
        a = max(alpha, 1.0 / (self.n + 1))
        self.work += a * (work - self.work)
        self.time += a * (time_s - self.time)
        self.n += 1

    @property
    def log_value(self) -> float:
        return math.log(max(self.work, 1e-9) / max(self.time, 1e-9))


@dataclass(slots=True)
class InstanceStats:
    prefill_speed: _RatioEwma
    decode_step: _Ewma
    ttft: _Ewma


class FleetStats:
    """Per-instance log-EWMAs of prefill speed (tokens/s), decode step (s) and TTFT (s).

    Reads are on the decision path: each instance's snapshot is cached when it changes, and
    the fleet medians that unknown instances borrow are recomputed only after an update.
    """

    def __init__(self, alpha: float = 0.05) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        self._stats: dict[str, InstanceStats] = {}
        self._cache: dict[str, tuple[float, float, float, float]] = {}
        self._medians: tuple[float, float, float] | None = None

    def observe(self, instance_id: str, prefill_work_tokens: int, ttft_s: float | None, tpot_s: float | None) -> None:
        """One outcome: ``prefill_work_tokens`` uncached tokens that had to be prefilled on the
        instance before this request's first token (its own included)."""
        st = self._stats.get(instance_id)
        if st is None:
            st = self._stats[instance_id] = InstanceStats(_RatioEwma(), _Ewma(0.0), _Ewma(0.0))
        if ttft_s is not None and ttft_s > 0:
            st.ttft.update(ttft_s, self.alpha)
            if prefill_work_tokens > 0:
                st.prefill_speed.update(prefill_work_tokens, ttft_s, self.alpha)
        if tpot_s is not None and tpot_s > 0:
            st.decode_step.update(tpot_s, self.alpha)
        self._cache.pop(instance_id, None)
        if self._medians is not None:  # the medians others borrow may have moved
            self._medians = None
            self._cache = {iid: snap for iid, snap in self._cache.items() if snap[3] >= 1.0}

    def forget(self, instance_id: str) -> None:
        self._stats.pop(instance_id, None)
        self._cache.clear()
        self._medians = None

    def _median(self, attr: str, prior: float) -> float:
        values: list[float] = sorted(getattr(s, attr).log_value for s in self._stats.values() if getattr(s, attr).n)
        if not values:
            return math.log(prior)
        mid = len(values) // 2
        return values[mid] if len(values) % 2 else 0.5 * (values[mid - 1] + values[mid])

    def snapshot(self, instance_id: str) -> tuple[float, float, float, float]:
        """(log prefill tokens/s, log decode step s, log TTFT s, confidence in [0, 1])."""
        cached = self._cache.get(instance_id)
        if cached is None:
            cached = self._cache[instance_id] = self._compute(instance_id)
        return cached

    def snapshots(self, instance_ids: Sequence[str]) -> list[tuple[float, float, float, float]]:
        return [self.snapshot(iid) for iid in instance_ids]

    def _compute(self, instance_id: str) -> tuple[float, float, float, float]:
        st = self._stats.get(instance_id)
        if st is not None and st.prefill_speed.n and st.decode_step.n and st.ttft.n:
            return st.prefill_speed.log_value, st.decode_step.log_value, st.ttft.log_value, min(1.0, st.ttft.n / 20.0)
        if self._medians is None:  # only instances lacking evidence need the fleet medians
            self._medians = (
                self._median("prefill_speed", PRIOR_PREFILL_TOKENS_PER_S),
                self._median("decode_step", PRIOR_DECODE_STEP_S),
                self._median("ttft", PRIOR_TTFT_S),
            )
        speed_m, decode_m, ttft_m = self._medians
        if st is None:
            return speed_m, decode_m, ttft_m, 0.0
        return (
            st.prefill_speed.log_value if st.prefill_speed.n else speed_m,
            st.decode_step.log_value if st.decode_step.n else decode_m,
            st.ttft.log_value if st.ttft.n else ttft_m,
            min(1.0, st.ttft.n / 20.0),
        )
