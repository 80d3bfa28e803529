"""Outlier ejection at the router: the gateway's ``failed`` feedback with an error that blames
the instance ejects it from the router's candidates; errors that do not blame it, successes
and feedback for unknown decisions do not."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import MONO_T0
from router_helpers import route_request

from lodestar_router.dispatch import Dispatcher
from lodestar_schemas.router_api import Feedback

NOW = MONO_T0 + 0.5
MakeDispatcher = Callable[..., Dispatcher]


def _final(rid: str, iid: str, error: str | None) -> Feedback:
    kind = "finished" if error is None else "failed"
    fields = {"decision_id": rid, "instance_id": iid, "kind": kind}
    return Feedback.model_validate({**fields, "error": error} if error else fields)


@pytest.mark.parametrize(
    ("error", "ejected"),
    [
        pytest.param("upstream_disconnected", True, id="broke-mid-stream"),
        pytest.param("upstream_connect", True, id="refused"),
        pytest.param("idle_timeout", True, id="stalled"),
        pytest.param("upstream_400", False, id="the-request's-fault"),
        pytest.param("client_disconnected", False, id="client-left"),
        pytest.param(None, False, id="served"),
    ],
)
def test_failed_feedback_ejects_the_instance(make_dispatcher: MakeDispatcher, error: str | None, ejected: bool) -> None:
    d = make_dispatcher(ids=["a", "b"])
    answer = d.route(route_request("req-1"), NOW)
    d.feedback([_final("req-1", answer.instance_id, error)], NOW + 0.1)
    assert d.directory.ejected_ids(NOW + 0.2) == ([answer.instance_id] if ejected else [])
    if ejected:
        for k in range(10):  # every later decision avoids it
            assert d.route(route_request(f"later-{k}"), NOW + 0.3).instance_id != answer.instance_id


def test_feedback_for_an_unknown_decision_changes_nothing(make_dispatcher: MakeDispatcher) -> None:
    d = make_dispatcher(ids=["a", "b"])
    d.feedback([_final("never-routed", "a", "upstream_connect")], NOW)
    assert d.directory.ejected_ids(NOW) == []
