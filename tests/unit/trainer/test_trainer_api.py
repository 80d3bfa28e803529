"""The trainer's own /health and /metrics, served by its FastAPI app in-process; a wrong path or
method answers in the error shape every Lodestar service uses."""

from __future__ import annotations

import httpx

from lodestar.bus.settings import KafkaSettings
from lodestar_trainer.service import TrainerService
from lodestar_trainer.settings import TrainerSettings


async def test_health_metrics_and_errors() -> None:
    service = TrainerService.build(TrainerSettings(port=0), KafkaSettings(bootstrap_servers="127.0.0.1:1"))
    transport = httpx.ASGITransport(app=service.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://trainer") as client:
        health = await client.get("/health")
        metrics = await client.get("/metrics")
        missing = await client.get("/nope")
        wrong = await client.delete("/metrics")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert metrics.status_code == 200 and "# TYPE" in metrics.text
    assert missing.status_code == 404
    assert missing.json()["error"] == {"message": "Not Found", "type": "NotFoundError", "param": None, "code": 404}
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (405, 405)
