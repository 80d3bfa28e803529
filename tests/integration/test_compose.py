"""docker-compose.yml without Docker: validated statically, and every Lodestar service's command
started as a plain local process with that service's environment.

No Docker engine exists on the development machines or in CI, so:

1. ``infra/grafana/check-compose.sh`` runs Debian's ``docker-compose config`` (1.29; apt-installed
   when missing), which validates the file against the compose-spec schema and resolves
   ``.env``; this test's own loader must resolve every Lodestar service to the same command,
   environment and healthcheck, and the file must follow the house rules (official images,
   healthchecks everywhere, ``depends_on`` on ``service_healthy``, data volumes, CPU torch).
2. Each service built from the project image (fleet, collector, router, gateway, trainer,
   history) runs its compose ``command`` with its compose ``environment`` as a local process,
   with these substitutions only: compose hostnames → 127.0.0.1 and each container port → a
   free local port (the emulated fleet keeps 8 consecutive ones); ``kafka:9092`` → the test
   session's tansu broker (plus a topic prefix of its own and the short consumer-group
   timeouts every broker test uses, since tansu forms groups slowly); the ClickHouse DSN → a chDB
   directory; ``0.0.0.0`` → ``127.0.0.1``; ``lodestar``/``python`` → this venv's. Each must
   pass its own compose healthcheck command (run locally, same substitutions), and every
   Prometheus scrape target must answer ``/metrics`` with the metrics the dashboards' PromQL
   reads. Kafka, ClickHouse, Grafana and Prometheus themselves are not started (their official
   images cannot run here).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from lodestar.grafana.dashboards import DASHBOARDS
from lodestar.localinfra.ports import free_port_block

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
ENV_FILE = REPO / ".env"
CHECK_SCRIPT = REPO / "infra" / "grafana" / "check-compose.sh"
PROMETHEUS_CONFIG = REPO / "infra" / "grafana" / "prometheus" / "prometheus.yml"
LODESTAR = Path(sys.executable).with_name("lodestar")
HEALTH_DEADLINE_S = 150.0  # a bound for a loaded machine; typically all are healthy in ~40 s

_INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


# --- a small compose loader: YAML (anchors, merge keys) + .env interpolation -----------------


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def interpolate(text: str, env: Mapping[str, str]) -> str:
    def replace(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3) or ""
        value = env.get(name)
        if op in (":-", "-"):
            return arg if value is None or (op == ":-" and value == "") else value
        if op in (":?", "?"):
            if value is None or (op == ":?" and value == ""):
                raise AssertionError(f"required variable {name}: {arg}")
            return value
        return value or ""

    return _INTERPOLATION.sub(replace, text)


def resolve(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [resolve(x, env) for x in node]
    if isinstance(node, dict):
        return {k: resolve(v, env) for k, v in node.items()}
    return node


def load_compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    resolved: dict[str, Any] = resolve(document, read_env_file(ENV_FILE))
    return resolved


def project_services(compose: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose["services"].items() if "build" in svc}


def env_of(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def exposed_ports(service: Mapping[str, Any]) -> list[int]:
    ports: list[int] = []
    for item in service.get("expose") or []:
        low, _, high = str(item).partition("-")
        ports.extend(range(int(low), int(high or low) + 1))
    return ports


# --- static checks -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose_config() -> dict[str, Any]:
    """``docker-compose config`` of the file (Debian's docker-compose, installed if missing)."""
    out = subprocess.run(["bash", str(CHECK_SCRIPT)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"docker-compose config failed:\n{out.stderr[-4000:]}"
    config: dict[str, Any] = yaml.safe_load(out.stdout)
    return config


def test_docker_compose_config_accepts_the_file_and_agrees_with_this_loader(compose_config: dict[str, Any]) -> None:
    ours = load_compose()
    assert set(compose_config["services"]) == set(ours["services"])
    for name, svc in project_services(ours).items():
        theirs = compose_config["services"][name]
        assert theirs["command"] == svc["command"], name
        assert {k: str(v) for k, v in theirs["environment"].items()} == env_of(svc), name
        assert theirs["healthcheck"]["test"] == svc["healthcheck"]["test"], name


def test_compose_follows_the_house_rules() -> None:
    compose = load_compose()
    services = compose["services"]
    images = {name: svc["image"] for name, svc in services.items()}
    assert images["kafka"].startswith("apache/kafka:")
    assert images["clickhouse"].startswith("clickhouse/clickhouse-server:")
    assert images["grafana"].startswith("grafana/grafana:")
    assert images["prometheus"].startswith("prom/prometheus:")
    assert set(project_services(compose)) == {"fleet", "collector", "router", "gateway", "trainer", "history"}
    for name, svc in services.items():
        assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert cond == {"condition": "service_healthy"}, f"{name} → {dep}"
            assert services[dep].get("healthcheck"), f"{name} waits for {dep}, which has no healthcheck"
    for name in ("kafka", "clickhouse", "grafana", "prometheus"):
        assert any(":/" in v and not v.startswith(".") for v in services[name]["volumes"]), f"{name} keeps no data"
    assert set(compose["volumes"]) >= {"kafka-data", "clickhouse-data", "grafana-data", "prometheus-data"}
    for name, svc in services.items():
        for volume in svc.get("volumes") or []:
            if volume.startswith("./"):
                assert (REPO / volume.split(":")[0]).exists(), f"{name} mounts a missing {volume}"
    assert "grafana-clickhouse-datasource" in env_of(services["grafana"])["GF_INSTALL_PLUGINS"]
    assert re.fullmatch(
        r"http://[^@/]+@clickhouse:8123/\w+", env_of(services["history"])["LODESTAR_HISTORY_CLICKHOUSE_DSN"]
    )
    assert "fleet:8001" in env_of(services["collector"])["LODESTAR_COLLECTOR_INSTANCES"]
    assert services["fleet"]["command"][:4] == ["lodestar", "emulate", "--cluster", "hetero-mix8"]
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in dockerfile
    assert "cu1" not in dockerfile.lower()


def test_prometheus_targets_are_compose_services_and_ports() -> None:
    compose = load_compose()
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = [t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    services = project_services(compose)
    for target in targets:
        host, _, port = target.partition(":")
        assert host in services and int(port) in exposed_ports(services[host]), target
    assert {t.partition(":")[0] for t in targets} == set(services)


# --- every service as a plain process ------------------------------------------------------


@dataclass
class LocalStack:
    """How compose names map to this machine for one test run."""

    broker: str
    chdb_dir: Path
    topic_prefix: str
    ports: dict[tuple[str, int], int] = field(default_factory=dict)

    def rewrite(self, own: str, text: str) -> str:
        text = text.replace("kafka:9092", self.broker).replace("0.0.0.0", "127.0.0.1")
        for (service, port), local in self.ports.items():
            text = re.sub(rf"\b{re.escape(service)}:{port}\b", f"127.0.0.1:{local}", text)
            if service == own:
                text = re.sub(rf"127\.0\.0\.1:{port}\b", f"127.0.0.1:{local}", text)
        return text

    def own_port(self, own: str, text: str) -> str:
        for (service, port), local in self.ports.items():
            if service == own and text == str(port):
                return str(local)
        return text

    def command(self, own: str, argv: list[str]) -> list[str]:
        out = [self.own_port(own, self.rewrite(own, a)) for a in argv]
        return [str(LODESTAR) if out[0] == "lodestar" else sys.executable if out[0] == "python" else out[0], *out[1:]]

    def environment(self, own: str, env: Mapping[str, str]) -> dict[str, str]:
        local = {k: self.own_port(own, self.rewrite(own, v)) for k, v in env.items()}
        if "LODESTAR_HISTORY_CLICKHOUSE_DSN" in local:
            local["LODESTAR_HISTORY_CLICKHOUSE_DSN"] = f"chdb://{self.chdb_dir}"
        if "LODESTAR_KAFKA_BOOTSTRAP_SERVERS" in local:
            local["LODESTAR_KAFKA_TOPIC_PREFIX"] = self.topic_prefix
            # tansu takes about half the rebalance timeout to form a group (docs/INFRA.md):
            # the short group timeouts every broker test uses
            local.update(
                LODESTAR_KAFKA_SESSION_TIMEOUT_MS="2000",
                LODESTAR_KAFKA_REBALANCE_TIMEOUT_MS="2000",
                LODESTAR_KAFKA_HEARTBEAT_INTERVAL_MS="500",
            )
        base = {k: v for k, v in os.environ.items() if not k.startswith("LODESTAR_")}
        return {**base, **local}

    def healthcheck(self, own: str, test: list[str]) -> list[str]:
        assert test[0] == "CMD", f"{own}: a project healthcheck is an exec form (CMD …)"
        return self.command(own, test[1:])


def _unmapped(text: str, hosts: set[str]) -> list[str]:
    return [m.group(0) for m in re.finditer(r"\b([a-z][a-z0-9-]*):(\d{2,5})\b", text) if m.group(1) in hosts]


@dataclass
class Running:
    name: str
    process: subprocess.Popen[bytes]
    health: list[str]
    log: Path


@pytest.fixture
def stack(broker: str, tmp_path: Path) -> Iterator[tuple[LocalStack, dict[str, Running]]]:
    compose = load_compose()
    services = project_services(compose)
    local = LocalStack(broker=broker, chdb_dir=tmp_path / "history", topic_prefix=f"compose{uuid.uuid4().hex[:8]}.")
    for name, svc in services.items():
        ports = exposed_ports(svc)
        base = free_port_block(len(ports))
        local.ports.update({(name, p): base + i for i, p in enumerate(ports)})
    hosts = set(compose["services"])
    running: dict[str, Running] = {}
    try:
        for name, svc in services.items():
            argv = local.command(name, svc["command"])
            env = local.environment(name, env_of(svc))
            health = local.healthcheck(name, svc["healthcheck"]["test"])
            leftovers = _unmapped(" ".join(argv + health + [env[k] for k in env_of(svc)]), hosts)
            assert not leftovers, f"{name}: compose addresses left unmapped: {leftovers}"
            log = tmp_path / f"{name}.log"
            with log.open("wb") as sink:
                process = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT)
            running[name] = Running(name, process, health, log)
        yield local, running
    finally:
        for r in running.values():
            if r.process.poll() is None:
                r.process.send_signal(signal.SIGTERM)
        for r in running.values():
            try:
                r.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                r.process.kill()
                r.process.wait(timeout=5)


def _healthy(health: list[str]) -> bool:
    try:
        return subprocess.run(health, capture_output=True, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _promql_metrics() -> set[str]:
    names = set()
    for dashboard in DASHBOARDS:
        for panel in dashboard.panels:
            for target in panel.promql:
                names |= set(re.findall(r"\b(lodestar_[a-z0-9_]+)", target.expr))
    return names


def _exposed_metric_names(text: str) -> set[str]:
    """Sample names, and the families a ``# TYPE`` line declares (a labelled counter that was
    never incremented has no sample yet; counters are read as ``<family>_total``)."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(maxsplit=3)
            names.add(f"{family}_total" if kind == "counter" and not family.endswith("_total") else family)
        elif line and not line.startswith("#"):
            names.add(line.split("{")[0].split(" ")[0])
    return names


@pytest.mark.timeout(300)
def test_every_service_command_starts_as_a_plain_process_and_becomes_healthy(
    stack: tuple[LocalStack, dict[str, Running]],
) -> None:
    local, running = stack
    pending = dict(running)
    deadline = time.monotonic() + HEALTH_DEADLINE_S
    while pending and time.monotonic() < deadline:
        for name, r in list(pending.items()):
            exited = r.process.poll()
            assert exited is None, f"{name} exited with {exited}:\n{r.log.read_text(errors='replace')[-3000:]}"
            if _healthy(r.health):
                del pending[name]
        time.sleep(1.0)
    logs = {n: r.log.read_text(errors="replace")[-2000:] for n, r in pending.items()}
    assert not pending, f"not healthy after {HEALTH_DEADLINE_S:.0f} s: {sorted(pending)}\n{json.dumps(logs, indent=1)}"

    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    exposed: set[str] = set()
    for job in config["scrape_configs"]:
        for target in (t for sc in job["static_configs"] for t in sc["targets"]):
            url = local.rewrite("", f"http://{target}/metrics")
            answer = httpx.get(url, timeout=10)
            assert answer.status_code == 200, f"{job['job_name']} {target} → {url}: {answer.status_code}"
            exposed |= _exposed_metric_names(answer.text)
    missing = _promql_metrics() - exposed
    assert not missing, f"the dashboards' PromQL reads metrics no service exposes: {sorted(missing)}"


def test_loader_interpolation_rules() -> None:
    env = {"A": "1", "E": ""}
    assert interpolate("${A} ${B:-x} ${E:-y} ${E-z} $$ $A", env) == "1 x y  $ 1"
    with pytest.raises(AssertionError, match="required variable B: set B"):
        interpolate("${B:?set B}", env)
    assert shutil.which("bash"), "the compose check script needs bash"
