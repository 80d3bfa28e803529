"""Run every ClickHouse query of the committed dashboards on a chDB directory, in a process of
its own (see history_fixture.py), and print one JSON object per query.

``python run_panels.py DIR FROM TO`` → ``{"runs": [...], "broken": [...]}`` where ``broken``
are the runs of deliberately broken copies of the first four routing panels (a misspelt
column, an unquoted string variable, a time series without its time column, an undefined
variable), which the checks must reject.
"""

from __future__ import annotations

import copy
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from lodestar.grafana.generate import default_grafana_dir
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


def main(directory: Path, from_ts: datetime, to_ts: datetime) -> None:
    models = [json.loads(p.read_text()) for p in sorted((default_grafana_dir() / "dashboards").glob("*.json"))]
    store = HistoryStore(parse_target(HistorySettings(clickhouse_dsn=f"chdb://{directory}")))
    store.open()
    try:
        runs = check_sql(store.reader, models, from_ts, to_ts)
        broken = check_sql(store.reader, _broken(models), from_ts, to_ts)
    finally:
        store.close()
    print(json.dumps({"runs": [_json(r) for r in runs], "broken": [_json(r) for r in broken]}, default=str))


if __name__ == "__main__":
    main(Path(sys.argv[1]), datetime.fromisoformat(sys.argv[2]), datetime.fromisoformat(sys.argv[3]))
