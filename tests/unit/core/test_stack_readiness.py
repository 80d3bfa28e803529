"""The local stack calls its gateway ready only when it can serve: ``/health`` answers and
reports every instance healthy (the gateway learns instances from the collector's events, after
it is up; a request before that is a 503). Against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lodestar.localinfra.stack import sees_instances


@contextmanager
def health_server(status: int, body: bytes) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/health"
    finally:
        server.shutdown()
        server.server_close()


def test_ready_when_every_instance_is_healthy() -> None:
    with health_server(200, b'{"status": "ok", "healthy_instances": 2}') as url:
        assert sees_instances(url, 2)
        assert sees_instances(url, 1)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, b'{"status": "ok", "healthy_instances": 1}'),  # one instance not known yet
        (200, b'{"status": "ok", "healthy_instances": 0}'),  # up, no collector event yet
        (200, b'{"status": "ok"}'),  # no count at all
        (503, b'{"healthy_instances": 2}'),  # not serving
        (200, b"not json"),
        (200, b"[2]"),
        (200, b'{"healthy_instances": null}'),
    ],
)
def test_not_ready_otherwise(status: int, body: bytes) -> None:
    with health_server(status, body) as url:
        assert not sees_instances(url, 2)


def test_not_ready_when_nothing_listens() -> None:
    with health_server(200, b"{}") as url:
        pass
    assert not sees_instances(url, 1, timeout_s=0.5)
