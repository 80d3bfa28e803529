"""schemathesis over a running server's ``/openapi.json``: every operation, valid and invalid
inputs, a bounded number of examples. Collects what went wrong instead of raising (no
shrinking: a failure is reported with the request that caused it).

Requests are sent with httpx from schemathesis' transport arguments: its own ``requests``
transport breaks when ``urllib3-future`` (pulled in by another dependency) replaces urllib3."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import hypothesis
import hypothesis.errors
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode


@dataclass
class FuzzReport:
    calls: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def _check(case: Any, status: int, text: str, report: FuzzReport, allowed: frozenset[str]) -> None:
    where = f"{case.method} {case.path} body={str(case.body)[:200]!r} headers={case.headers}"
    if status >= 500 and f"{case.method} {case.path} {status}" not in allowed:
        report.failures.append(f"{status} for {where}: {text[:300]}")
    elif status >= 400:
        try:
            error = json.loads(text)["error"]
            assert isinstance(error["message"], str) and error["message"]
            assert isinstance(error["type"], str) and error["code"] == status
        except (ValueError, KeyError, TypeError, AssertionError):
            report.failures.append(f"{status} without an OpenAI error body for {where}: {text[:300]}")


def _send(client: httpx.Client, kwargs: dict[str, Any]) -> httpx.Response:
    headers = dict(kwargs.get("headers") or {})
    if kwargs.get("cookies"):
        headers["cookie"] = "; ".join(f"{k}={v}" for k, v in kwargs["cookies"].items())
    body: dict[str, Any] = {}
    if "json" in kwargs:
        body["json"] = kwargs["json"]
    elif isinstance(kwargs.get("data"), (bytes, str)):
        body["content"] = kwargs["data"]
    elif kwargs.get("data") is not None:
        body["data"] = kwargs["data"]
    return client.request(kwargs["method"], kwargs["url"], params=kwargs.get("params"), headers=headers, **body)


def fuzz(
    base_url: str,
    max_examples: int,
    headers: dict[str, str] | None = None,
    allowed_5xx: frozenset[str] = frozenset(),
    seed: int = 0,
) -> FuzzReport:
    """Call every operation of ``base_url`` with ``max_examples`` valid and as many invalid
    inputs each (fixed seed); blocking (run it in a thread beside an event-loop server).
    ``allowed_5xx``: documented server-side answers (``"POST /v1/route 503"``), still checked
    for an OpenAI error body."""
    schema = schemathesis.openapi.from_dict(httpx.get(base_url + "/openapi.json").json())
    report = FuzzReport()
    client = httpx.Client(timeout=30)
    for result in schema.get_all_operations():
        operation = result.ok()
        # Invalid inputs only where there is a body to break: generating invalid headers or
        # queries for body-less GETs takes seconds and finds nothing these servers read.
        has_body = len(list(operation.body)) > 0
        modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if has_body else (GenerationMode.POSITIVE,)
        for mode in modes:

            @hypothesis.settings(
                max_examples=max_examples,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @hypothesis.seed(seed)
            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            def call(case: Any) -> None:
                response = _send(client, case.as_transport_kwargs(base_url=base_url, headers=headers))
                report.calls += 1
                report.by_status[response.status_code] = report.by_status.get(response.status_code, 0) + 1
                _check(case, response.status_code, response.text, report, allowed_5xx)

            # Unsatisfiable: no invalid input exists (an operation without parameters or body)
            with contextlib.suppress(hypothesis.errors.Unsatisfiable):
                call()
    client.close()
    return report
