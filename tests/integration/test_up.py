"""The whole ``lodestar up`` command as a user runs it (a process, on ports of its own): it
clears what a killed earlier run left, serves a chat completion, refuses a second ``up`` of
the same name, and stops everything, both on Ctrl-C (status 0) and when one of its
components dies (status 1, naming it and quoting its log)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from lodestar.localinfra.process import ManagedProcess
from lodestar.localinfra.settings import LocalInfraSettings
from lodestar.localinfra.stack_ports import StackPorts

pytestmark = pytest.mark.integration

COMPONENTS = ("broker", "emulator", "collector", "trainer", "gateway")  # --no-history, router embedded
READY_LINE = "Ctrl-C stops everything."


@dataclass
class UpRun:
    """One ``lodestar up`` process and the file its output goes to."""

    proc: subprocess.Popen[bytes]
    out: Path
    name: str
    ports: StackPorts
    local: LocalInfraSettings

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_for(self, text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.output():
            assert self.proc.poll() is None, f"lodestar up exited ({self.proc.returncode}):\n{self.output()}"
            assert time.monotonic() < deadline, f"no {text!r} after {timeout_s} s:\n{self.output()}"
            time.sleep(0.2)

    def pid_of(self, component: str) -> int | None:
        return self._process(component).pid()

    def _process(self, component: str) -> ManagedProcess:
        local = self.local
        return ManagedProcess(f"{self.name}-{component}", [], local.run_dir, local.log_dir)

    def live_components(self) -> list[str]:
        return [c for c in COMPONENTS if self.pid_of(c) is not None]


def _argv(name: str, ports: StackPorts) -> list[str]:
    return [
        sys.executable, "-m", "lodestar", "up",
        "--cluster", "mini-hetero2", "--no-history", "--name", name,
        "--broker-port", str(ports.broker), "--gateway-port", str(ports.gateway),
        "--router-port", str(ports.router), "--router-admin-port", str(ports.router_admin),
        "--collector-port", str(ports.collector), "--trainer-port", str(ports.trainer),
        "--history-port", str(ports.history), "--emulator-base-port", str(ports.emulator_base),
    ]  # fmt: skip


@pytest.fixture
def up_run(local_infra: LocalInfraSettings, tmp_path: Path) -> Iterator[UpRun]:
    """``lodestar up`` started with a component left running by a "killed" earlier run of its
    name (a ``sleep`` whose pid sits in the trainer's pid file); stopped at the end whatever
    the test did."""
    name = f"up-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    ports = StackPorts.free(2)
    leftover = subprocess.Popen(["sleep", "300"], start_new_session=True)
    local_infra.run_dir.mkdir(parents=True, exist_ok=True)
    (local_infra.run_dir / f"{name}-trainer.pid").write_text(str(leftover.pid))
    out = tmp_path / "up.out"
    env = {**os.environ, "LODESTAR_LOCAL_HOME": str(local_infra.home), "COLUMNS": "200"}
    with out.open("wb") as sink:
        proc = subprocess.Popen(_argv(name, ports), stdout=sink, stderr=subprocess.STDOUT, env=env)
    run = UpRun(proc, out, name, ports, local_infra)
    try:
        run.wait_for(READY_LINE, timeout_s=120)
        assert leftover.wait(timeout=10) is not None  # stopped by the new run
        yield run
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        for component in COMPONENTS:  # never leave a process behind, whatever failed
            run._process(component).stop(timeout_s=5)
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait()
        (local_infra.run_dir / f"{name}.lock").unlink(missing_ok=True)  # up keeps it (unlinking races)


def test_up_serves_then_stops_everything_on_ctrl_c(up_run: UpRun) -> None:
    text = up_run.output()
    assert "stopping what an earlier run left running: trainer (pid" in text
    for component in COMPONENTS:
        assert f"  {component:<10} ready" in text
    assert sorted(up_run.live_components()) == sorted(COMPONENTS)

    gateway = f"http://127.0.0.1:{up_run.ports.gateway}"
    response = httpx.post(
        f"{gateway}/v1/chat/completions",
        json={"model": "llama-3-8b", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 4},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["completion_tokens"] == 4

    twin = subprocess.run(_argv(up_run.name, StackPorts.free(2)), capture_output=True, text=True, timeout=60)
    assert twin.returncode == 2
    assert f"stack '{up_run.name}' is already running here (lodestar up, pid {up_run.proc.pid})" in twin.stderr
    assert sorted(up_run.live_components()) == sorted(COMPONENTS)  # the refused twin touched nothing

    up_run.proc.send_signal(signal.SIGINT)
    assert up_run.proc.wait(timeout=60) == 0, up_run.output()
    assert "stopping…" in up_run.output()
    assert up_run.live_components() == []


def test_up_stops_everything_and_fails_when_a_component_dies(up_run: UpRun) -> None:
    collector = up_run.pid_of("collector")
    assert collector is not None
    os.killpg(collector, signal.SIGKILL)
    assert up_run.proc.wait(timeout=60) == 1, up_run.output()
    text = up_run.output()
    assert "lodestar up: collector exited; its log since it started:" in text
    assert "stopping…" in text
    assert up_run.live_components() == []
