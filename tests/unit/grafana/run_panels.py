"""Run every ClickHouse query of the committed dashboards on a chDB directory, in a process of
its own (see history_fixture.py), and print one JSON object per query.

``python run_panels.py DIR FROM TO`` → ``{"runs": [...], "broken": [...], "empty": [...],
"broken_empty": [...]}`` where ``broken`` are the runs of deliberately broken copies of the
first four routing panels (a misspelt column, an unquoted string variable, a time series
without its time column, an undefined variable), which the checks must reject. ``empty`` runs
every query on a window without events (:data:`EMPTY_WINDOW`) and ``broken_empty`` the two
dead-letter panels with broken SQL (an unknown column, an unknown table) on it. Every check
knows the dashboards' healthy-when-empty panels.
"""

from __future__ import annotations

import copy
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lodestar.grafana.dashboards import DASHBOARDS
from lodestar.grafana.generate import default_grafana_dir
from lodestar.grafana.spec import healthy_empty_panels
from lodestar.grafana.sqlcheck import SqlRun, check_sql
from lodestar_history.settings import HistorySettings
from lodestar_history.store import HistoryStore
from lodestar_history.target import parse_target


def _json(run: SqlRun) -> dict[str, Any]:
    return {
        "dashboard": run.site.dashboard,
        "where": run.site.where,
        "kind": run.site.kind,
        "sql": run.expanded,
        "columns": list(run.columns),
        "types": list(run.types),
        "rows": run.rows,
        "problems": run.problems,
        "empty_when_healthy": run.site.empty_when_healthy,
    }


def _broken(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    routing = copy.deepcopy(next(m for m in models if m["uid"] == "lodestar-routing"))
    targets = [t for p in routing["panels"] for t in p.get("targets", [])]
    targets[0]["rawSql"] = targets[0]["rawSql"].replace("ttft_p50_s AS", "ttft_p5O_s AS")
    targets[1]["rawSql"] = targets[1]["rawSql"].replace("'${policy}'", "${policy}")
    targets[2]["rawSql"] = targets[2]["rawSql"].replace("SELECT\n    t,", "SELECT\n", 1)
    targets[3]["rawSql"] = targets[3]["rawSql"].replace("'${policy}'", "'${no_such_variable}'")
    routing["panels"] = routing["panels"][:4]
    return [routing]


#: no event of the history tests' dataset falls in it (the CLI test uses it too)
EMPTY_WINDOW = (datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 1, 1, tzinfo=UTC))


def _broken_dead_letters(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    pipeline = copy.deepcopy(next(m for m in models if m["uid"] == "lodestar-pipeline"))
    by_title = {p["title"]: p for p in pipeline["panels"]}
    per_topic = by_title["Dead letters per source topic"]["targets"][0]
    per_topic["rawSql"] = per_topic["rawSql"].replace("count() AS letters", "count() AS letterz")
    newest = by_title["Newest dead letters"]["targets"][0]
    newest["rawSql"] = newest["rawSql"].replace("FROM dead_letters FINAL", "FROM dead_letterz FINAL")
    pipeline["panels"] = [by_title["Dead letters per source topic"], by_title["Newest dead letters"]]
    return [pipeline]


def main(directory: Path, from_ts: datetime, to_ts: datetime) -> None:
    models = [json.loads(p.read_text()) for p in sorted((default_grafana_dir() / "dashboards").glob("*.json"))]
    store = HistoryStore(parse_target(HistorySettings(clickhouse_dsn=f"chdb://{directory}")))
    store.open()
    try:
        flags = healthy_empty_panels(DASHBOARDS)
        answer = {
            "runs": check_sql(store.reader, models, from_ts, to_ts, healthy_empty=flags),
            "broken": check_sql(store.reader, _broken(models), from_ts, to_ts, healthy_empty=flags),
            "empty": check_sql(store.reader, models, *EMPTY_WINDOW, healthy_empty=flags),
            "broken_empty": check_sql(store.reader, _broken_dead_letters(models), *EMPTY_WINDOW, healthy_empty=flags),
        }
    finally:
        store.close()
    print(json.dumps({key: [_json(r) for r in runs] for key, runs in answer.items()}, default=str))


if __name__ == "__main__":
    main(Path(sys.argv[1]), datetime.fromisoformat(sys.argv[2]), datetime.fromisoformat(sys.argv[3]))
