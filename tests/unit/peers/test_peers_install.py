"""Whether a peer counts as installed (the stamp and the launcher), and that an installed peer
is not reinstalled. The real pip install runs in the parity integration test."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lodestar.localinfra.settings import LocalInfraSettings
from lodestar.peers.catalog import SGLANG, VLLM
from lodestar.peers.install import install_peer, peer_install


def _lay_out(settings: LocalInfraSettings, stamp: dict[str, Any] | None, script: bool = True) -> None:
    target = peer_install(SGLANG, settings)
    (target.root / "bin").mkdir(parents=True)
    target.python.write_text("")
    if script:
        target.script.write_text("#!/bin/sh\n")
    if stamp is not None:
        target.stamp.write_text(json.dumps(stamp))


@pytest.mark.parametrize(
    ("case", "stamp", "script", "installed"),
    [
        ("stamp-matches", {"peer": "sglang", "requirements": list(SGLANG.requirements)}, True, True),
        ("no-stamp", None, True, False),
        ("other-pins", {"peer": "sglang", "requirements": ["sglang-router==0.3.1"]}, True, False),
        ("other-peer", {"peer": "vllm", "requirements": list(SGLANG.requirements)}, True, False),
        ("no-launcher", {"peer": "sglang", "requirements": list(SGLANG.requirements)}, False, False),
    ],
)
def test_is_installed(tmp_path: Path, case: str, stamp: dict[str, Any] | None, script: bool, installed: bool) -> None:
    settings = LocalInfraSettings(home=tmp_path)
    _lay_out(settings, stamp, script)
    assert peer_install(SGLANG, settings).is_installed() is installed


def test_a_garbled_stamp_is_not_installed(tmp_path: Path) -> None:
    settings = LocalInfraSettings(home=tmp_path)
    _lay_out(settings, None)
    peer_install(SGLANG, settings).stamp.write_text("{not json")
    assert not peer_install(SGLANG, settings).is_installed()


def test_an_installed_peer_is_not_reinstalled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = LocalInfraSettings(home=tmp_path)
    _lay_out(settings, peer_install(SGLANG, settings).expected_stamp())

    def no_subprocess(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"ran {args}")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    assert install_peer(SGLANG, settings).root == (tmp_path / "peers" / "sglang").resolve()


def test_each_peer_has_its_own_venv(tmp_path: Path) -> None:
    settings = LocalInfraSettings(home=tmp_path)
    a, b = peer_install(SGLANG, settings), peer_install(VLLM, settings)
    assert a.root != b.root and a.script.name == "sglang-router" and b.script.name == "vllm-router"
