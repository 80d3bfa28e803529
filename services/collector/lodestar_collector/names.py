"""Which exposed metric feeds which snapshot field, per engine (vLLM, SGLang).

Names are *sample* names as they appear in the text (counters with ``_total``), so a family
without its ``# TYPE`` line is still found. Where an engine renamed a metric, the candidates
are listed newest first and the first one present wins; prefix-cache counters come in pairs
that are only used together (a new ``hits`` is never divided by an old ``queries``).

Sources (read with the search tool): vLLM ``vllm/v1/metrics/loggers.py`` and the v1 metrics
design doc (``kv_cache_usage_perc`` replaced ``gpu_cache_usage_perc``; ``prefix_cache_*`` replaced
``gpu_prefix_cache_*`` in 0.10, both exported with a DEPRECATED help text meanwhile);
SGLang ``python/sglang/srt/metrics/collector.py`` (scheduler gauges ``num_running_reqs``,
``num_queue_reqs``, ``token_usage``, ``cache_hit_rate``; tokenizer counters ``prompt_tokens_total``,
``cached_tokens_total``; ``num_retracted_requests_total``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Engine = Literal["vllm", "sglang"]


@dataclass(frozen=True, slots=True)
class MetricNames:
    """Sample names of one engine's metrics, each field's candidates newest first."""

    engine: Engine
    running: tuple[str, ...]
    waiting: tuple[str, ...]
    kv_usage: tuple[str, ...]
    #: (hits, queries) pairs, newest first; both of a pair must be present
    prefix_counters: tuple[tuple[str, str], ...]
    preemptions: tuple[str, ...]
    #: info-style gauge whose labels carry ``block_size`` and ``num_gpu_blocks``
    cache_config: str | None = None
    #: the engine's own windowed prefix hit rate, used only when the counters are absent
    hit_rate_gauge: str | None = None


VLLM = MetricNames(
    engine="vllm",
    running=("vllm:num_requests_running",),
    waiting=("vllm:num_requests_waiting",),
    kv_usage=("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
    prefix_counters=(
        ("vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"),
        ("vllm:gpu_prefix_cache_hits_total", "vllm:gpu_prefix_cache_queries_total"),
    ),
    preemptions=("vllm:num_preemptions_total",),
    cache_config="vllm:cache_config_info",
)

SGLANG = MetricNames(
    engine="sglang",
    running=("sglang:num_running_reqs",),
    waiting=("sglang:num_queue_reqs",),
    kv_usage=("sglang:token_usage",),
    prefix_counters=(("sglang:cached_tokens_total", "sglang:prompt_tokens_total"),),
    preemptions=("sglang:num_retracted_requests_total",),
    hit_rate_gauge="sglang:cache_hit_rate",
)

ENGINES: tuple[MetricNames, ...] = (VLLM, SGLANG)

#: Labels that tell replicas of the *same* engine apart (tensor/pipeline/expert-parallel ranks,
#: the multiprocess pid): their series repeat one value, so they are deduplicated (max), not summed.
#: Every other label (``engine`` = vLLM data-parallel rank, ``dp_rank``, ``model_name`` …) names a
#: separate queue, and counts are summed over those.
REPLICA_LABELS = frozenset({"tp_rank", "pp_rank", "moe_ep_rank", "pid"})
