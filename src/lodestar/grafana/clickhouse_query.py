"""A ClickHouse data-source query for grafana-foundation-sdk, which ships no builder for the
``grafana-clickhouse-datasource`` plugin: the SDK's ``Dataquery`` variant plus a builder, so
ClickHouse targets go through the same ``Panel.with_target`` as the SDK's own queries.

The JSON is the plugin's v4 SQL-editor query: ``editorType: "sql"``, ``rawSql``, ``format``
(0 = time series: the plugin converts long rows to wide series, 1 = table) and ``queryType``.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants

from lodestar.grafana.datasources import CLICKHOUSE_QUERY_VERSION, CLICKHOUSE_UID, ref

Format = Literal["timeseries", "table"]
_FORMAT_CODE = {"timeseries": 0, "table": 1}


class ClickHouseQuery(cogvariants.Dataquery):
    def __init__(self, ref_id: str = "A", raw_sql: str = "", fmt: Format = "timeseries") -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql
        self.fmt: Format = fmt

    def to_json(self) -> dict[str, object]:
        return {
            "refId": self.ref_id,
            "datasource": ref(CLICKHOUSE_UID),
            "editorType": "sql",
            "format": _FORMAT_CODE[self.fmt],
            "queryType": self.fmt,
            "pluginVersion": CLICKHOUSE_QUERY_VERSION,
            "rawSql": self.raw_sql,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        fmt: Format = "table" if data.get("format") == 1 else "timeseries"
        return cls(str(data.get("refId", "A")), str(data.get("rawSql", "")), fmt)


class ClickHouseQueryBuilder(cogbuilder.Builder[cogvariants.Dataquery]):
    def __init__(self) -> None:
        self._internal = ClickHouseQuery()

    def build(self) -> ClickHouseQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def raw_sql(self, sql: str) -> Self:
        self._internal.raw_sql = sql
        return self

    def format(self, fmt: Format) -> Self:
        self._internal.fmt = fmt
        return self
