"""Prometheus text of one vLLM or SGLang instance → :class:`MetricsSnapshot`. Pure, no I/O.

Several series of one metric (data-parallel engines, several ``model_name`` values on one
endpoint) are combined so the snapshot describes the endpoint a router sends to:

- request counts (running, waiting) and counters (prefix hits/queries, preemptions) are summed;
- KV-cache usage is the **maximum** over engines (the fullest engine is the one that queues
  or preempts first; a mean would hide it);
- ``block_size`` is kept only when every engine reports the same value; ``num_gpu_blocks`` is
  summed over engines (each has its own pool);
- series that differ only in a replica label (``tp_rank``, ``pp_rank``, ``moe_ep_rank``,
  ``pid``: see :data:`~lodestar_collector.names.REPLICA_LABELS`) repeat one value and are
  deduplicated by taking their maximum before summing.

Only the lines of the metrics in :mod:`~lodestar_collector.names` are handed to
``prometheus_client.parser`` (selected by their metric name, the text before ``{`` or the first
space): a vLLM page is ~400 lines, mostly histogram buckets, and parsing all of them costs ~30×
more than the dozen lines used. A malformed line of an unused metric is therefore ignored; one of a
used metric is an error.

Every failure is a :class:`MetricsParseError` naming what is wrong; nothing else escapes.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from lodestar_collector.names import ENGINES, REPLICA_LABELS, VLLM, Engine, MetricNames

_WANTED: frozenset[str] = frozenset(
    name
    for names in ENGINES
    for name in (
        *names.running,
        *names.waiting,
        *names.kv_usage,
        *(n for pair in names.prefix_counters for n in pair),
        *names.preemptions,
        *((names.cache_config,) if names.cache_config else ()),
        *((names.hit_rate_gauge,) if names.hit_rate_gauge else ()),
    )
)
_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_:#")

_LabelKey = tuple[tuple[str, str], ...]
#: sample name → [(labels, value)]
_Index = Mapping[str, list[tuple[dict[str, str], float]]]


class MetricsParseError(ValueError):
    """The text is not a usable metrics page; the message says why."""


class MalformedMetricsError(MetricsParseError):
    """The text is not Prometheus text exposition (e.g. an HTML error page, a cut-off line)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"not Prometheus text exposition: {reason}")


class MissingMetricError(MetricsParseError):
    """A metric the snapshot needs is absent; ``metric`` is the first name tried."""

    def __init__(self, metric: str, alternatives: tuple[str, ...] = ()) -> None:
        self.metric = metric
        self.alternatives = alternatives
        also = f" (nor {', '.join(alternatives)})" if alternatives else ""
        super().__init__(f"missing metric {metric}{also}")


class InvalidMetricValueError(MetricsParseError):
    """A metric has a value it cannot have (NaN, infinite, a negative count)."""

    def __init__(self, metric: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        self.metric = metric
        self.value = value
        where = f"{{{','.join(f'{k}={v!r}' for k, v in sorted(labels.items()))}}}" if labels else ""
        super().__init__(f"invalid value {value!r} of metric {metric}{where}")


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """One instance's state at scrape time. Counters are cumulative since the engine started."""

    engine: Engine
    model_names: tuple[str, ...]
    num_running: int
    num_waiting: int
    kv_usage_frac: float
    prefix_cache_hits_total: int | None
    prefix_cache_queries_total: int | None
    #: SGLang's own recent hit rate; only set when the engine exports no prefix counters
    prefix_hit_rate_gauge: float | None
    block_size: int | None
    num_gpu_blocks: int | None
    num_preemptions_total: int | None
    #: data-parallel engines (distinct series of the running-requests metric)
    engines: int


def parse_metrics(text: str) -> MetricsSnapshot:
    """Parse ``text`` (a ``/metrics`` body); raises :class:`MetricsParseError` subclasses only."""
    index = _index(text)
    names = _engine_names(index)
    running_name, running = _required(index, names.running)
    waiting_name, waiting = _required(index, names.waiting)
    kv_name, kv = _required(index, names.kv_usage)
    hits, queries = _prefix_counters(index, names)
    gauge = None
    if hits is None and names.hit_rate_gauge is not None and names.hit_rate_gauge in index:
        gauge = _clamp01(_max(names.hit_rate_gauge, index[names.hit_rate_gauge]))
    preemptions = _first_present(index, names.preemptions)
    block_size, num_blocks = _cache_config(index, names.cache_config)
    return MetricsSnapshot(
        engine=names.engine,
        model_names=tuple(sorted({lb["model_name"] for lb, _ in running if "model_name" in lb})),
        num_running=_count(running_name, _sum(running_name, running)),
        num_waiting=_count(waiting_name, _sum(waiting_name, waiting)),
        kv_usage_frac=_clamp01(_max(kv_name, kv)),
        prefix_cache_hits_total=hits,
        prefix_cache_queries_total=queries,
        prefix_hit_rate_gauge=gauge,
        block_size=block_size,
        num_gpu_blocks=num_blocks,
        num_preemptions_total=None if preemptions is None else _count(preemptions[0], _sum(*preemptions)),
        engines=len({_key(lb, drop=REPLICA_LABELS | {"model_name"}) for lb, _ in running}),
    )


# --- reading the text ------------------------------------------------------------------------


def _relevant(text: str) -> str:
    """The sample lines of wanted metrics; MalformedMetricsError if the text is clearly not metrics.

    Found with ``str.find`` per wanted name (C speed) instead of a Python loop over every line.
    """
    head = text.lstrip()[:40]
    if head and head[0] not in _NAME_START:
        raise MalformedMetricsError(f"starts with {_short(head)!r}")
    body = "\n" + text
    size = len(body)
    kept: list[str] = []
    for name in _WANTED:
        needle = "\n" + name
        start = 0
        while (at := body.find(needle, start)) >= 0:
            after = at + len(needle)
            end = body.find("\n", after)
            end = size if end < 0 else end
            if after < size and body[after] in "{ \t":
                kept.append(body[at + 1 : end])
            start = end
    return "\n".join(kept) + "\n" if kept else ""


def _index(text: str) -> _Index:
    index: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    try:
        for family in text_string_to_metric_families(_relevant(text)):
            for sample in family.samples:
                index[sample.name].append((dict(sample.labels), float(sample.value)))
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        raise MalformedMetricsError(_short(str(exc))) from None
    return index


def _short(reason: str, limit: int = 200) -> str:
    reason = reason.replace("\n", "\\n")
    return reason if len(reason) <= limit else reason[:limit] + "…"


def _engine_names(index: _Index) -> MetricNames:
    for names in ENGINES:
        if any(name in index for name in names.running):
            return names
    others = tuple(n for names in ENGINES[1:] for n in names.running)
    raise MissingMetricError(VLLM.running[0], others)


def _required(index: _Index, candidates: tuple[str, ...]) -> tuple[str, list[tuple[dict[str, str], float]]]:
    found = _first_present(index, candidates)
    if found is None:
        raise MissingMetricError(candidates[0], candidates[1:])
    return found


def _first_present(index: _Index, candidates: Iterable[str]) -> tuple[str, list[tuple[dict[str, str], float]]] | None:
    for name in candidates:
        if name in index:
            return name, index[name]
    return None


def _prefix_counters(index: _Index, names: MetricNames) -> tuple[int | None, int | None]:
    for hits_name, queries_name in names.prefix_counters:
        if hits_name in index and queries_name in index:
            hits = _count(hits_name, _sum(hits_name, index[hits_name]))
            queries = _count(queries_name, _sum(queries_name, index[queries_name]))
            return hits, queries
    return None, None


def _cache_config(index: _Index, name: str | None) -> tuple[int | None, int | None]:
    if name is None or name not in index:
        return None, None
    sizes: set[int] = set()
    blocks: dict[_LabelKey, int] = {}
    for labels, _ in index[name]:
        size = _int_label(labels.get("block_size"))
        if size is not None and size >= 1:
            sizes.add(size)
        num = _int_label(labels.get("num_gpu_blocks"))
        if num is not None and num >= 0:
            engine_key = tuple((k, v) for k, v in sorted(labels.items()) if k == "engine")
            blocks[engine_key] = num
    block_size = sizes.pop() if len(sizes) == 1 else None
    return block_size, (sum(blocks.values()) if blocks else None)


def _int_label(raw: str | None) -> int | None:
    """``"16"``, ``"16.0"`` → 16; ``"None"``, garbage → None."""
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value == int(value) else None


# --- combining series ------------------------------------------------------------------------


def _key(labels: Mapping[str, str], drop: frozenset[str] = REPLICA_LABELS) -> _LabelKey:
    return tuple((k, v) for k, v in sorted(labels.items()) if k not in drop)


def _dedup(name: str, series: list[tuple[dict[str, str], float]]) -> list[float]:
    """One value per non-replica label set (replica series collapse to their max)."""
    groups: dict[_LabelKey, float] = {}
    for labels, value in series:
        if not math.isfinite(value):
            raise InvalidMetricValueError(name, value, labels)
        key = _key(labels)
        groups[key] = max(groups.get(key, value), value)
    return list(groups.values())


def _sum(name: str, series: list[tuple[dict[str, str], float]]) -> float:
    return float(sum(_dedup(name, series)))


def _max(name: str, series: list[tuple[dict[str, str], float]]) -> float:
    return max(_dedup(name, series))


def _count(name: str, value: float) -> int:
    if value < 0:
        raise InvalidMetricValueError(name, value)
    return round(value)


def _clamp01(value: float) -> float:
    return min(1.0, max(0.0, value))
