"""Open-loop schedule arithmetic: due times under a time scale, round-robin over base URLs,
send lag, the workload → wall → workload conversion, and the workload reshaping."""

from __future__ import annotations

import math

import pytest

from lodestar.bench.client import SendResult
from lodestar.bench.prepare import Shaping, shape, window_rate_note, window_rps
from lodestar.bench.results import to_records
from lodestar.bench.schedule import LagStats, Send, TimeScale, plan_sends
from lodestar.bench.sse import StreamOutcome
from lodestar.workload.request import Prompt, RequestSpec


def req(i: int, arrival_s: float, out: int = 8) -> RequestSpec:
    return RequestSpec(request_id=f"r{i}", arrival_s=arrival_s, prompt=Prompt(32), output_tokens=out)


@pytest.mark.parametrize(
    ("arrivals", "scale", "expected_due"),
    [
        pytest.param([0.0, 0.5, 2.0], 1.0, [0.0, 0.5, 2.0], id="real time"),
        pytest.param([0.0, 0.5, 2.0], 4.0, [0.0, 2.0, 8.0], id="time scale 4 stretches arrivals"),
        pytest.param([10.0, 10.5, 12.0], 2.0, [0.0, 1.0, 4.0], id="a late slice starts at once"),
        pytest.param([2.0, 0.0, 1.0], 1.0, [0.0, 1.0, 2.0], id="unsorted input is sent in arrival order"),
        pytest.param([1.0, 1.0], 3.0, [0.0, 0.0], id="simultaneous arrivals"),
    ],
)
def test_due_times(arrivals: list[float], scale: float, expected_due: list[float]) -> None:
    sends = plan_sends([req(i, a) for i, a in enumerate(arrivals)], ["http://a"], TimeScale(scale))
    assert [s.due_wall_s for s in sends] == pytest.approx(expected_due)
    assert [s.request.arrival_s for s in sends] == sorted(arrivals)


def test_urls_are_taken_round_robin_in_arrival_order() -> None:
    requests = [req(i, float(5 - i)) for i in range(5)]  # arrive in reverse id order
    sends = plan_sends(requests, ["http://a", "http://b"], TimeScale(1.0))
    assert [(s.request.request_id, s.url) for s in sends] == [
        ("r4", "http://a"),
        ("r3", "http://b"),
        ("r2", "http://a"),
        ("r1", "http://b"),
        ("r0", "http://a"),
    ]
    assert [s.index for s in sends] == list(range(5))


def test_no_url_is_an_error() -> None:
    with pytest.raises(ValueError, match="base URL"):
        plan_sends([req(0, 0.0)], [], TimeScale(1.0))


@pytest.mark.parametrize("factor", [0.0, -1.0, math.inf, math.nan])
def test_time_scale_must_be_positive_and_finite(factor: float) -> None:
    with pytest.raises(ValueError, match="time scale"):
        TimeScale(factor)


@pytest.mark.parametrize(
    ("factor", "wall_s", "workload_s"), [(1.0, 0.3, 0.3), (4.0, 0.8, 0.2), (0.5, 1.0, 2.0), (10.0, 0.0, 0.0)]
)
def test_time_scale_conversions(factor: float, wall_s: float, workload_s: float) -> None:
    scale = TimeScale(factor)
    assert scale.to_workload(wall_s) == pytest.approx(workload_s)
    assert scale.to_wall(workload_s) == pytest.approx(wall_s)
    assert scale.opt_to_workload(None) is None


def test_lag_stats() -> None:
    lags = [0.001] * 98 + [0.05, 0.2]
    stats = LagStats.of(lags, warn_s=0.02)
    assert stats.n == 100
    assert stats.max_s == pytest.approx(0.2)
    assert stats.late_frac == pytest.approx(0.02)
    assert stats.p50_s == pytest.approx(0.001)
    assert stats.too_late(0.02)
    assert not LagStats.of([0.001] * 100, 0.02).too_late(0.02)
    assert LagStats.of([], 0.02).n == 0
    assert LagStats.of([-0.5], 0.02).max_s == 0.0  # early is not late


def test_records_are_in_workload_time() -> None:
    """Wall measurements ÷ S; arrival = first arrival + actual send time ÷ S."""
    send = Send(index=0, request=req(0, 10.0, out=5), url="http://a", due_wall_s=8.0)
    outcome = StreamOutcome(
        ttft_s=0.4,
        tpot_s=0.08,
        e2e_s=0.8,
        output_tokens=5,
        prompt_tokens=33,
        content_chunks=5,
        error=None,
        headers_s=0.02,
    )
    (b,) = to_records([SendResult(send, 8.02, outcome, 200)], TimeScale(4.0), t0_s=10.0)
    r = b.record
    assert (r.ttft_s, r.tpot_s, r.e2e_s, b.headers_s) == pytest.approx((0.1, 0.02, 0.2, 0.005))
    assert r.arrival_s == pytest.approx(10.0 + 8.02 / 4)
    assert r.finish_s == pytest.approx(r.arrival_s + 0.2)
    assert b.scheduled_s == pytest.approx(12.0)
    assert b.send_lag_s == pytest.approx(0.005)
    assert (r.instance_id, r.prompt_tokens, r.output_tokens, b.server_prompt_tokens) == ("http://a", 32, 5, 33)
    assert (b.http_status, b.requested_output_tokens, r.error) == (200, 5, None)


def test_a_failed_request_has_no_latencies() -> None:
    send = Send(index=0, request=req(0, 0.0), url="http://a", due_wall_s=0.0)
    outcome = StreamOutcome(None, None, None, 0, None, 0, "connect", "ConnectError")
    (b,) = to_records([SendResult(send, 0.0, outcome, None)], TimeScale(2.0))
    assert (b.record.ttft_s, b.record.e2e_s, b.record.finish_s, b.record.error) == (None, None, None, "connect")


# --- which requests ----------------------------------------------------------------------------


def stream(n: int, gap_s: float) -> list[RequestSpec]:
    return [req(i, i * gap_s) for i in range(n)]


@pytest.mark.parametrize(
    ("shaping", "expected_n", "expected_last_s"),
    [
        pytest.param(Shaping(), 10, 9.0, id="as is"),
        pytest.param(Shaping(rate_rps=2.0), 10, 5.0, id="rate: n/span = 2"),
        pytest.param(Shaping(speedup=3.0), 10, 3.0, id="speedup divides arrivals"),
        pytest.param(Shaping(duration_s=4.0), 4, 3.0, id="duration keeps [0, 4)"),
        pytest.param(Shaping(rate_rps=2.0, duration_s=2.0), 4, 5 / 3, id="rate first, then the window"),
        pytest.param(Shaping(max_requests=3), 3, 2.0, id="first N"),
    ],
)
def test_shape(shaping: Shaping, expected_n: int, expected_last_s: float) -> None:
    out = shape(stream(10, 1.0), shaping)
    assert len(out) == expected_n
    assert out[-1].arrival_s == pytest.approx(expected_last_s)


@pytest.mark.parametrize(
    ("shaping", "match"),
    [
        (Shaping(rate_rps=1.0, speedup=2.0), "not both"),
        (Shaping(max_requests=0), "max-requests"),
        (Shaping(speedup=-1.0), "speedup"),
    ],
)
def test_shape_rejects(shaping: Shaping, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        shape(stream(4, 1.0), shaping)


def burst_then_quiet() -> list[RequestSpec]:
    """Ten requests in the first second, ten more over the next 90 s."""
    return [req(i, i * 0.1) for i in range(10)] + [req(10 + i, 10.0 + i * 9.0) for i in range(10)]


def test_a_window_quieter_or_busier_than_the_rate_says_why() -> None:
    busy = Shaping(rate_rps=1.0, duration_s=3.0)
    sent = shape(burst_then_quiet(), busy)
    note = window_rate_note(busy.rate_rps, window_rps(sent))
    assert note is not None and note.startswith("note: --rate 1 is the mean rate of the whole workload")
    assert f"arrives at {len(sent) / (sent[-1].arrival_s - sent[0].arrival_s):.2f} req/s" in note


@pytest.mark.parametrize(
    "shaping",
    [
        pytest.param(Shaping(duration_s=3.0), id="no --rate"),
        pytest.param(Shaping(rate_rps=2.0), id="the whole workload is sent"),
        pytest.param(Shaping(rate_rps=2.0, duration_s=3.0), id="an even stream's window"),
        pytest.param(Shaping(rate_rps=2.0, max_requests=1), id="one request has no rate"),
    ],
)
def test_no_note_when_the_window_runs_at_the_rate(shaping: Shaping) -> None:
    assert window_rate_note(shaping.rate_rps, window_rps(shape(stream(10, 1.0), shaping))) is None
