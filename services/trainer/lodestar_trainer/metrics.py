"""The trainer's Prometheus metrics (its own registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class TrainerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter("lodestar_trainer_events_total", "events consumed", ["topic"], registry=r)
        self.samples = Counter("lodestar_trainer_samples_total", "joined training samples", registry=r)
        self.skipped = Gauge("lodestar_trainer_skipped", "pairs not used so far, by reason", ["reason"], registry=r)
        self.published = Counter("lodestar_trainer_models_published_total", "model versions published", registry=r)
        self.version = Gauge("lodestar_trainer_model_version", "latest published model version", registry=r)
        self.loss = Gauge("lodestar_trainer_train_loss", "mean loss of the last training round", registry=r)
        self.val_mae = Gauge("lodestar_trainer_val_mae_log_ttft", "held-out MAE of log TTFT", registry=r)
        self.pending = Gauge("lodestar_trainer_join_pending", "decisions/outcomes waiting for their pair", registry=r)
        self.consumer_restarts = Counter(
            "lodestar_trainer_consumer_restarts", "consumer sessions ended by a Kafka failure", registry=r
        )
        self.dead_letters = Gauge(
            "lodestar_trainer_dead_letters", "undecodable events dead-lettered so far", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
