"""Drift schedules do what they say: ramps and day/night change the rate by the stated factor,
a mix shift switches content at T, slowdowns become instance faults."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lodestar.workload.build import build_workload
from lodestar.workload.drift import DayNightCycle, RateRamp, TimeWarp, switch_at
from lodestar.workload.faults import InstanceFault
from lodestar.workload.request import Prompt, RequestSpec
from lodestar.workload.spec import parse_spec


def _generator(rate_rps: float, duration_s: float, lengths: dict[str, object] | None = None) -> dict[str, object]:
    return {
        "kind": "generator",
        "duration_s": duration_s,
        "arrivals": {"process": "poisson", "rate_rps": rate_rps},
        "lengths": lengths or {"kind": "fixed", "input_tokens": 100, "output_tokens": 10},
    }


def _arrivals(spec: dict[str, object]) -> np.ndarray:
    workload = build_workload(parse_spec(spec, "test"))
    return np.array([r.arrival_s for r in workload.requests])


def test_rate_ramp_raises_the_rate_by_the_stated_factor() -> None:
    # factor 1 -> 3 linearly over [0, 600]: the second half holds ∫(1+2t/600) = 450 of 750 base-seconds
    times = _arrivals(
        {
            "source": _generator(40.0, 600.0),
            "drift": [{"kind": "rate_ramp", "start_s": 0, "end_s": 600, "end_factor": 3}],
        }
    )
    first, second = np.sum(times < 300), np.sum(times >= 300)
    assert second / first == pytest.approx(750 / 450, rel=0.03)
    assert len(times) / (40 * 1200) == pytest.approx(1.0, rel=0.02)  # base rate × ∫ factor
    assert 599 < times[-1] < 600  # the generator still covers its duration on the output clock
    late = times[times >= 500]
    assert len(late) / 100 == pytest.approx(40 * (1 + 2 * 550 / 600), rel=0.06)  # local rate r·f(t)


def test_day_night_cycle_modulates_the_rate_sinusoidally() -> None:
    amplitude, period_s = 0.5, 600.0
    times = _arrivals(
        {
            "source": _generator(20.0, 3_000.0),
            "drift": [{"kind": "day_night", "period_s": period_s, "amplitude": amplitude}],
        }
    )
    day = np.sin(2 * np.pi * times / period_s) > 0
    expected = (1 + 2 * amplitude / math.pi) / (1 - 2 * amplitude / math.pi)  # mean factor by half period
    assert day.sum() / (~day).sum() == pytest.approx(expected, rel=0.04)
    assert len(times) / 3_000 == pytest.approx(20.0, rel=0.02)  # whole periods: mean factor 1


@pytest.mark.parametrize(
    ("multiplier", "t_s", "base_s"),
    [
        (RateRamp(0.0, 600.0, 3.0), 600.0, 1_200.0),  # t + t²/600
        (RateRamp(0.0, 600.0, 3.0), 300.0, 450.0),
        (RateRamp(100.0, 200.0, 2.0), 1_000.0, 100.0 + 150.0 + 800.0 * 2.0),
        (DayNightCycle(100.0, 0.5), 25.0, 25.0 + 0.5 * 100.0 / (2 * math.pi)),  # ∫ 1 + a·sin over a quarter
        (DayNightCycle(100.0, 0.5), 1_000.0, 1_000.0),
    ],
)
def test_time_warp_integrates_the_factor(multiplier: RateRamp | DayNightCycle, t_s: float, base_s: float) -> None:
    warp = TimeWarp((multiplier,))
    assert warp.base_time(t_s) == pytest.approx(base_s, rel=1e-5)
    assert warp.output_times(np.array([base_s]))[0] == pytest.approx(t_s, rel=1e-5)


def test_constant_factor_warp_is_a_plain_speedup() -> None:
    stream = [RequestSpec(f"r{i}", float(i), Prompt(16), 1) for i in range(5)]
    warped = TimeWarp((RateRamp(0.0, 10.0, 2.0, 2.0),)).apply(stream)
    assert [r.arrival_s for r in warped] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])
    assert TimeWarp().apply(stream) == stream


def test_mix_shift_switches_lengths_and_sharing_at_t() -> None:
    tenants = {"count": 2, "system_prompt_tokens": 512}
    before = {**_generator(10.0, 600.0), "tenants": tenants}
    after = {
        **_generator(10.0, 600.0, {"kind": "fixed", "input_tokens": 2000, "output_tokens": 50}),
        "tenants": tenants,
    }
    workload = build_workload(
        parse_spec({"seed": 4, "source": before, "drift": [{"kind": "mix_shift", "at_s": 300, "source": after}]}, "t")
    )
    early = [r for r in workload.requests if r.arrival_s < 300]
    late = [r for r in workload.requests if r.arrival_s >= 300]
    assert early and late
    assert {r.prompt.n_tokens - 512 for r in early} == {100} and {r.prompt.n_tokens - 512 for r in late} == {2000}
    assert all(r.request_id.startswith("shift1/") for r in late)
    assert not any(r.request_id.startswith("shift1/") for r in early)
    early_blocks = {h for r in early for h in r.prompt.block_hashes()}
    late_blocks = {h for r in late for h in r.prompt.block_hashes()}
    assert early_blocks.isdisjoint(late_blocks)  # system prompts do not leak across the shift
    assert len({r.prompt.block_hashes()[0] for r in late}) == 2  # but tenants still share after it


def test_switch_at_keeps_each_side_of_t() -> None:
    a = [RequestSpec(f"a{i}", float(i), Prompt(16), 1) for i in range(4)]
    b = [RequestSpec(f"b{i}", float(i) + 0.5, Prompt(16), 1) for i in range(4)]
    assert [r.request_id for r in switch_at(a, b, 2.0)] == ["a0", "a1", "b2", "b3"]


def test_slowdown_and_restore_become_sorted_instance_faults() -> None:
    workload = build_workload(
        parse_spec(
            {
                "source": _generator(1.0, 60.0),
                "drift": [
                    {"kind": "restore", "at_s": 50, "instance_id": "h100-0"},
                    {"kind": "slowdown", "at_s": 20, "instance_id": "h100-0", "factor": 2.5},
                ],
            },
            "t",
        )
    )
    assert workload.faults == (
        InstanceFault(20.0, "h100-0", "slowdown", 2.5),
        InstanceFault(50.0, "h100-0", "restore", 1.0),
    )


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"at_s": -1.0, "instance_id": "a", "kind": "slowdown", "factor": 2.0}, "at_s"),
        ({"at_s": 1.0, "instance_id": "", "kind": "slowdown", "factor": 2.0}, "instance_id"),
        ({"at_s": 1.0, "instance_id": "a", "kind": "slowdown", "factor": 0.0}, "factor"),
        ({"at_s": 1.0, "instance_id": "a", "kind": "restore", "factor": 3.0}, "restore"),
    ],
)
def test_instance_fault_rejects_bad_values(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        InstanceFault(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: RateRamp(10.0, 5.0, 2.0), "start_s < end_s"),
        (lambda: RateRamp(0.0, 5.0, 0.0), "> 0"),
        (lambda: DayNightCycle(60.0, 1.0), "amplitude"),
        (lambda: DayNightCycle(0.0, 0.5), "period_s"),
    ],
)
def test_rate_multipliers_reject_bad_values(make, fragment: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=fragment):
        make()
