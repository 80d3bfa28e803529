"""The live instance list: static entries plus a YAML file re-read when it changes.

:meth:`InstancesSource.check` compares the file's (mtime_ns, size, inode) signature with the
last one seen and re-reads it on a change (an editor's atomic rename changes the inode). A
valid new list replaces the current tuple (one reference swap) and is handed to ``on_change``;
an invalid or vanished file is logged as an error and the previous list stays in force.
:meth:`run` polls in an asyncio task. Event-loop only.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import structlog

from lodestar_collector.config import InstanceConfig, InstancesConfigError, ensure_unique, load_instances_file

log = structlog.get_logger(__name__)

_Signature = tuple[int, int, int]


class InstancesSource:
    """Owns the current instance list. Build, :meth:`load` once (raises), then poll."""

    def __init__(
        self,
        path: Path | None,
        static: tuple[InstanceConfig, ...] = (),
        on_change: Callable[[tuple[InstanceConfig, ...]], None] | None = None,
    ) -> None:
        self.path = path
        self.static = static
        self.on_change = on_change
        self.current: tuple[InstanceConfig, ...] = static
        self.reloads = 0
        self.reload_errors = 0
        self._signature: _Signature | None = None

    def load(self) -> tuple[InstanceConfig, ...]:
        """First read; an unusable file raises :class:`InstancesConfigError` (fail fast at start)."""
        if self.path is not None:
            try:
                self._signature = self._stat()  # before reading: a change during the read is seen later
            except OSError as exc:
                raise InstancesConfigError(f"{self.path}: cannot read: {exc}") from None
            self.current = self._merge(load_instances_file(self.path))
        else:
            self.current = ensure_unique(self.static, "instances")
        return self.current

    def check(self) -> bool:
        """Re-read the file if it changed; True when a new valid list was installed."""
        if self.path is None:
            return False
        try:
            signature = self._stat()
        except OSError as exc:
            if self._signature is not None:
                self.reload_errors += 1
                log.error("instances_file_unreadable", path=str(self.path), error=str(exc), kept=len(self.current))
                self._signature = None
            return False
        if signature == self._signature:
            return False
        self._signature = signature
        try:
            instances = self._merge(load_instances_file(self.path))
        except InstancesConfigError as exc:
            self.reload_errors += 1
            log.error("instances_file_invalid", path=str(self.path), error=str(exc), kept=len(self.current))
            return False
        if instances == self.current:
            return False
        self.current = instances
        self.reloads += 1
        log.info("instances_reloaded", path=str(self.path), instances=[i.instance_id for i in instances])
        if self.on_change is not None:
            self.on_change(instances)
        return True

    async def run(self, poll_s: float) -> None:
        """Poll every ``poll_s`` until cancelled."""
        while True:
            await asyncio.sleep(poll_s)
            self.check()

    def _stat(self) -> _Signature:
        assert self.path is not None
        st = os.stat(self.path)
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _merge(self, from_file: tuple[InstanceConfig, ...]) -> tuple[InstanceConfig, ...]:
        merged: tuple[InstanceConfig, ...] = ensure_unique((*self.static, *from_file), f"{self.path} + static")
        return merged
