"""The request id of an answer: the client's ``X-Request-Id`` when it is a valid id, else a new
one of 32 lowercase hex digits (128 random bits), never the same twice."""

from __future__ import annotations

import re

import pytest

from lodestar_gateway.api import request_id_of

_NEW_ID = re.compile(r"[0-9a-f]{32}")


def test_a_valid_client_id_is_kept() -> None:
    assert request_id_of("trace-42:a.b_c") == "trace-42:a.b_c"


@pytest.mark.parametrize("header", [None, "", "bad id with spaces", "-leading-dash", "x" * 129])
def test_a_missing_or_invalid_client_id_gets_a_new_one(header: str | None) -> None:
    rid = request_id_of(header)
    assert _NEW_ID.fullmatch(rid), rid


def test_new_ids_are_distinct() -> None:
    ids = {request_id_of(None) for _ in range(10_000)}
    assert len(ids) == 10_000
