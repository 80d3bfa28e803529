"""Wiring of one history process: settings → store, catalog, metrics, sink, API; run with uvicorn.

The process owns the ClickHouse target (with chDB, the directory: no other process may open
it), so the sink and the query API share it. :func:`serve` blocks until SIGINT/SIGTERM, then
stops the sink (final flush and commit if ClickHouse and the broker allow) and closes the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import structlog
import uvicorn
from fastapi import FastAPI

from lodestar.bus.settings import KafkaSettings
from lodestar_history.api import build_app
from lodestar_history.metrics import HistoryMetrics
from lodestar_history.migrate import Migration, MigrationReport, load_migrations
from lodestar_history.queries import QueryCatalog
from lodestar_history.settings import HistorySettings
from lodestar_history.sink import Backoff, HistorySink, SinkConfig
from lodestar_history.store import HistoryStore, StoreUnavailableError
from lodestar_history.target import ClickHouseTarget, parse_target

log = structlog.get_logger(__name__)

_STOP_TIMEOUT_S = 15.0


@dataclass
class HistoryService:
    """The object graph of one process. Build with :meth:`build`, then :meth:`open`."""

    settings: HistorySettings
    target: ClickHouseTarget
    migrations: list[Migration]
    catalog: QueryCatalog
    metrics: HistoryMetrics
    store: HistoryStore
    sink: HistorySink
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    @classmethod
    def build(cls, settings: HistorySettings, kafka: KafkaSettings) -> HistoryService:
        """Parse the DSN and load the SQL files (no I/O beyond reading them); HistoryConfigError."""
        target = parse_target(settings)
        metrics = HistoryMetrics()
        store = HistoryStore(target, raw_sql_timeout_s=settings.raw_sql_timeout_s)
        config = SinkConfig(
            group_id=settings.group_id,
            batch_max_rows=settings.batch_max_rows,
            flush_interval_s=settings.flush_interval_s,
            max_backoff_s=settings.max_backoff_s,
        )
        return cls(
            settings=settings,
            target=target,
            migrations=load_migrations(settings.sql_dir),
            catalog=QueryCatalog.load(settings.sql_dir / "queries"),
            metrics=metrics,
            store=store,
            sink=HistorySink(kafka, store, metrics, config),
        )

    def open(self, retry: bool) -> MigrationReport:
        """Open the store and apply the DDL. With ``retry`` an unreachable server is retried
        forever (chDB errors, e.g. a directory locked by another process, are raised at once)."""
        backoff = Backoff(0.5, self.settings.max_backoff_s)
        while True:
            try:
                self.store.open()
                return self.store.migrate(self.migrations, self.settings.retention_params())
            except StoreUnavailableError as exc:
                if not retry or self.target.kind == "chdb":
                    raise
                delay = backoff.next()
                log.warning("history_clickhouse_unavailable", error=str(exc), retry_s=delay)
                time.sleep(delay)

    def app(self) -> FastAPI:
        @contextlib.asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            self._task = asyncio.create_task(self.sink.run(), name="history-sink")
            try:
                yield
            finally:
                await self._stop_sink()

        app: FastAPI = build_app(
            self.store,
            self.catalog,
            self.metrics,
            lambda: self.sink.status,
            allow_raw_sql=self.settings.allow_raw_sql,
            lifespan=lifespan,
        )
        return app

    async def _stop_sink(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self.sink.request_stop()
        try:
            await asyncio.wait_for(asyncio.shield(task), _STOP_TIMEOUT_S)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        log.info("history_sink_stopped")

    def close(self) -> None:
        self.store.close()

    def run(self) -> None:
        """Open the store (retrying an unreachable server), then serve until SIGINT/SIGTERM.
        Raises StoreUnavailableError / MigrationError before serving if the setup is unusable."""
        report = self.open(retry=True)
        log.info(
            "history_ready",
            target=self.target.describe(),
            migrations=report.files,
            retention_changes=report.retention_changes,
            queries=self.catalog.names(),
            url=self.settings.url,
        )
        try:
            config = uvicorn.Config(
                self.app(),
                host=self.settings.host,
                port=self.settings.port,
                log_config=None,
                access_log=False,
                lifespan="on",
            )
            uvicorn.Server(config).run()
        finally:
            self.close()


def serve(settings: HistorySettings, kafka: KafkaSettings) -> None:
    """Build and run the service; errors as :meth:`HistoryService.build` / :meth:`HistoryService.run`."""
    HistoryService.build(settings, kafka).run()
