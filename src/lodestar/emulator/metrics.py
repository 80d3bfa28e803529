"""An instance's ``/metrics``: vLLM's names, labels and buckets, in emulated (virtual) seconds.

The driver updates an :class:`InstanceMetrics` as the engine reports tokens and completions;
gauges (running, waiting, KV usage, prefix-cache counters, preemptions) are read from the
engine at scrape time. :class:`MetricsCollector` exposes both through a per-instance
``prometheus_client.CollectorRegistry`` (never the global one).

As vLLM v1: every ``vllm:`` series carries ``model_name`` and ``engine="0"`` labels, except
``vllm:cache_config_info`` (cache-config labels and ``engine``); ``vllm:request_success_total``
has ``finished_reason`` in stop/length/abort; ``vllm:time_per_output_token_seconds`` is the
per-token gap (the same observations as ``vllm:inter_token_latency_seconds``) and
``vllm:request_time_per_output_token_seconds`` the per-request mean. ``lodestar_emulator_*``
series (wall-clock lag, fault state, hardware info) are ours, for display and tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from lodestar.emulator.exposition import FamilyWriter, SeriesWriter, TextWriter
from lodestar.emulator.histogram import Histogram, one_two_five
from lodestar.engine.engine import EngineSnapshot
from lodestar.engine.request import FinishedRequest

TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
    2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
TOKEN_LATENCY_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
REQUEST_LATENCY_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0,
    960.0, 1920.0, 7680.0,
)  # fmt: skip
LAG_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
FINISH_REASONS = ("stop", "length", "abort")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class InstanceMetrics:
    """What one instance accumulates. Times in emulated seconds except the ``*_lag`` ones
    (wall seconds). Mutated only from the event loop thread."""

    max_model_len: int
    ttft: Histogram = field(default_factory=lambda: Histogram(TTFT_BUCKETS))
    itl: Histogram = field(default_factory=lambda: Histogram(TOKEN_LATENCY_BUCKETS))
    request_tpot: Histogram = field(default_factory=lambda: Histogram(TOKEN_LATENCY_BUCKETS))
    e2e: Histogram = field(default_factory=lambda: Histogram(REQUEST_LATENCY_BUCKETS))
    queue: Histogram = field(default_factory=lambda: Histogram(REQUEST_LATENCY_BUCKETS))
    inference: Histogram = field(default_factory=lambda: Histogram(REQUEST_LATENCY_BUCKETS))
    prefill: Histogram = field(default_factory=lambda: Histogram(REQUEST_LATENCY_BUCKETS))
    decode: Histogram = field(default_factory=lambda: Histogram(REQUEST_LATENCY_BUCKETS))
    prompt_len: Histogram = field(init=False)
    generation_len: Histogram = field(init=False)
    max_tokens_param: Histogram = field(init=False)
    prompt_tokens: int = 0
    generation_tokens: int = 0
    finished: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FINISH_REASONS, 0))
    step_lag: Histogram = field(default_factory=lambda: Histogram(LAG_BUCKETS))
    delivery_lag: Histogram = field(default_factory=lambda: Histogram(LAG_BUCKETS))
    late_steps: int = 0
    injected_failures: int = 0
    dropped_streams: int = 0

    def __post_init__(self) -> None:
        lengths = one_two_five(self.max_model_len)
        self.prompt_len = Histogram(lengths)
        self.generation_len = Histogram(lengths)
        self.max_tokens_param = Histogram(lengths)

    def on_first_token(self, ttft_s: float, prompt_tokens: int) -> None:
        self.ttft.observe(ttft_s)
        self.prompt_tokens += prompt_tokens

    def on_finished(self, done: FinishedRequest, max_tokens: int) -> None:
        self.finished["length"] += 1
        scheduled = done.arrival_s + done.queue_s
        self.e2e.observe(done.e2e_s)
        self.queue.observe(done.queue_s)
        self.inference.observe(done.finish_s - scheduled)
        self.prefill.observe(done.first_token_s - scheduled)
        self.decode.observe(done.finish_s - done.first_token_s)
        tpot = done.tpot_s
        if tpot is not None:
            self.request_tpot.observe(tpot)
        self.prompt_len.observe(done.prompt_tokens)
        self.generation_len.observe(done.output_tokens)
        self.max_tokens_param.observe(max_tokens)

    def on_abort(self) -> None:
        self.finished["abort"] += 1


@dataclass(frozen=True, slots=True)
class EmulatorGauges:
    """The emulator's own state at scrape time."""

    virtual_time_s: float
    lag_s: float
    speed_factor: float
    fail_fraction: float
    drop_fraction: float
    stalled: bool


class MetricsCollector(Collector):
    """Exposes one instance's metrics; ``snapshot`` and ``gauges`` are called at scrape time.

    :meth:`write` lists the series once; :meth:`text` is the scrape (a cached-string
    :class:`~lodestar.emulator.exposition.TextWriter`), :meth:`collect` the same families as
    ``prometheus_client`` objects (a ``Collector``: the reference the text is tested against)."""

    def __init__(
        self,
        metrics: InstanceMetrics,
        model_name: str,
        snapshot: Callable[[], EngineSnapshot],
        gauges: Callable[[], EmulatorGauges],
        cache_info: Mapping[str, str],
        info: Mapping[str, str],
    ) -> None:
        self.metrics = metrics
        self.model_name = model_name
        self.snapshot = snapshot
        self.gauges = gauges
        self.cache_info = dict(cache_info)
        self.info = dict(info)
        self._text = TextWriter()

    def collect(self) -> Iterator[Metric]:
        writer = FamilyWriter()
        self.write(writer)
        yield from writer.families

    def text(self) -> bytes:
        """The Prometheus text exposition (format 0.0.4, as vLLM serves it)."""
        self._text.begin()
        self.write(self._text)
        return self._text.text()

    def write(self, w: SeriesWriter) -> None:
        m, snap = self.metrics, self.snapshot()
        names, values = ("model_name", "engine"), (self.model_name, "0")

        def gauge(name: str, doc: str, value: float) -> None:
            w.family("gauge", name, doc, names, ((values, value),))

        def counter(name: str, doc: str, value: float) -> None:
            w.family("counter", name, doc, names, ((values, value),))

        def histogram(name: str, doc: str, h: Histogram) -> None:
            w.histogram(name, doc, names, values, h.cumulative(), h.total)

        gauge("vllm:num_requests_running", "Number of requests in model execution batches.", snap.num_running)
        gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", snap.num_waiting)
        gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", snap.kv_usage_frac)
        gauge(
            "vllm:gpu_cache_usage_perc",
            "GPU KV-cache usage. 1 means 100 percent usage. DEPRECATED: Use vllm:kv_cache_usage_perc instead.",
            snap.kv_usage_frac,
        )
        counter(
            "vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.",
            snap.prefix_query_tokens,
        )  # fmt: skip
        counter(
            "vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.", snap.prefix_hit_tokens
        )
        counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.", snap.num_preemptions)
        counter("vllm:prompt_tokens", "Number of prefill tokens processed.", m.prompt_tokens)
        counter("vllm:generation_tokens", "Number of generation tokens processed.", m.generation_tokens)
        w.family(
            "counter", "vllm:request_success", "Count of successfully processed requests.", (*names, "finished_reason"),
            [((*values, reason), n) for reason, n in m.finished.items()],
        )  # fmt: skip
        w.family(
            "gauge", "vllm:cache_config_info", "Information of the LLMEngine CacheConfig", (*self.cache_info, "engine"),
            (((*self.cache_info.values(), "0"), 1.0),),
        )  # fmt: skip

        histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", m.ttft)
        histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", m.itl)
        histogram(
            "vllm:time_per_output_token_seconds",
            "Histogram of time per output token in seconds. DEPRECATED: Use vllm:inter_token_latency_seconds.",
            m.itl,
        )
        histogram(
            "vllm:request_time_per_output_token_seconds",
            "Histogram of time_per_output_token_seconds per request.",
            m.request_tpot,
        )
        histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", m.e2e)
        histogram("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", m.queue)
        histogram(
            "vllm:request_inference_time_seconds", "Histogram of time spent in RUNNING phase for request.", m.inference
        )
        histogram(
            "vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.", m.prefill
        )
        histogram("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.", m.decode)
        histogram("vllm:request_prompt_tokens", "Number of prefill tokens processed.", m.prompt_len)
        histogram("vllm:request_generation_tokens", "Number of generation tokens processed.", m.generation_len)
        histogram(
            "vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.", m.max_tokens_param
        )
        self._own(w, m)

    def _own(self, w: SeriesWriter, m: InstanceMetrics) -> None:
        g = self.gauges()

        def gauge(name: str, doc: str, value: float) -> None:
            w.family("gauge", name, doc, (), (((), value),))

        def counter(name: str, doc: str, value: float) -> None:
            w.family("counter", name, doc, (), (((), value),))

        w.family(
            "gauge", "lodestar_emulator_info", "The emulated instance (hardware, model; display only).",
            tuple(self.info), ((tuple(self.info.values()), 1.0),),
        )  # fmt: skip
        gauge("lodestar_emulator_virtual_time_seconds", "The instance's emulated clock.", g.virtual_time_s)
        gauge("lodestar_emulator_lag_seconds", "How late (wall seconds) the last engine step was applied.", g.lag_s)
        counter(
            "lodestar_emulator_late_steps", "Engine steps applied later than the lag warning threshold.", m.late_steps
        )
        for name, doc, h in (
            ("lodestar_emulator_step_lag_seconds", "Wall seconds each engine step was applied late.", m.step_lag),
            ("lodestar_emulator_delivery_lag_seconds", "Wall seconds token chunks were written late.", m.delivery_lag),
        ):
            w.histogram(name, doc, (), (), h.cumulative(), h.total)
        gauge("lodestar_emulator_speed_factor", "Step-time multiplier (fault).", g.speed_factor)
        gauge("lodestar_emulator_stalled", "1 while a stall fault holds steps.", g.stalled)
        gauge("lodestar_emulator_fail_fraction", "Fraction of requests failed with HTTP 500 (fault).", g.fail_fraction)
        gauge("lodestar_emulator_drop_fraction", "Fraction of streams dropped mid-way (fault).", g.drop_fraction)
        counter("lodestar_emulator_injected_failures", "Requests failed by the fail fault.", m.injected_failures)
        counter("lodestar_emulator_dropped_streams", "Connections dropped by a fault.", m.dropped_streams)


def build_registry(collector: MetricsCollector) -> CollectorRegistry:
    """A registry of ``collector`` (its ``prometheus_client`` families)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """``prometheus_client``'s text exposition of ``registry`` (the reference for
    :meth:`MetricsCollector.text`)."""
    return generate_latest(registry)
