"""Structured (JSON) logging for every process; call :func:`configure_logging` once in ``main``."""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(level: str = "INFO", json: bool = True) -> None:
    """Route stdlib and structlog records to stderr as JSON lines (or console text)."""
    lvl = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=lvl, stream=sys.stderr, format="%(message)s", force=True)


def quiet_kafka_client() -> None:
    """aiokafka's INFO lines (connections, metadata, group joins) down to warnings, except its
    fetcher's, which keeps the process's level (call after :func:`configure_logging`): its one
    INFO line says a consumer's position was reset after "offset out of range", which moves the
    position past records that were never delivered."""
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLogger().level))
    logging.getLogger("aiokafka.consumer.fetcher").setLevel(logging.getLogger().level)
