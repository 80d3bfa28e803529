"""The collector's own /health and /metrics, served by its FastAPI app in-process."""

from __future__ import annotations

import httpx

from lodestar.bus.settings import KafkaSettings
from lodestar_collector.api import build_app
from lodestar_collector.service import CollectorService
from lodestar_collector.settings import CollectorSettings


async def test_health_and_metrics() -> None:
    settings = CollectorSettings(instances="a=http://127.0.0.1:1,b=http://127.0.0.1:2")
    service = CollectorService.build(settings, KafkaSettings(bootstrap_servers="127.0.0.1:1"))
    app = build_app(service.metrics, service.health)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://collector") as client:
        health = (await client.get("/health")).json()
        assert health["status"] == "ok"
        assert (health["instances"], health["healthy"], health["pending_events"]) == (2, 0, 0)
        assert [d["instance_id"] for d in health["detail"]] == ["a", "b"]
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        for name in (
            "lodestar_collector_instances 2.0",
            "lodestar_collector_events_dropped_total 0.0",
            "lodestar_collector_events_published_total 0.0",
            'lodestar_collector_config_reloads_total{outcome="rejected"} 0.0',
            "lodestar_collector_scrape_latency_seconds",
        ):
            assert name in metrics.text
    await service.client.aclose()


async def test_a_wrong_path_or_method_answers_in_the_shared_error_shape() -> None:
    settings = CollectorSettings(instances="a=http://127.0.0.1:1")
    service = CollectorService.build(settings, KafkaSettings(bootstrap_servers="127.0.0.1:1"))
    app = build_app(service.metrics, service.health)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://collector") as client:
        missing = await client.get("/nope")
        wrong = await client.post("/health")
    assert (missing.status_code, missing.json()["error"]["type"]) == (404, "NotFoundError")
    assert (wrong.status_code, wrong.json()["error"]["type"]) == (405, "MethodNotAllowedError")
    assert wrong.headers["allow"] == "GET"
    await service.client.aclose()
