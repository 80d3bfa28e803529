"""Latency of the route path: in-process (validation, ``policy.decide``, the whole dispatcher)
and over HTTP against a real router process.

Setup, as in production: the ``lodestar`` profile with a trained model in use (a real
:class:`~lodestar.learn.trainer.OnlineTrainer` fitted to synthetic samples, so decisions go
through the predictor and the explorer, not the fallback), 8 candidate instances with scraped
state, prompts of 1,000 blocks (16k tokens) drawn from 16 shared 800-block prefixes plus 200
unique blocks each, so the prefix index does real work. Every routed request gets its
first-token and finished feedback (untimed), so in-flight accounting stays at a steady size.

The profile is the shipped ``lodestar`` one with drift fallback disabled (see ``PROFILE``).

- ``in-process``: ``RouteRequest.model_validate_json`` of the body, ``policy.decide`` alone,
  and ``Dispatcher.route`` (view, candidates, decide, dispatch, event build and buffering).
- ``http``: a local broker (tansu) and ``python -m lodestar_router`` as a separate process; the
  model and the instance states arrive through Kafka. The client is a raw keep-alive socket
  (pre-serialised request, TCP_NODELAY), so the numbers are the router's cost plus loopback,
  not an HTTP client's; one request at a time, back to back (``--gap-ms`` pauses before each,
  so the router's background work — decision event, Kafka send — is done when a request
  arrives). ``httpx`` numbers are shown for reference.

Usage::

    python services/router/scripts/bench_route.py --requests 3000
    python services/router/scripts/bench_route.py --requests 3000 --gap-ms 5
    python services/router/scripts/bench_route.py --in-process-only --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

from lodestar.bus.admin import ensure_topics
from lodestar.bus.publish import EventPublisher
from lodestar.bus.settings import KafkaSettings
from lodestar.learn.blob import BLOB_FORMAT, ModelState, blob_sha256, encode_blob
from lodestar.learn.features import FEATURE_NAMES, FEATURE_SCHEMA_VERSION, N_FEATURES
from lodestar.learn.policy import LodestarPolicy
from lodestar.learn.trainer import OnlineTrainer, TrainerConfig
from lodestar.localinfra.broker import broker_process, start_broker
from lodestar.localinfra.ports import free_port
from lodestar.localinfra.process import ManagedProcess
from lodestar.localinfra.settings import LocalInfraSettings
from lodestar.policy.contracts import Decision, InstanceView, Outcome, Policy, RequestView
from lodestar.policy.directory import InstanceDirectory
from lodestar.policy.fleet import FleetState
from lodestar_router.dispatch import Dispatcher
from lodestar_router.metrics import RouterMetrics
from lodestar_router.model_updates import ModelStore
from lodestar_router.service import policy_builder
from lodestar_schemas import Event, InstanceState, ModelUpdate
from lodestar_schemas.router_api import Feedback, RouteRequest

MODEL = "llama-3-8b"
N_INSTANCES = 8
BLOCKS = 1000
#: the shipped profile, except that drift never hands control back to the heuristic: the
#: bench's synthetic feedback does not match the synthetic model, and the bench measures the
#: model's path (drift is still tracked on every outcome)
PROFILE = """name: lodestar-bench
policy:
  type: lodestar
  params: {fallback_profile: least-request, drift_fallback_ratio: 1.0e9, drift_explore_ratio: 1.0e9}
"""


def bench_profile() -> Path:
    path = Path(tempfile.mkdtemp(prefix="bench-router-")) / "lodestar-bench.yaml"
    path.write_text(PROFILE)
    return path


def train_model(version: int = 1, seed: int = 0) -> ModelState:
    """A small ensemble fitted to synthetic samples (TTFT ≈ pending work / speed)."""
    rng = np.random.default_rng(seed)
    trainer = OnlineTrainer(TrainerConfig(members=5, hidden=64, batch=64), seed=seed)
    work, decode = FEATURE_NAMES.index("work_ttft_log"), FEATURE_NAMES.index("decode_step_log")
    for i in range(400):
        x = rng.normal(0.0, 1.0, N_FEATURES)
        x[work], x[decode] = rng.uniform(-4.0, 0.0), -3.7
        y = np.array([x[work] + 0.1 + rng.normal(0, 0.05), x[decode] + rng.normal(0, 0.05), x[work] + 1.0])
        trainer.add(x, y, float(i))
    trainer.train(60, 400.0)
    return trainer.export(version)


def states(now: datetime) -> list[InstanceState]:
    return [
        InstanceState(
            ts=now,
            instance_id=f"inst-{k}",
            url=f"http://127.0.0.1:{9000 + k}",
            model=MODEL,
            num_running=2 + k,
            num_waiting=k % 3,
            kv_usage_frac=0.1 * k,
            prefix_hit_rate=0.5,
            max_model_len=131_072,
            healthy=True,
            scrape_latency_s=0.002,
        )
        for k in range(N_INSTANCES)
    ]


class Prompts:
    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self._prefixes = [[self._rng.getrandbits(64) for _ in range(800)] for _ in range(16)]

    def request(self, i: int) -> RouteRequest:
        blocks = self._rng.choice(self._prefixes) + [self._rng.getrandbits(64) for _ in range(BLOCKS - 800)]
        return RouteRequest(
            request_id=f"bench-{i}",
            model=MODEL,
            prompt_tokens=BLOCKS * 16,
            block_hashes=blocks,
            expected_output_tokens=128,
        )


def _pcts(wall_s: list[float], cpu_s: list[float] | None = None) -> dict[str, float]:
    """Wall-time percentiles; with ``cpu_s`` (thread CPU time of the same calls) its median
    and mean too, which a busy machine disturbs far less than wall time."""
    us = sorted(s * 1e6 for s in wall_s)
    n = len(us)
    out = {
        "n": n,
        "p50_us": us[n // 2],
        "p90_us": us[int(n * 0.9)],
        "p99_us": us[min(n - 1, int(n * 0.99))],
        "mean_us": statistics.fmean(us),
    }
    if cpu_s:
        out["cpu_p50_us"] = statistics.median(cpu_s) * 1e6
        out["cpu_mean_us"] = statistics.fmean(cpu_s) * 1e6
    return out


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- in-process -----------------------------------------------------------------------------


class TimedPolicy(Policy):
    """Delegates to ``inner`` and records how long each ``decide`` took."""

    def __init__(self, inner: Policy) -> None:
        self.inner = inner
        self.name = inner.name
        self.decide_s: list[float] = []
        self.decide_cpu_s: list[float] = []
        self.fallbacks = 0

    def decide(self, request: RequestView, candidates: Sequence[InstanceView], now_s: float) -> Decision:
        t0, c0 = time.perf_counter(), time.thread_time()
        decision = self.inner.decide(request, candidates, now_s)
        self.decide_s.append(time.perf_counter() - t0)
        self.decide_cpu_s.append(time.thread_time() - c0)
        self.fallbacks += decision.fallback
        return decision

    def on_first_token(self, request_id: str, instance_id: str, now_s: float) -> None:
        self.inner.on_first_token(request_id, instance_id, now_s)

    def on_outcome(self, outcome: Outcome, now_s: float) -> None:
        self.inner.on_outcome(outcome, now_s)


def in_process(n: int, state: ModelState) -> dict[str, dict[str, float]]:
    directory = InstanceDirectory(FleetState(), staleness_s=3600.0, remove_after_s=7200.0)
    now_wall = datetime.now(UTC)
    for s in states(now_wall):
        directory.apply(s, time.monotonic(), now_wall.timestamp())
    learned = policy_builder(0)(str(bench_profile()))
    assert isinstance(learned, LodestarPolicy)
    if not learned.load_model(state):
        raise SystemExit("the trained model was not taken (not confident?)")
    policy = TimedPolicy(learned)
    published: list[Event] = []

    def publish(event: Event) -> bool:
        published.append(event)
        return True

    dispatcher = Dispatcher(directory, policy, ModelStore(), RouterMetrics(), publish)
    prompts = Prompts()
    reqs = [prompts.request(i) for i in range(n)]
    bodies = [r.model_dump_json().encode() for r in reqs]
    validate: list[float] = []
    validate_cpu: list[float] = []
    for body in bodies:
        t0, c0 = time.perf_counter(), time.thread_time()
        RouteRequest.model_validate_json(body)
        validate.append(time.perf_counter() - t0)
        validate_cpu.append(time.thread_time() - c0)
    route: list[float] = []
    route_cpu: list[float] = []
    for req in reqs:
        t0, c0 = time.perf_counter(), time.thread_time()
        answer = dispatcher.route(req, time.monotonic())
        route.append(time.perf_counter() - t0)
        route_cpu.append(time.thread_time() - c0)
        _feedback(dispatcher, req.request_id, answer.instance_id, time.monotonic())
    if policy.fallbacks:
        raise SystemExit(f"{policy.fallbacks} decisions fell back to the heuristic; the bench wants the model")
    return {
        "validate_route_body": _pcts(validate, validate_cpu),
        "policy_decide": _pcts(policy.decide_s, policy.decide_cpu_s),
        "dispatcher_route": _pcts(route, route_cpu),
    }


def _feedback(dispatcher: Dispatcher, rid: str, iid: str, now: float) -> None:
    dispatcher.feedback(
        [
            Feedback(decision_id=rid, instance_id=iid, kind="first_token", ttft_s=0.08),
            Feedback(
                decision_id=rid,
                instance_id=iid,
                kind="finished",
                prompt_tokens=BLOCKS * 16,
                completion_tokens=128,
                ttft_s=0.08,
                tpot_s=0.02,
                e2e_s=2.6,
            ),
        ],
        now,
    )


# --- over HTTP ------------------------------------------------------------------------------


class RawClient:
    """HTTP/1.1 keep-alive over one socket; requests pre-serialised."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @staticmethod
    def frame(path: str, body: bytes) -> bytes:
        head = f"POST {path} HTTP/1.1\r\nHost: router\r\nContent-Type: application/json\r\n"
        return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body

    def send(self, frame: bytes) -> tuple[int, bytes]:
        self.sock.sendall(frame)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("router closed the connection")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        match = re.search(rb"content-length:\s*(\d+)", head, re.IGNORECASE)
        length = int(match.group(1)) if match else 0
        while len(rest) < length:
            rest += self.sock.recv(65536)
        return int(head.split(b" ", 2)[1]), rest


async def _publish(kafka: KafkaSettings, state: ModelState) -> None:
    await ensure_topics(kafka)
    publisher = EventPublisher(kafka)
    await publisher.start()
    try:
        blob = encode_blob(state)
        await publisher.send(
            ModelUpdate(
                version=state.version,
                feature_schema_version=FEATURE_SCHEMA_VERSION,
                weights_format=BLOB_FORMAT,
                weights=blob,
                weights_sha256=blob_sha256(blob),
                trained_samples=state.trained_samples,
                metrics=dict(state.metrics),
            )
        )
        for s in states(datetime.now(UTC)):
            await publisher.send(s)
    finally:
        await publisher.stop()


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def over_http(n: int, state: ModelState, gap_s: float = 0.0) -> dict[str, dict[str, float]]:
    infra = LocalInfraSettings(home=Path(__file__).resolve().parents[3] / ".lodestar")
    bport, rport = free_port(), free_port()
    name = f"bench-broker-{os.getpid()}"
    kafka = KafkaSettings(bootstrap_servers=start_broker(infra, port=bport, name=name), topic_prefix="bench.")
    log_dir = Path(tempfile.mkdtemp(prefix="bench-router-"))
    argv = [
        sys.executable, "-m", "lodestar_router", "--port", str(rport), "--profile", str(bench_profile()),
        "--staleness", "3600", "--remove-after", "7200",
    ]  # fmt: skip
    router = ManagedProcess(
        name=f"bench-router-{os.getpid()}",
        argv=argv,
        run_dir=log_dir,
        log_dir=log_dir,
        env={
            "LODESTAR_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "LODESTAR_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
            "LODESTAR_ROUTER_LOG_LEVEL": "WARNING",
        },
    )
    base = f"http://127.0.0.1:{rport}"
    try:
        router.start(ready=lambda: _ok(f"{base}/health"), timeout_s=60)
        deadline = time.monotonic() + 60
        while True:  # the router reads states from the latest offset: publish until it sees them
            asyncio.run(_publish(kafka, state))
            health = httpx.get(f"{base}/health").json()
            if health["model_version"] == state.version and health["healthy_instances"] == N_INSTANCES:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"router not ready: {health}\n{router.log_tail()}")
            time.sleep(0.5)
        prompts = Prompts(seed=1)
        client = RawClient(rport)
        route_s: list[float] = []
        pending: list[bytes] = []
        warmup = 300
        pid = router.pid()
        assert pid is not None
        cpu0 = 0.0
        for i in range(n + warmup):
            if i == warmup:
                cpu0 = _cpu_s(pid)
            req = prompts.request(i)
            frame = RawClient.frame("/v1/route", req.model_dump_json().encode())
            if gap_s:
                time.sleep(gap_s)
            t0 = time.perf_counter()
            status, body = client.send(frame)
            dt = time.perf_counter() - t0
            if status != 200:
                raise SystemExit(f"route answered {status}: {body!r}")
            if i >= warmup:
                route_s.append(dt)
            iid = json.loads(body)["instance_id"]
            pending += [
                json.dumps({"decision_id": req.request_id, "instance_id": iid, "kind": "first_token"}).encode(),
                json.dumps(
                    {"decision_id": req.request_id, "instance_id": iid, "kind": "finished", "ttft_s": 0.08,
                     "tpot_s": 0.02, "e2e_s": 2.6, "prompt_tokens": BLOCKS * 16, "completion_tokens": 128}
                ).encode(),
            ]  # fmt: skip
            if len(pending) >= 40:
                client.send(RawClient.frame("/v1/feedback", b'{"events":[' + b",".join(pending) + b"]}"))
                pending.clear()
        server_cpu_us = (_cpu_s(pid) - cpu0) / n * 1e6
        with httpx.Client(base_url=base) as hc:
            via_httpx = []
            for i in range(min(n, 1000)):
                req = prompts.request(n + warmup + i)
                body = req.model_dump_json().encode()
                t0 = time.perf_counter()
                r = hc.post("/v1/route", content=body, headers={"content-type": "application/json"})
                r.json()
                via_httpx.append(time.perf_counter() - t0)
                hc.post(
                    "/v1/feedback",
                    json={"events": [{"decision_id": req.request_id, "instance_id": r.json()["instance_id"],
                                      "kind": "finished", "e2e_s": 1.0}]},
                )  # fmt: skip
        metrics = httpx.get(f"{base}/metrics").text
        found = re.search(r'lodestar_router_fallback_decisions_total\{policy="lodestar"\} (\S+)', metrics)
        fallbacks = float(found.group(1)) if found else 0.0
        if fallbacks > 0.05 * (n + warmup):
            model = httpx.get(f"{base}/v1/model").text
            raise SystemExit(f"{fallbacks:.0f} decisions fell back to the heuristic; /v1/model: {model}")
        raw = _pcts(route_s)
        raw["server_cpu_per_request_us"] = server_cpu_us  # includes 1/20 of a feedback batch each
        return {"http_route_raw_socket": raw, "http_route_httpx": _pcts(via_httpx)}
    finally:
        router.stop()
        broker_process(infra, bport, name).stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--in-process-only", action="store_true")
    parser.add_argument(
        "--gap-ms", type=float, default=0.0, help="pause before each routed request (lets background work finish)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    state = train_model()
    results = in_process(args.requests, state)
    if not args.in_process_only:
        results.update(over_http(args.requests, state, args.gap_ms / 1000))
    print(f"{'measure':24} {'n':>6} {'p50 µs':>9} {'p90 µs':>9} {'p99 µs':>9} {'CPU p50 µs':>11}")
    for name, r in results.items():
        cpu = r.get("cpu_p50_us", r.get("server_cpu_per_request_us"))
        cpu_text = f"{cpu:>11.1f}" if cpu is not None else f"{'-':>11}"
        print(f"{name:24} {r['n']:>6.0f} {r['p50_us']:>9.1f} {r['p90_us']:>9.1f} {r['p99_us']:>9.1f} {cpu_text}")
    print("CPU: thread CPU time per call (in-process); router process CPU per routed request (http, mean)")
    if args.json is not None:
        meta = {"blocks": BLOCKS, "candidates": N_INSTANCES, "run": str(uuid.uuid4()), "cpus": os.cpu_count()}
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2))


if __name__ == "__main__":
    main()
