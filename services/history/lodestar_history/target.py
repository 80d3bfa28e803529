"""Which ClickHouse to use: one DSN selects chDB (embedded, a directory) or a server over HTTP.

Both go through clickhouse-connect with the same SQL. The password and TLS options come only
from settings (the environment), never from the DSN, so a DSN can be logged and passed around.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from lodestar_history.settings import HistorySettings

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class HistoryConfigError(ValueError):
    """The history settings (DSN, database, directories) are unusable; the message says which."""


@dataclass(frozen=True)
class ClickHouseTarget:
    """A parsed DSN plus the secrets and TLS options from the environment."""

    kind: Literal["chdb", "http"]
    database: str
    path: Path | None = None
    host: str = ""
    port: int = 0
    secure: bool = False
    username: str | None = None
    password: SecretStr | None = None
    verify: bool = True
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    connect_timeout_s: float = 10.0
    timeout_s: float = 300.0

    def describe(self) -> str:
        """The target without secrets, for logs and messages."""
        if self.kind == "chdb":
            return f"chdb:{self.path} (database {self.database})"
        scheme = "https" if self.secure else "http"
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}/{self.database}"

    def client_kwargs(self, database: str | None) -> dict[str, Any]:
        """Keyword arguments of ``clickhouse_connect.get_client`` for this target."""
        if self.kind == "chdb":
            return {"interface": "chdb", "path": str(self.path), "database": database}
        kwargs: dict[str, Any] = {
            "interface": "https" if self.secure else "http",
            "host": self.host,
            "port": self.port,
            "database": database,
            "connect_timeout": self.connect_timeout_s,
            "send_receive_timeout": self.timeout_s,
            "client_name": "lodestar-history",
            # Concurrent API queries on one client must not share a server session.
            "autogenerate_session_id": False,
        }
        if self.username:
            kwargs["username"] = self.username
        if self.password is not None:
            kwargs["password"] = self.password.get_secret_value()
        if self.secure:
            kwargs["verify"] = self.verify
            if self.ca_cert:
                kwargs["ca_cert"] = self.ca_cert
            if self.client_cert:
                kwargs["client_cert"] = self.client_cert
                if self.client_key:
                    kwargs["client_cert_key"] = self.client_key
        return kwargs


def parse_target(settings: HistorySettings, cwd: Path | None = None) -> ClickHouseTarget:
    """The target named by ``settings.clickhouse_dsn``; HistoryConfigError naming the problem."""
    dsn = settings.clickhouse_dsn.strip()
    parts = urlsplit(dsn)
    scheme = parts.scheme.lower()
    if scheme == "chdb":
        return _chdb_target(dsn, parts.netloc, parts.path, parts.query, settings, cwd or Path.cwd())
    if scheme in ("http", "https"):
        return _http_target(dsn, scheme, settings)
    raise HistoryConfigError(
        f"LODESTAR_HISTORY_CLICKHOUSE_DSN {dsn!r}: unsupported scheme {parts.scheme!r} "
        "(use chdb:///abs/dir, chdb:rel/dir or http(s)://user@host:port/database)"
    )


def _database(name: str, origin: str) -> str:
    if not _IDENTIFIER.match(name):
        raise HistoryConfigError(f"{origin}: database {name!r} is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*)")
    return name


def _chdb_target(
    dsn: str, netloc: str, path: str, query: str, settings: HistorySettings, cwd: Path
) -> ClickHouseTarget:
    origin = f"LODESTAR_HISTORY_CLICKHOUSE_DSN {dsn!r}"
    if netloc:
        raise HistoryConfigError(f"{origin}: name a directory, as chdb:///abs/dir or chdb:rel/dir")
    if query:
        raise HistoryConfigError(f"{origin}: options are not accepted in the DSN")
    if not path:
        raise HistoryConfigError(f"{origin}: no directory given")
    directory = Path(unquote(path))
    directory = directory if directory.is_absolute() else cwd / directory
    if directory.exists() and not directory.is_dir():
        raise HistoryConfigError(f"{origin}: {directory} exists and is not a directory")
    return ClickHouseTarget(
        kind="chdb",
        path=directory.resolve(),
        database=_database(settings.clickhouse_database, "LODESTAR_HISTORY_CLICKHOUSE_DATABASE"),
    )


def _http_target(dsn: str, scheme: str, settings: HistorySettings) -> ClickHouseTarget:
    parts = urlsplit(dsn)
    origin = f"LODESTAR_HISTORY_CLICKHOUSE_DSN {_redact(dsn)!r}"
    if parts.password is not None:
        raise HistoryConfigError(f"{origin}: put the password in LODESTAR_HISTORY_CLICKHOUSE_PASSWORD, not the DSN")
    if parts.query or parts.fragment:
        raise HistoryConfigError(
            f"{origin}: options are not accepted in the DSN (TLS: LODESTAR_HISTORY_CLICKHOUSE_CA_CERT / _VERIFY)"
        )
    if not parts.hostname:
        raise HistoryConfigError(f"{origin}: no host")
    try:
        port = parts.port
    except ValueError:
        raise HistoryConfigError(f"{origin}: bad port") from None
    secure = scheme == "https"
    path = parts.path.strip("/")
    if "/" in path:
        raise HistoryConfigError(f"{origin}: the path must be just the database name")
    database = unquote(path) if path else settings.clickhouse_database
    return ClickHouseTarget(
        kind="http",
        database=_database(database, origin),
        host=parts.hostname,
        port=port or (8443 if secure else 8123),
        secure=secure,
        username=unquote(parts.username) if parts.username else None,
        password=settings.clickhouse_password,
        verify=settings.clickhouse_verify,
        ca_cert=settings.clickhouse_ca_cert,
        client_cert=settings.clickhouse_client_cert,
        client_key=settings.clickhouse_client_key,
        connect_timeout_s=settings.clickhouse_connect_timeout_s,
        timeout_s=settings.clickhouse_timeout_s,
    )


def _redact(dsn: str) -> str:
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
