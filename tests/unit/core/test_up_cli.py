"""``lodestar up``'s checks before it starts anything: every port settable and distinct, a
port in use named with the option that sets it, one ``up`` per stack name (a file lock), and
its ports' bookkeeping. The whole command, started and stopped, is in
tests/integration/test_up.py."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lodestar.cli.app import build_app
from lodestar.cluster.spec import load_cluster
from lodestar.localinfra.ports import free_port_block
from lodestar.localinfra.process import ManagedProcess
from lodestar.localinfra.settings import LocalInfraSettings
from lodestar.localinfra.stack import Component, Stack, StackConfig
from lodestar.localinfra.stack_lock import StackLock, StackLockedError
from lodestar.localinfra.stack_ports import StackPorts

runner = CliRunner()
N_MINI = 2  # instances of the mini-hetero2 preset


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state directory of the test's own: nothing here touches the repository's .lodestar/."""
    monkeypatch.setenv("LODESTAR_LOCAL_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _port_args(ports: StackPorts) -> list[str]:
    return [
        *("--broker-port", str(ports.broker), "--gateway-port", str(ports.gateway)),
        *("--router-port", str(ports.router), "--router-admin-port", str(ports.router_admin)),
        *("--collector-port", str(ports.collector), "--trainer-port", str(ports.trainer)),
        *("--history-port", str(ports.history), "--emulator-base-port", str(ports.emulator_base)),
    ]


def _up(*args: str) -> tuple[int, str]:
    result = runner.invoke(build_app(), ["up", "--cluster", "mini-hetero2", *args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_roles_list_every_port_and_the_instances_consecutive_ones() -> None:
    ports = StackPorts()
    roles = dict(ports.roles(0))
    assert roles == {
        "broker": 9092,
        "gateway": 8080,
        "router": 8091,
        "router_admin": 8095,
        "collector": 8092,
        "trainer": 8094,
        "history": 8090,
    }
    with_fleet = ports.roles(3, history=False)
    assert ("history", 8090) not in with_fleet
    assert [port for role, port in with_fleet if role == "emulator"] == [8001, 8002, 8003]


def test_clashes_name_both_roles_and_the_port() -> None:
    assert StackPorts().clashes(8) == []
    assert StackPorts(gateway=8003).clashes(8) == [("gateway", "emulator", 8003)]
    assert StackPorts(trainer=8090).clashes(8) == [("trainer", "history", 8090)]
    assert StackPorts(trainer=8090).clashes(8, history=False) == []  # no history service, no clash


def test_two_options_on_one_port_are_refused_naming_both(home: Path) -> None:
    code, out = _up("--gateway-port", "8002")
    assert code == 2
    assert "--gateway-port and --emulator-base-port (the emulated instances take 8001–8002) both take port 8002" in out
    code, out = _up("--trainer-port", "8095")
    assert code == 2
    assert "--router-admin-port and --trainer-port both take port 8095" in out
    assert not (home / "run").exists()  # refused before anything started


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--collector-port", "0"], "--collector-port"),
        (["--history-port", "70000"], "--history-port"),
        (["--emulator-base-port", "65535"], "--emulator-base-port 65535"),
        (["--name", "../x"], "--name '../x'"),
    ],
)
def test_out_of_range_ports_and_a_bad_name_are_refused(home: Path, args: list[str], names: str) -> None:
    code, out = _up(*args)
    assert code == 2
    assert names in out


def test_a_port_in_use_is_named_with_its_option_before_anything_starts(home: Path) -> None:
    base = free_port_block(7 + N_MINI)
    ports = StackPorts(*range(base, base + 7), emulator_base=base + 7)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports.trainer))
        squatter.listen()
        code, out = _up(*_port_args(ports), "--name", "busy")
    assert code == 1
    assert f"the trainer port {ports.trainer} on 127.0.0.1 is already in use; choose another with --trainer-port" in out
    assert not list((home / "run").glob("busy-*.pid"))  # no component was started


def test_a_second_up_of_the_same_name_is_refused_naming_the_first(home: Path) -> None:
    with StackLock(home / "run", "twin"):
        code, out = _up("--name", "twin")
    assert code == 2
    assert f"stack 'twin' is already running here (lodestar up, pid {os.getpid()})" in out
    assert "another --name" in out


def test_the_lock_is_released_on_exit_and_when_its_holder_is_killed(tmp_path: Path) -> None:
    with StackLock(tmp_path, "a"):
        with pytest.raises(StackLockedError):
            StackLock(tmp_path, "a").__enter__()
        with StackLock(tmp_path, "b"):  # another name is another lock
            pass
    with StackLock(tmp_path, "a"):  # released by the with block
        pass
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                import sys, time
                from pathlib import Path
                from lodestar.localinfra.stack_lock import StackLock
                with StackLock(Path({str(tmp_path)!r}), "a"):
                    print("held", flush=True)
                    time.sleep(60)
            """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StackLockedError) as caught:
            StackLock(tmp_path, "a").__enter__()
        assert caught.value.holder == holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    deadline = time.monotonic() + 5
    while True:  # the kernel drops a dead holder's lock: no stale lock to clean up
        try:
            with StackLock(tmp_path, "a"):
                break
        except StackLockedError:
            assert time.monotonic() < deadline, "the lock outlived its killed holder"
            time.sleep(0.05)


def test_ctrl_c_while_starting_stops_what_started_and_the_one_starting(tmp_path: Path) -> None:
    """A KeyboardInterrupt in a readiness wait (Ctrl-C during ``lodestar up``'s start) stops
    the components already up and the one being started, then propagates; components in
    their own sessions would otherwise outlive ``up``."""
    local = LocalInfraSettings(home=tmp_path)
    local.tansu_path.parent.mkdir(parents=True)
    local.tansu_path.touch()  # install_tansu finds a binary and downloads nothing; no broker runs here
    stack = Stack(StackConfig(cluster=load_cluster("mini-hetero2"), name="interrupted", history=False), local)

    pids: list[int] = []

    def interrupt() -> bool:
        pids.extend(pid for p in (first, second) if (pid := p.pid()) is not None)
        raise KeyboardInterrupt

    def sleeper(name: str) -> ManagedProcess:
        return ManagedProcess(f"interrupted-{name}", ["sleep", "60"], local.run_dir, local.log_dir)

    first, second, third = sleeper("first"), sleeper("second"), sleeper("third")
    stack.components = [
        Component("first", first, lambda: True),
        Component("second", second, interrupt),
        Component("third", third, lambda: True),
    ]
    with pytest.raises(KeyboardInterrupt):
        stack.start()
    assert len(pids) == 2
    assert [pid for pid in pids if _running(pid)] == []
    assert stack.running() == []
    assert not third.log_file.exists()  # never started


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (a killed child not yet reaped is one)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
