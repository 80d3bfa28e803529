"""A managed process that fails to start is reported as it failed: exited (with its status) or
not ready in time, with what it logged in this start only (its log file is appended across
starts, so the tail used to quote earlier runs)."""

from __future__ import annotations

import sys
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
