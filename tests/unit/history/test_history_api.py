"""The query API over the dataset: named queries, errors, the guarded raw-SQL endpoint."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError
from fastapi.testclient import TestClient
from history_helpers import WINDOW

from lodestar_history.api import build_app
from lodestar_history.metrics import HistoryMetrics
from lodestar_history.queries import QueryCatalog
from lodestar_history.settings import default_sql_dir
from lodestar_history.sink import SinkStatus
from lodestar_history.store import HistoryStore

CATALOG = QueryCatalog.load(default_sql_dir() / "queries")


def _client(store: HistoryStore, allow_raw_sql: bool) -> TestClient:
    app = build_app(store, CATALOG, HistoryMetrics(), lambda: SinkStatus(consumer_up=True), allow_raw_sql)
    return TestClient(app)


@pytest.fixture
def api(history_dataset: HistoryStore) -> Iterator[TestClient]:
    with _client(history_dataset, allow_raw_sql=False) as client:
        yield client


@pytest.fixture
def raw_api(history_dataset: HistoryStore) -> Iterator[TestClient]:
    with _client(history_dataset, allow_raw_sql=True) as client:
        yield client


def test_named_query_answers_json_rows(api: TestClient) -> None:
    response = api.post("/query", json={"name": "ttft_by_policy", "params": {**WINDOW, "bucket_s": 3600}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [c["name"] for c in body["columns"]] == [
        "t", "policy", "requests", "ttft_p50_s", "ttft_p99_s", "ttft_mean_s",
    ]  # fmt: skip
    assert body["row_count"] == 2
    first = body["rows"][0]
    assert first["policy"] == "p1"
    assert first["requests"] == 3
    assert first["t"].endswith("Z")


def test_joined_decisions_serialise_arrays_maps_uuids_and_nulls(api: TestClient) -> None:
    body = api.post("/query", json={"name": "decisions_outcomes", "params": WINDOW}).json()
    last = body["rows"][-1]
    assert last["decision_id"] == "d6"
    assert last["has_outcome"] in (False, 0)
    assert last["ttft_s"] is None
    assert isinstance(last["decision_event_id"], str)
    assert last["candidate_features"][0]["queue"] == 1.0


def test_query_list_describes_parameters(api: TestClient) -> None:
    listed = {q["name"]: q for q in api.get("/queries").json()}
    assert set(listed) == set(CATALOG.names())
    params = {p["name"]: p for p in listed["decisions_outcomes"]["params"]}
    assert params["limit"]["type"] == "UInt64"
    assert params["from_ts"]["default"] == "now-1h"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"name": "nope"}, 404, "unknown query 'nope'"),
        ({"name": "ttft_by_policy", "params": {"bucket_s": "x"}}, 400, "'bucket_s'"),
        ({"name": "ttft_by_policy", "params": {"colour": "red"}}, 400, "no parameter(s) ['colour']"),
        ({"name": "ttft_by_policy", "extra": 1}, 400, "extra"),
        ({"params": {}}, 400, "name"),
        ({"name": "ttft_by_policy", "params": {"bucket_s": 0}}, 502, "ClickHouse rejected the query"),
    ],
    ids=["unknown-name", "bad-type", "unknown-param", "bad-body", "no-name", "engine-error"],
)
def test_errors_name_the_problem(api: TestClient, body: dict[str, object], status: int, message: str) -> None:
    """In the shape of every Lodestar service: ``{"error": {"message", "type", "param", "code"}}``."""
    response = api.post("/query", json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert message in error["message"]
    assert error["code"] == status
    assert error["type"] == {400: "BadRequestError", 404: "NotFoundError", 502: "BadGatewayError"}[status]


def test_raw_sql_is_off_by_default(api: TestClient) -> None:
    response = api.post("/sql", json={"sql": "SELECT 1 AS one"})
    assert response.status_code == 403
    assert "LODESTAR_HISTORY_ALLOW_RAW_SQL" in response.text


def test_raw_select_runs_when_enabled(raw_api: TestClient) -> None:
    response = raw_api.post("/sql", json={"sql": "SELECT count() AS n FROM route_decisions FINAL"})
    assert response.status_code == 200, response.text
    assert response.json()["rows"] == [{"n": 6}]


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO route_decisions (decision_id) VALUES ('x')",
        "DROP TABLE route_decisions",
        "SELECT 1; DROP TABLE route_decisions",
        "SELECT 1 INTO OUTFILE '/tmp/lodestar-history-test-out'",
        "SELECT * FROM file('/etc/hostname', 'LineAsString')",
        "ALTER TABLE route_decisions DELETE WHERE 1",
        "TRUNCATE TABLE route_decisions",
    ],
)
def test_raw_sql_cannot_write(raw_api: TestClient, history_dataset: HistoryStore, sql: str) -> None:
    response = raw_api.post("/sql", json={"sql": sql})
    assert response.status_code == 400
    assert "refused" in response.text
    count = history_dataset.query("SELECT count() FROM route_decisions FINAL").rows[0][0]
    assert count == 6


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO route_decisions (decision_id) VALUES ('x')",
        "CREATE TABLE evil (a UInt8) ENGINE = Memory",
        "SELECT * FROM file('/etc/hostname', 'LineAsString')",
        "SELECT 1 SETTINGS readonly = 0",
    ],
)
def test_the_engine_refuses_writes_on_the_raw_client_even_past_the_text_check(
    history_dataset: HistoryStore, sql: str
) -> None:
    """Second line of defence: the raw client runs with readonly=1."""
    with pytest.raises(DatabaseError, match="readonly"):
        history_dataset.query_readonly(sql)


def test_health_and_metrics(api: TestClient) -> None:
    health = api.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert health.json()["clickhouse"] == "ok"
    api.post("/query", json={"name": "event_counts", "params": WINDOW})
    metrics = api.get("/metrics").text
    assert 'lodestar_history_queries_total{outcome="ok",query="event_counts"}' in metrics
    assert "# TYPE lodestar_history_rows_inserted_total counter" in metrics


@pytest.mark.parametrize(
    ("path", "raw", "status"),
    [
        ("/query", b'{"name": "\\ud800"}', 400),
        ("/query", b'{"name": "ttft_by_policy", "params": {"\\udfff": 1}}', 400),
        ("/sql", b'{"sql": "SELECT \\ud800"}', 400),
        ("/query", b'{"name": "caf\\u00e9"}', 404),
    ],
    ids=["query name", "parameter name", "raw sql", "non-ASCII name"],
)
def test_a_lone_surrogate_in_a_body_is_a_4xx_not_a_500(api: TestClient, path: str, raw: bytes, status: int) -> None:
    """json.loads takes ``"\\ud800"``; pydantic then refuses the string and FastAPI's own 422,
    echoing it back, failed to encode it (a 500). Errors are ASCII JSON."""
    response = api.post(path, content=raw, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert response.content.isascii() and response.json()["error"]["code"] == status
