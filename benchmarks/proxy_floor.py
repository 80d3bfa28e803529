"""The floor of a Python proxy on this machine: what a bare proxy adds to time to first token
with each HTTP client, next to vllm-router (Rust), so the gateway's own cost can be read off.

    .venv/bin/python benchmarks/proxy_floor.py [--requests 300] [--clients lodestar,aiohttp]
        [--json out/benchmarks/proxy_floor.json]

Paths, each in front of the same single emulated instance (H100-SXM, llama-3-8b, time scale 1):
``direct``; ``vllm`` (vllm-router 0.1.17, ``round_robin``); ``bare-<client>``: a uvicorn
(uvloop + httptools) ASGI app that reads the body, forwards it with ``<client>`` and relays
the answer chunk by chunk — no parsing, routing, accounting or events. Clients: ``lodestar``
(the gateway's :mod:`lodestar.http_client`) and ``aiohttp`` (its ``ClientSession``,
which the gateway used before; not a project dependency: ``pip install aiohttp``). The
requests are those of ``router_overhead.py`` (same client, same interleaving, same prompt).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from router_overhead import MODEL, WARMUP, _ok, _process, bench_ttft, emulator, run_async

from lodestar.localinfra.ports import free_port
from lodestar.localinfra.settings import LocalInfraSettings
from lodestar.peers.catalog import peer_spec
from lodestar.peers.launch import PeerLaunch, start_peer

Forward = Callable[[str, bytes], Awaitable[tuple[int, Any]]]


def serve(client: str, port: int, upstream: str) -> None:
    """Run one bare proxy (this process) until killed."""
    import uvicorn

    if client == "lodestar":
        from lodestar.http_client import HttpClient

        http = HttpClient(connect_timeout_s=2.0)

        async def forward(path: str, body: bytes) -> tuple[int, Any]:
            response = await http.request("POST", upstream + path, body, {"content-type": "application/json"})
            return response.status, response

        async def pieces(response: Any) -> Any:
            async for piece in response.aiter():
                yield piece
            response.close()

    elif client == "aiohttp":
        import aiohttp

        sessions: list[Any] = []

        async def forward(path: str, body: bytes) -> tuple[int, Any]:
            if not sessions:
                sessions.append(aiohttp.ClientSession(auto_decompress=False, skip_auto_headers=("User-Agent",)))
            response = await sessions[0].post(upstream + path, data=body, headers={"content-type": "application/json"})
            return response.status, response

        async def pieces(response: Any) -> Any:
            async for piece in response.content.iter_any():
                yield piece
            response.release()

    else:
        raise SystemExit(f"unknown client {client!r}")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/health":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status, response = await forward(scope["path"], body)
        head = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": status, "headers": head})
        async for piece in pieces(response):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", lifespan="off", log_level="warning")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", default="lodestar,aiohttp")
    parser.add_argument("--json", type=Path, default=Path("out/benchmarks/proxy_floor.json"))
    parser.add_argument("--serve", nargs=3, metavar=("CLIENT", "PORT", "UPSTREAM"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), args.serve[2])
        return
    infra = LocalInfraSettings()
    with ExitStack() as stack:
        urls = stack.enter_context(emulator(infra, ["--hardware", "H100-SXM", "--model", MODEL], 1, 1.0))
        ports = {"direct": int(urls[0].rsplit(":", 1)[1])}
        launch = PeerLaunch(peer_spec("vllm"), "round_robin", tuple(urls), port=free_port(), log_level="warning")
        stack.callback(start_peer(launch, infra, timeout_s=90.0).stop)
        ports["vllm"] = launch.port
        for client in [c for c in args.clients.split(",") if c]:
            port = free_port()
            argv = [sys.executable, __file__, "--serve", client, str(port), urls[0]]
            ready = f"http://127.0.0.1:{port}/health"
            stack.enter_context(_process(infra, f"bare-{client}", argv, lambda u=ready: _ok(u), {}))
            ports[f"bare-{client}"] = port
        ttft = run_async(bench_ttft(ports, args.requests, WARMUP))
    print(f"\nadded TTFT (ms, vs direct; {args.requests} sequential requests per path, interleaved)")
    print(f"{'path':18s} {'P50':>7s} {'P99':>7s} {'added P50':>10s} {'added P99':>10s}")
    for name in ports:
        row = ttft[name]
        added = "" if name == "direct" else f"{row['added_p50_ms']:10.2f} {row['added_p99_ms']:10.2f}"
        print(f"{name:18s} {row['p50_ms']:7.2f} {row['p99_ms']:7.2f} {added}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"ttft": ttft}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
