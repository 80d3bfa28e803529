"""Install a peer router into its own venv: ``<home>/peers/<name>/`` (idempotent).

The venv is created without pip; the project's own pip installs into it (``pip --python``)
with ``--no-deps`` and every requirement pinned (:data:`lodestar.peers.catalog.LAUNCHER_DEPS`).
A stamp file written last records what was installed: a venv whose stamp matches is reused,
anything else (no stamp, other pins, half-finished install) is wiped and rebuilt. A file lock
serialises concurrent installs of the same peer (the CLI and a test session, say).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from lodestar.localinfra.settings import LocalInfraSettings
from lodestar.peers.catalog import PeerSpec

STAMP = "lodestar-peer.json"


class PeerInstallError(RuntimeError):
    """The venv could not be created or pip failed; the message quotes pip's output."""


@dataclass(frozen=True)
class PeerInstall:
    """Where a peer lives on disk."""

    spec: PeerSpec
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def script(self) -> Path:
        return self.root / "bin" / self.spec.script

    @property
    def stamp(self) -> Path:
        return self.root / STAMP

    def expected_stamp(self) -> dict[str, object]:
        return {"peer": self.spec.name, "requirements": list(self.spec.requirements)}

    def is_installed(self) -> bool:
        """True when the stamp names exactly this spec's pins and the launcher exists."""
        try:
            recorded = json.loads(self.stamp.read_text())
        except (OSError, ValueError):
            return False
        return recorded == self.expected_stamp() and self.script.exists() and self.python.exists()


def peer_install(spec: PeerSpec, settings: LocalInfraSettings) -> PeerInstall:
    return PeerInstall(spec, (settings.home / "peers" / spec.name).resolve())


def install_peer(spec: PeerSpec, settings: LocalInfraSettings, timeout_s: float = 600.0) -> PeerInstall:
    """Make sure ``spec`` is installed (no-op when it is); returns its location."""
    target = peer_install(spec, settings)
    if target.is_installed():
        return target
    target.root.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target.root.parent / f".{spec.name}.lock"):
        if target.is_installed():  # another process finished it while we waited
            return target
        shutil.rmtree(target.root, ignore_errors=True)
        _run([sys.executable, "-m", "venv", "--without-pip", str(target.root)], "create the venv", timeout_s)
        pip = [sys.executable, "-m", "pip", "--python", str(target.python), "--disable-pip-version-check"]
        _run([*pip, "install", "-q", "--no-deps", *spec.requirements], f"install {spec.requirement}", timeout_s)
        _check(pip, spec, timeout_s)
        _run([str(target.python), "-c", f"import {spec.import_check}"], f"import {spec.import_check}", timeout_s)
        target.stamp.write_text(json.dumps(target.expected_stamp(), indent=1) + "\n")
    return target


def _run(argv: list[str], what: str, timeout_s: float, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the peer venv must not see the project's packages
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        raise PeerInstallError(f"could not {what}: timed out after {timeout_s:g}s") from None
    if check and result.returncode != 0:
        out = (result.stdout + result.stderr).strip()[-3000:]
        raise PeerInstallError(f"could not {what} (exit {result.returncode}):\n{out}")
    return result


def _check(pip: list[str], spec: PeerSpec, timeout_s: float) -> None:
    """``pip check``, tolerating only the declared-but-never-imported requirements."""
    result = _run([*pip, "check"], f"check {spec.requirement}", timeout_s, check=False)
    tolerated = {f"{spec.package} {spec.version} requires {dep}, which is not installed." for dep in spec.unused_deps}
    problems = [line for line in result.stdout.splitlines() if line.strip() and line.strip() not in tolerated]
    if result.returncode != 0 and (problems or result.stderr.strip()):
        raise PeerInstallError(f"pip check of {spec.requirement} failed:\n" + "\n".join(problems) + result.stderr)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
