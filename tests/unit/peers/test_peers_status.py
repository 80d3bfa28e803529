"""Parsing what a peer router says about itself (/workers, /readiness)."""

from __future__ import annotations

from typing import Any

import pytest

from lodestar.peers.status import RouterWorker, healthy_workers, parse_workers

SGLANG_WORKERS = {
    "workers": [
        {"id": "39a5", "url": "http://127.0.0.1:18102", "model_id": "unknown", "is_healthy": True, "load": 3},
        {"id": "3b08", "url": "http://127.0.0.1:18101", "model_id": "unknown", "is_healthy": False, "load": 0},
    ]
}


def test_parse_workers_keeps_the_router_order() -> None:
    assert parse_workers(SGLANG_WORKERS) == [
        RouterWorker("http://127.0.0.1:18102", 3, True),
        RouterWorker("http://127.0.0.1:18101", 0, False),
    ]


@pytest.mark.parametrize(
    ("case", "body"),
    [
        ("not-a-dict", ["x"]),
        ("no-workers", {"urls": []}),
        ("missing-load", {"workers": [{"url": "http://a:1", "is_healthy": True}]}),
        ("bad-load", {"workers": [{"url": "http://a:1", "is_healthy": True, "load": "many"}]}),
    ],
)
def test_parse_workers_rejects_other_bodies(case: str, body: Any) -> None:
    with pytest.raises(ValueError, match="not a /workers body"):
        parse_workers(body)


@pytest.mark.parametrize(
    ("body", "n"),
    [
        ({"status": "ready", "healthy_workers": 3, "total_workers": 3}, 3),
        ({"status": "not ready", "healthy_workers": 0, "total_workers": 3}, 0),
        ({"status": "ready"}, 0),
        ("OK", 0),
    ],
)
def test_healthy_workers(body: Any, n: int) -> None:
    assert healthy_workers(body) == n
