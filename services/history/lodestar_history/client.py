"""A small blocking client of the history API, for the CLI, ``lodestar report`` and ``lodestar replay``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx


class HistoryClientError(RuntimeError):
    """The service is unreachable or refused the request; the message is the service's reason."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class HistoryClient:
    """Talks to one history service at ``base_url`` (e.g. ``http://127.0.0.1:8090``)."""

    def __init__(self, base_url: str, timeout_s: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def query(self, name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The service's answer to named query ``name``: ``{"columns", "rows", "row_count", …}``."""
        body = {"name": name, "params": dict(params or {})}
        result: dict[str, Any] = self._request("POST", "/query", body)
        return result

    def sql(self, text: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("POST", "/sql", {"sql": text})
        return result

    def queries(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._request("GET", "/queries", None)
        return result

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/health", None, ok_statuses=(200, 503))
        return result

    def _request(self, method: str, path: str, body: Any, ok_statuses: tuple[int, ...] = (200,)) -> Any:
        url = f"{self.base_url}{path}"
        try:
            response = httpx.request(method, url, json=body, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise HistoryClientError(
                f"no history service at {self.base_url} ({type(exc).__name__}: {exc}); "
                "start one with `lodestar history serve` or pass --url"
            ) from None
        if response.status_code not in ok_statuses:
            raise HistoryClientError(_detail(response), response.status_code)
        return response.json()


def _detail(response: httpx.Response) -> str:
    """The service's reason: the ``message`` of its error body (every Lodestar service answers
    errors as ``{"error": {"message": …}}``), else the start of the body."""
    try:
        error = response.json().get("error")
        message = error.get("message") if isinstance(error, dict) else None
    except (ValueError, AttributeError):
        message = None
    return f"HTTP {response.status_code}: {message or response.text[:500]}"
