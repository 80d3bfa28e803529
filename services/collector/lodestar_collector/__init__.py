"""The collector: scrapes each inference instance's ``/metrics`` and publishes ``InstanceState`` events.

Pure parts (tested against captured texts in ``services/collector/testdata``): ``parse``
(Prometheus text → snapshot, with the vLLM/SGLang name table in ``names``), ``hitrate``,
``health``, ``models_api``, ``config``. I/O parts: ``reload`` (the instance file),
``scraper`` (HTTP + publish), ``api`` and ``metrics`` (the own endpoints), ``service`` (wiring).
"""

from lodestar_collector.parse import (
    InvalidMetricValueError,
    MalformedMetricsError,
    MetricsParseError,
    MetricsSnapshot,
    MissingMetricError,
    parse_metrics,
)

__all__ = [
    "InvalidMetricValueError",
    "MalformedMetricsError",
    "MetricsParseError",
    "MetricsSnapshot",
    "MissingMetricError",
    "parse_metrics",
]
