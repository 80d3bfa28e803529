"""``python -m lodestar_history``: run the history service (what ``lodestar history serve`` runs).

Exit status 1 with one log line when the setup is unusable (bad DSN, locked chDB directory,
failing DDL); otherwise runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import sys

import structlog
from pydantic import ValidationError

from lodestar.bus.settings import KafkaSettings
from lodestar.logs import configure_logging
from lodestar_history.migrate import MigrationError
from lodestar_history.service import HistoryService
from lodestar_history.settings import HistorySettings
from lodestar_history.store import StoreUnavailableError
from lodestar_history.target import HistoryConfigError


def main() -> int:
    try:
        settings = HistorySettings()
        kafka = KafkaSettings()
    except ValidationError as err:
        print(f"error: bad settings: {err}", file=sys.stderr)
        return 1
    try:
        service = HistoryService.build(settings, kafka)
        configure_logging(settings.log_level)
        service.run()
    except (HistoryConfigError, StoreUnavailableError, MigrationError) as err:
        structlog.get_logger("lodestar_history").error("history_setup_failed", error=str(err))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
