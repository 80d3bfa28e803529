"""A background process tracked by a pid file: idempotent start, health wait, stop.

Used for every locally started component (broker, emulated fleet, services). A start whose
pid file names a live process with the same command line is a no-op.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class ProcessStartError(RuntimeError):
    """A managed process exited or never became healthy; the message quotes its log tail."""


@dataclass(frozen=True)
class ManagedProcess:
    """One named background process with its pid file and log under a run directory."""

    name: str
    argv: Sequence[str]
    run_dir: Path
    log_dir: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    @property
    def log_start_file(self) -> Path:
        """Where the log's size at the latest start is kept (the log is appended across runs)."""
        return self.run_dir / f"{self.name}.logstart"

    def pid(self) -> int | None:
        """The pid of the live process recorded in the pid file, else None. The file also
        keeps the process's start time: a pid the kernel has since given to another process
        (the file outlived a crash or a reboot) is not ours, and is never signalled."""
        try:
            pid_text, _, started = self.pid_file.read_text().strip().partition(" ")
            pid = int(pid_text)
        except (FileNotFoundError, ValueError):
            return None
        if not _alive(pid):
            return None
        if started and _start_time(pid) != started:
            return None
        return pid

    def is_running(self) -> bool:
        return self.pid() is not None

    def start(
        self,
        ready: Callable[[], bool] | None = None,
        timeout_s: float = 30.0,
    ) -> int:
        """Start the process unless it already runs; wait until ``ready()`` is true.

        Returns the pid. Raises ProcessStartError with the log tail if the process exits or
        ``ready`` stays false for ``timeout_s``.
        """
        existing = self.pid()
        if existing is not None:
            if ready is None or _wait(ready, timeout_s, lambda: _alive(existing)):
                return existing
            raise ProcessStartError(
                f"{self.name} (pid {existing}) runs but is not ready; its log since it started:\n{self.run_log_tail()}"
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_start_file.write_text(str(self.log_file.stat().st_size if self.log_file.exists() else 0))
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                list(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{proc.pid} {_start_time(proc.pid) or ''}".strip())
        if ready is not None and not _wait(ready, timeout_s, lambda: proc.poll() is None):
            code = proc.poll()
            self.stop()
            what = f"did not become ready in {timeout_s}s" if code is None else f"exited with status {code}"
            raise ProcessStartError(f"{self.name} {what}; its log since this start:\n{self.run_log_tail()}")
        return proc.pid

    def stop(self, timeout_s: float = 10.0, sig: int = signal.SIGTERM) -> bool:
        """Stop the process group (SIGTERM, then SIGKILL after ``timeout_s``). True if one ran."""
        pid = self.pid()
        self.pid_file.unlink(missing_ok=True)
        if pid is None:
            return False
        _signal_group(pid, sig)
        if not _wait(lambda: not _alive(pid), timeout_s, lambda: True):
            _signal_group(pid, signal.SIGKILL)
            _wait(lambda: not _alive(pid), 5.0, lambda: True)
        return True

    def kill(self) -> bool:
        """SIGKILL the process group at once (fault injection)."""
        return self.stop(timeout_s=0.0, sig=signal.SIGKILL)

    def log_tail(self, n_bytes: int = 4000, since: int = 0) -> str:
        """The last ``n_bytes`` of the log written after byte ``since``."""
        try:
            data = self.log_file.read_bytes()[since:]
        except FileNotFoundError:
            return "(no log)"
        return data[-n_bytes:].decode("utf-8", errors="replace") or "(nothing logged)"

    def run_log_tail(self, n_bytes: int = 4000) -> str:
        """The last ``n_bytes`` logged since the latest :meth:`start` (by this or another
        process), so an earlier run's lines are never quoted as this one's."""
        try:
            since = int(self.log_start_file.read_text())
        except (FileNotFoundError, ValueError):
            since = 0
        return self.log_tail(n_bytes, since=since)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, sig)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return _not_zombie(pid)
    return done == 0


def _stat_after_name(pid: int) -> list[str] | None:
    """``/proc/PID/stat``'s fields after the command name (from the 3rd, the state); None when
    there is no such process (or it cannot be read). The name is cut at its last ``)``: it may
    hold spaces and ``)``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()


def _start_time(pid: int) -> str | None:
    """When ``pid`` started, in clock ticks after boot (the 22nd field); None when there is no
    such process."""
    fields = _stat_after_name(pid)
    return fields[19] if fields is not None else None


def _not_zombie(pid: int) -> bool:
    fields = _stat_after_name(pid)
    return fields is not None and fields[0] != "Z"


def _wait(cond: Callable[[], bool], timeout_s: float, keep_going: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if cond():
                return True
        except OSError:
            pass
        if not keep_going() or time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
