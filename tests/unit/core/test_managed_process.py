"""A managed process that fails to start is reported as it failed: exited (with its status) or
not ready in time, with what it logged in this start only (its log file is appended across
starts, so the tail used to quote earlier runs)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from lodestar.localinfra.process import ManagedProcess, ProcessStartError

pytestmark = pytest.mark.timeout(30)


def _process(tmp_path: Path, code: str) -> ManagedProcess:
    return ManagedProcess("svc", [sys.executable, "-c", code], tmp_path / "run", tmp_path / "log")


def test_an_exit_before_ready_names_the_status_and_quotes_this_start_only(tmp_path: Path) -> None:
    proc = _process(tmp_path, "import sys; print('port 8080 is already in use', flush=True); sys.exit(3)")
    proc.log_dir.mkdir(parents=True)
    proc.log_file.write_text("an earlier run's last words\n")
    with pytest.raises(ProcessStartError) as caught:
        proc.start(ready=lambda: False, timeout_s=20.0)
    message = str(caught.value)
    assert message.startswith("svc exited with status 3;"), message
    assert "port 8080 is already in use" in message and "earlier run" not in message
    assert "earlier run" in proc.log_file.read_text()  # the log itself keeps every run


def test_not_ready_in_time_says_so_and_stops_it(tmp_path: Path) -> None:
    proc = _process(tmp_path, "import time; print('waiting', flush=True); time.sleep(30)")
    with pytest.raises(ProcessStartError, match=r"^svc did not become ready in 0.5s; its log since this start:"):
        proc.start(ready=lambda: False, timeout_s=0.5)
    assert not proc.is_running()


def test_a_start_that_logged_nothing_says_so(tmp_path: Path) -> None:
    with pytest.raises(ProcessStartError, match=r"\(nothing logged\)"):
        _process(tmp_path, "raise SystemExit(0)").start(ready=lambda: False, timeout_s=20.0)


def test_the_run_log_of_a_process_that_died_after_starting_is_this_runs_only(tmp_path: Path) -> None:
    """What ``lodestar up`` quotes when a component dies while the system runs."""
    proc = _process(tmp_path, "import sys; print('broker unreachable', flush=True); sys.exit(1)")
    proc.log_dir.mkdir(parents=True)
    proc.log_file.write_text("an earlier run's last words\n")
    pid = proc.start()  # no readiness check: it started, then dies on its own
    _wait_exit(pid)
    assert proc.run_log_tail() == "broker unreachable\n"
    assert proc.log_tail().startswith("an earlier run's")  # the whole log still has both


def test_a_running_process_that_never_gets_ready_is_reported_with_its_runs_log(tmp_path: Path) -> None:
    proc = _process(tmp_path, "import time; print('stuck', flush=True); time.sleep(30)")
    proc.log_dir.mkdir(parents=True)
    proc.log_file.write_text("an earlier run's last words\n")
    proc.start()
    try:
        with pytest.raises(ProcessStartError) as caught:
            proc.start(ready=lambda: False, timeout_s=2.0)
        message = str(caught.value)
        assert "runs but is not ready; its log since it started:" in message
        assert "stuck" in message and "earlier run" not in message
    finally:
        proc.stop()


def test_without_a_recorded_start_the_run_log_is_the_whole_log(tmp_path: Path) -> None:
    proc = _process(tmp_path, "pass")
    proc.log_dir.mkdir(parents=True)
    proc.log_file.write_text("started elsewhere\n")
    assert proc.run_log_tail() == "started elsewhere\n"


def _wait_exit(pid: int) -> None:
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if finished:
            return
        time.sleep(0.02)
    raise AssertionError(f"pid {pid} still runs")


def test_a_pid_file_naming_a_reused_pid_is_not_ours(tmp_path: Path) -> None:
    """The pid file keeps the process's start time: after a crash or a reboot its pid may
    belong to another process, which must never be adopted or signalled (``lodestar up`` stops
    what a killed run left)."""
    proc = _process(tmp_path, "import time; time.sleep(30)")
    pid = proc.start()
    try:
        recorded, started = proc.pid_file.read_text().split()
        assert int(recorded) == pid and started.isdigit()
        assert proc.pid() == pid
        proc.pid_file.write_text(f"{os.getpid()} {started}")  # a live process that started at another time
        assert proc.pid() is None and not proc.is_running()
        assert proc.stop() is False  # nothing of ours to stop: this test process is not signalled
        proc.pid_file.write_text(str(os.getpid()))  # a file without a start time (older runs): trusted
        assert proc.pid() == os.getpid()
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
