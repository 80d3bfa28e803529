"""One ``lodestar up`` per stack name: an advisory lock on a file in the run directory.

The components of a stack keep pid files named after it, and starting a component whose pid
file names a live process adopts that process. Without a lock, a second ``lodestar up`` of the
same name would adopt the first one's processes and stop them when it is stopped. The lock is
``flock``'s, so the kernel drops it when its holder exits, however it exits: a killed ``up``
leaves no stale lock behind (its components may outlive it; ``up`` stops those first). The
file stays after release: removing it would let a process still holding the old file's lock and
one locking a new file of the same name run side by side.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType


class StackLockedError(RuntimeError):
    """Another live process holds the stack's lock; ``holder`` is its pid when it wrote one."""

    def __init__(self, name: str, holder: int | None) -> None:
        who = f" (lodestar up, pid {holder})" if holder is not None else ""
        super().__init__(f"stack {name!r} is already running here{who}")
        self.holder = holder


class StackLock:
    """Hold with ``with StackLock(run_dir, name):``; raises :class:`StackLockedError` on entry
    when another process holds it. The file keeps the holder's pid, for that message."""

    def __init__(self, run_dir: Path, name: str) -> None:
        self.name = name
        self.path = run_dir / f"{name}.lock"
        self._fd: int | None = None

    def __enter__(self) -> StackLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise StackLockedError(self.name, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the last descriptor releases the lock
            self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (ValueError, UnicodeDecodeError):
        return None
