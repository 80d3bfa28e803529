"""What a running peer router says about itself: ``GET /readiness`` and ``GET /workers``.

Both wheels answer ``/readiness`` with ``{"status", "healthy_workers", "total_workers"}`` and
``/workers`` with ``{"workers": [{"url", "load", "is_healthy", …}]}``. ``load`` is the router's
own count of requests it has in flight to that worker (what its cache-aware policy balances on).
``/workers`` lists workers in the order the policies see them: sglang-router's order is its
worker registry's iteration order, which changes with every start (ties go to the first).
Note: sglang-router's ``/health`` answers 200 before any worker is registered; readiness is the
only start-up signal that means "can route".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True, slots=True)
class RouterWorker:
    url: str
    load: int
    healthy: bool


def parse_workers(body: Any) -> list[RouterWorker]:
    """The ``GET /workers`` body as a list, in the router's order; ValueError if malformed."""
    try:
        items = body["workers"]
        return [RouterWorker(str(w["url"]), int(w["load"]), bool(w["is_healthy"])) for w in items]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a /workers body: {exc!r}") from None


def healthy_workers(body: Any) -> int:
    """``healthy_workers`` of a ``GET /readiness`` body (0 if absent)."""
    if isinstance(body, dict):
        value = body.get("healthy_workers", 0)
        if isinstance(value, int):
            return value
    return 0


def router_workers(url: str, timeout_s: float = 5.0) -> list[RouterWorker]:
    return parse_workers(httpx.get(f"{url}/workers", timeout=timeout_s).json())


def is_ready(url: str, n_workers: int, timeout_s: float = 1.0) -> bool:
    """True once the router at ``url`` reports ``n_workers`` healthy workers."""
    try:
        response = httpx.get(f"{url}/readiness", timeout=timeout_s)
        return response.status_code == 200 and healthy_workers(response.json()) >= n_workers
    except (httpx.HTTPError, ValueError):
        return False
