"""Wiring and loops of one trainer process.

Start: read the model topic from the beginning (compacted: the newest model survives) and
resume the latest version's weights, so a restart never re-publishes a version number. Then:
consume decisions and outcomes with a consumer group, join them, add samples to the
:class:`OnlineTrainer`, and every ``publish_interval_s`` train ``steps_per_publish`` steps and
publish the next version (awaiting the broker's acknowledgement). Offsets are committed after
each publication; a crash re-reads at most one interval of events (the join ignores duplicates).
A Kafka failure (broker gone, its log or our group lost, a commit refused) ends the consumer
session, not the process: the next session re-creates the topics and rejoins the group. The
version number lives in the process, so a broker that lost the model topic still never sees
a version twice from a running trainer.

Uses aiokafka rather than faust: the join state is small, in memory and time-bounded, and the
local broker's end-offset defect makes faust's table recovery unreliable (see the README).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass, field

import structlog
import torch
from fastapi import FastAPI, Response
from pydantic import BaseModel

from lodestar.bus.consume import EventConsumer
from lodestar.bus.model_topic import newest_model_update
from lodestar.bus.publish import EventPublisher
from lodestar.bus.settings import KafkaSettings
from lodestar.learn.blob import BLOB_FORMAT, BlobError, blob_sha256, decode_blob, encode_blob
from lodestar.learn.features import FEATURE_SCHEMA_VERSION
from lodestar.learn.trainer import OnlineTrainer
from lodestar.openai_errors import install_error_handlers
from lodestar.serving import ApiServer, bind_socket, ensure_topics_retrying
from lodestar_schemas.events import ModelUpdate, RequestOutcome, RouteDecision
from lodestar_schemas.topics import TOPICS, TopicName
from lodestar_trainer.join import DecisionOutcomeJoin
from lodestar_trainer.metrics import CONTENT_TYPE, TrainerMetrics
from lodestar_trainer.settings import TrainerSettings

log = structlog.get_logger(__name__)

_BACKOFF_S = 0.5
_MAX_BACKOFF_S = 5.0


class Health(BaseModel):
    status: str
    version: int
    samples: int
    pending_join: int


@dataclass
class TrainerService:
    settings: TrainerSettings
    kafka: KafkaSettings
    trainer: OnlineTrainer
    join: DecisionOutcomeJoin
    metrics: TrainerMetrics = field(default_factory=TrainerMetrics)
    version: int = 0
    api_port: int | None = None
    _dead_letters_before: int = 0  # dead-lettered by earlier consumer sessions

    @classmethod
    def build(cls, settings: TrainerSettings, kafka: KafkaSettings) -> TrainerService:
        torch.set_num_threads(1)
        torch.manual_seed(settings.seed)
        return cls(
            settings,
            kafka,
            OnlineTrainer(seed=settings.seed),
            DecisionOutcomeJoin(settings.join_window_s, settings.max_pending),
        )

    def health(self) -> Health:
        return Health(status="ok", version=self.version, samples=self.trainer.samples, pending_join=self.join.pending)

    def app(self) -> FastAPI:
        app = FastAPI(title="Lodestar trainer")
        install_error_handlers(app)  # a wrong path or method answers in the shape of every Lodestar service

        @app.get("/health")
        async def get_health() -> Health:
            return self.health()

        @app.get("/metrics")
        async def get_metrics() -> Response:
            return Response(self.metrics.render(), media_type=CONTENT_TYPE)

        return app

    async def run(self, stop: asyncio.Event) -> None:
        sock = bind_socket(self.settings.host, self.settings.port, "trainer API")
        api = ApiServer(self.app(), sock)
        self.api_port = api.port
        api.start()
        try:
            if not await ensure_topics_retrying(self.kafka, TOPICS, stop):
                return  # told to stop before the broker answered
            await self.resume()
            backoff = _BACKOFF_S
            while not stop.is_set():
                try:
                    await self._session(stop)
                except Exception as exc:  # the broker went away, lost its log or our group
                    self.metrics.consumer_restarts.inc()
                    log.warning("trainer_consumer_failed", error=f"{type(exc).__name__}: {exc}", retry_s=backoff)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF_S)
                    continue
                backoff = _BACKOFF_S
        finally:
            await api.stop()

    async def _session(self, stop: asyncio.Event) -> None:
        """One consumer (and publisher) lifetime: (re)create the topics, join the group from its
        committed offsets, consume and publish until ``stop``; any Kafka failure ends it (the
        caller starts the next one; the join dedupes what is read again)."""
        if not await ensure_topics_retrying(self.kafka, TOPICS, stop):
            return
        publisher = EventPublisher(self.kafka)
        consumer: EventConsumer | None = None
        try:
            await _retry(publisher.start, stop)
            consumer = EventConsumer(
                self.kafka,
                [TopicName.ROUTE_DECISIONS, TopicName.REQUEST_OUTCOMES],
                group_id=self.settings.group_id,
                dead_letters=publisher,
            )
            await _retry(consumer.start, stop)
            log.info("trainer_ready", version=self.version, api=f"http://{self.settings.host}:{self.api_port}")
            await self._loop(consumer, publisher, stop)
        finally:
            if consumer is not None:
                self._dead_letters_before += consumer.stats.dead_lettered
                await consumer.stop()
            await publisher.stop()

    async def resume(self) -> None:
        """Continue from the newest model on the model topic (if any)."""
        newest = await newest_model_update(self.kafka, self.settings.resume_idle_s)
        if newest is None:
            log.info("trainer_starts_fresh")
            return
        self.version = newest.version
        try:
            state = decode_blob(newest.weights)
        except BlobError as exc:
            log.warning("trainer_resume_unusable_model", version=newest.version, error=str(exc))
            return
        self.trainer.resume(state)
        self.metrics.version.set(self.version)
        log.info("trainer_resumed", version=self.version, samples=state.trained_samples)

    async def _loop(self, consumer: EventConsumer, publisher: EventPublisher, stop: asyncio.Event) -> None:
        next_publish = time.monotonic() + self.settings.publish_interval_s
        while not stop.is_set():
            batch = await consumer.poll(timeout_ms=200)
            now = time.monotonic()
            for rec in batch:
                self._absorb(rec.event, now)
            self.join.expire(now)
            self.metrics.pending.set(self.join.pending)
            self.metrics.dead_letters.set(self._dead_letters_before + consumer.stats.dead_lettered)
            if now >= next_publish:
                next_publish = now + self.settings.publish_interval_s
                await self._train_and_publish(publisher, now)
                await consumer.commit()
            if self.settings.poll_interval_s > 0:
                # Nothing is fetched for a partition whose records wait unread in the client, so
                # pausing here turns one broker fetch per arriving event into one per interval.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.poll_interval_s)

    def _absorb(self, event: object, now: float) -> None:
        if isinstance(event, RouteDecision):
            self.metrics.events.labels("decisions").inc()
            sample = self.join.add_decision(event, now)
        elif isinstance(event, RequestOutcome):
            self.metrics.events.labels("outcomes").inc()
            sample = self.join.add_outcome(event, now)
        else:
            return
        if sample is not None:
            self.trainer.add(sample.x, sample.y, sample.t_s)
            self.metrics.samples.inc()

    async def _train_and_publish(self, publisher: EventPublisher, now: float) -> None:
        loss = self.trainer.train(self.settings.steps_per_publish, now)
        stats = self.join.stats
        for reason in ("expired", "duplicates", "other_schema", "failed"):
            self.metrics.skipped.labels(reason).set(getattr(stats, reason))
        if not self.trainer.ready:
            return
        state = self.trainer.export(self.version + 1)
        blob = encode_blob(state)
        try:
            decode_blob(blob)  # publish only what every router will accept
        except BlobError as exc:
            log.error("trainer_model_invalid", version=state.version, error=str(exc))
            self.metrics.skipped.labels("invalid_model").inc()
            return
        update = ModelUpdate(
            version=state.version,
            feature_schema_version=FEATURE_SCHEMA_VERSION,
            weights_format=BLOB_FORMAT,
            weights=blob,
            weights_sha256=blob_sha256(blob),
            trained_samples=state.trained_samples,
            metrics={k: v for k, v in state.metrics.items() if math.isfinite(v)},
            parent_version=self.version or None,
        )
        try:
            await publisher.send(update)
        except Exception as exc:  # broker down: keep the version number for the next try
            log.warning("trainer_publish_failed", version=update.version, error=f"{type(exc).__name__}: {exc}")
            return
        self.version = update.version
        self.metrics.published.inc()
        self.metrics.version.set(self.version)
        if math.isfinite(loss):
            self.metrics.loss.set(loss)
        self.metrics.val_mae.set(state.metrics.get("val_mae_log_ttft", math.nan))
        log.info("model_published", version=self.version, samples=state.trained_samples, **update.metrics)


async def _retry(start: object, stop: asyncio.Event) -> None:
    """Call an async ``start`` until it succeeds (the broker may still be coming up)."""
    backoff = 0.5
    while not stop.is_set():
        try:
            await start()  # type: ignore[operator]
            return
        except Exception as exc:
            log.warning("trainer_connect_failed", error=f"{type(exc).__name__}: {exc}", retry_s=backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(backoff * 2, 5.0)
