"""Writing an instance's metric families: as Prometheus text directly, or as
``prometheus_client`` families.

:class:`~lodestar.emulator.metrics.MetricsCollector` describes its series once, through the
:class:`SeriesWriter` calls. :class:`TextWriter` turns them into the text exposition (format
0.0.4, byte for byte what ``prometheus_client.generate_latest`` writes for the same families)
without building a family object per scrape: the ``# HELP``/``# TYPE`` lines and every series'
``name{labels}`` prefix are built once per writer and kept, so a scrape only formats values.
The collector scrapes each instance every 250 ms; with eight instances in one emulator process
``generate_latest`` took ~7 ms of its event loop per scrape (a fifth of a core at time scale 8),
which made engine steps late. :class:`FamilyWriter` builds the ``prometheus_client`` families
(the collector's ``collect``, and the reference the tests compare the text with).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, Protocol, cast

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

go_float = cast(Callable[[float], str], floatToGoString)  # untyped upstream: Prometheus' float text


def go_number(value: float) -> str:
    """:func:`go_float`, with a fast path for the positive whole numbers below 10⁶ that counters
    and bucket counts mostly are (Go writes those as ``12.0``; 10⁶ and up with an exponent)."""
    if 0 < value < 1_000_000 and value == int(value):
        return f"{int(value)}.0"
    return go_float(value)


Kind = Literal["gauge", "counter"]
#: ``(le, cumulative count)`` pairs ending with ``+Inf`` (:meth:`Histogram.cumulative`)
Buckets = Sequence[tuple[str, float]]


class SeriesWriter(Protocol):
    def family(
        self, kind: Kind, name: str, doc: str, labelnames: Sequence[str], samples: Sequence[tuple[Sequence[str], float]]
    ) -> None:
        """A gauge or counter family: one sample per ``(label values, value)``."""

    def histogram(
        self, name: str, doc: str, labelnames: Sequence[str], labelvalues: Sequence[str], buckets: Buckets, total: float
    ) -> None:
        """A histogram family with one series: its buckets, ``_count`` and ``_sum``."""


def _escape_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _labels(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    pairs = sorted(zip(names, values, strict=True))
    return "{" + ",".join(f'{k}="{_escape_value(v)}"' for k, v in pairs) + "}"


class TextWriter:
    """The text exposition of what is written since :meth:`begin`; string parts cached across
    scrapes (keyed by series, so a label value that changes gets its own entry). One writer per
    collector; event-loop only."""

    def __init__(self) -> None:
        self._out: list[str] = []
        self._headers: dict[tuple[str, str, str], str] = {}
        self._prefixes: dict[tuple[str, tuple[str, ...], tuple[str, ...]], str] = {}
        self._bucket_prefixes: dict[tuple[str, tuple[str, ...], tuple[str, ...], str], str] = {}

    def begin(self) -> None:
        self._out = []

    def text(self) -> bytes:
        return "".join(self._out).encode("utf-8")

    def _header(self, kind: str, name: str, doc: str) -> None:
        key = (kind, name, doc)
        header = self._headers.get(key)
        if header is None:
            escaped = doc.replace("\\", r"\\").replace("\n", r"\n")
            header = f"# HELP {name} {escaped}\n# TYPE {name} {kind}\n"
            self._headers[key] = header
        self._out.append(header)

    def _prefix(self, sample: str, names: Sequence[str], values: Sequence[str]) -> str:
        key = (sample, tuple(names), tuple(values))
        prefix = self._prefixes.get(key)
        if prefix is None:
            prefix = self._prefixes[key] = f"{sample}{_labels(names, values)} "
        return prefix

    def family(
        self, kind: Kind, name: str, doc: str, labelnames: Sequence[str], samples: Sequence[tuple[Sequence[str], float]]
    ) -> None:
        exposed = f"{name}_total" if kind == "counter" else name
        self._header(kind, exposed, doc)
        out = self._out
        for values, value in samples:
            out.append(self._prefix(exposed, labelnames, values) + go_number(value) + "\n")

    def histogram(
        self, name: str, doc: str, labelnames: Sequence[str], labelvalues: Sequence[str], buckets: Buckets, total: float
    ) -> None:
        self._header("histogram", name, doc)
        out = self._out
        names, values = tuple(labelnames), tuple(labelvalues)
        for le, count in buckets:
            key = (name, names, values, le)
            prefix = self._bucket_prefixes.get(key)
            if prefix is None:
                prefix = f"{name}_bucket{_labels((*names, 'le'), (*values, le))} "
                self._bucket_prefixes[key] = prefix
            out.append(prefix + go_number(count) + "\n")
        out.append(self._prefix(f"{name}_count", names, values) + go_number(buckets[-1][1]) + "\n")
        out.append(self._prefix(f"{name}_sum", names, values) + go_number(total) + "\n")


class FamilyWriter:
    """``prometheus_client`` families of what is written (a ``Collector.collect``)."""

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def family(
        self, kind: Kind, name: str, doc: str, labelnames: Sequence[str], samples: Sequence[tuple[Sequence[str], float]]
    ) -> None:
        made: GaugeMetricFamily | CounterMetricFamily = (
            GaugeMetricFamily(name, doc, labels=list(labelnames))
            if kind == "gauge"
            else CounterMetricFamily(name, doc, labels=list(labelnames))
        )
        for values, value in samples:
            made.add_metric(list(values), value)
        self.families.append(made)

    def histogram(
        self, name: str, doc: str, labelnames: Sequence[str], labelvalues: Sequence[str], buckets: Buckets, total: float
    ) -> None:
        made = HistogramMetricFamily(name, doc, labels=list(labelnames))
        made.add_metric(list(labelvalues), list(buckets), total)
        self.families.append(made)
