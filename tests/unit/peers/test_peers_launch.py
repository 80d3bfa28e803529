"""Peer router command lines and launch validation, per wheel (no process is started)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from lodestar.localinfra.settings import LocalInfraSettings
from lodestar.peers.catalog import PEERS, SGLANG, VLLM, peer_spec
from lodestar.peers.install import peer_install
from lodestar.peers.launch import PeerLaunch, PeerStartError, start_peer
from lodestar.policy.profile_spec import load_profile

W2 = ("http://127.0.0.1:8001", "http://127.0.0.1:8002")


@pytest.mark.parametrize(
    ("case", "peer", "kwargs", "expected"),
    [
        (
            "sglang-defaults",
            "sglang",
            {},
            "bin/sglang-router launch --host 127.0.0.1 --port 30000 --worker-urls http://127.0.0.1:8001 "
            "http://127.0.0.1:8002 --policy cache_aware --prometheus-host 127.0.0.1 --prometheus-port 29001 "
            "--log-level info",
        ),
        (
            "vllm-defaults",
            "vllm",
            {},
            "bin/vllm-router --host 127.0.0.1 --port 30000 --worker-urls http://127.0.0.1:8001 "
            "http://127.0.0.1:8002 --policy cache_aware --prometheus-host 127.0.0.1 --prometheus-port 29001 "
            "--log-level info",
        ),
        (
            "sglang-thresholds-and-extra",
            "sglang",
            {
                "cache_threshold": 0.5,
                "balance_abs_threshold": 2,
                "balance_rel_threshold": 1.25,
                "log_level": "warning",
                "extra_args": ("--disable-retries",),
            },
            "bin/sglang-router launch --host 127.0.0.1 --port 30000 --worker-urls http://127.0.0.1:8001 "
            "http://127.0.0.1:8002 --policy cache_aware --prometheus-host 127.0.0.1 --prometheus-port 29001 "
            "--log-level warn --cache-threshold 0.5 --balance-abs-threshold 2 --balance-rel-threshold 1.25 "
            "--disable-retries",
        ),
        (
            "vllm-round-robin-warning",
            "vllm",
            {"policy": "round_robin", "log_level": "warning"},
            "bin/vllm-router --host 127.0.0.1 --port 30000 --worker-urls http://127.0.0.1:8001 "
            "http://127.0.0.1:8002 --policy round_robin --prometheus-host 127.0.0.1 --prometheus-port 29001 "
            "--log-level warning",
        ),
    ],
)
def test_argv(case: str, peer: str, kwargs: dict[str, Any], expected: str) -> None:
    params: dict[str, Any] = {"policy": "cache_aware", **kwargs}
    launch = PeerLaunch(spec=peer_spec(peer), workers=W2, port=30000, **params)
    assert " ".join(launch.argv(Path("bin") / launch.spec.script, 29001)) == expected
    assert launch.url == "http://127.0.0.1:30000"
    assert launch.process_name == f"peer-{peer}-30000"


@pytest.mark.parametrize(
    ("case", "peer", "kwargs", "fragment"),
    [
        ("unknown-policy", "sglang", {"policy": "kv_aware"}, "has no policy 'kv_aware'"),
        ("no-workers", "vllm", {"workers": ()}, "at least one worker"),
        ("not-a-url", "vllm", {"workers": ("localhost:8001",)}, "is not http(s)://host:port"),
        ("no-port", "sglang", {"workers": ("http://127.0.0.1",)}, "is not http(s)://host:port"),
        ("repeated", "sglang", {"workers": (W2[0], W2[0])}, "repeat"),
        ("port-range", "sglang", {"port": 70000}, "out of range"),
        ("log-level", "sglang", {"log_level": "verbose"}, "log level 'verbose'"),
        ("threshold-other-policy", "vllm", {"policy": "round_robin", "cache_threshold": 0.5}, "only to"),
        ("threshold-range", "sglang", {"cache_threshold": 1.5}, "not in [0, 1]"),
        ("abs-negative", "sglang", {"balance_abs_threshold": -1}, ">= 0"),
        ("power-of-two-one-worker", "sglang", {"policy": "power_of_two", "workers": W2[:1]}, "fewer than 2 workers"),
    ],
)
def test_bad_launch(case: str, peer: str, kwargs: dict[str, Any], fragment: str) -> None:
    params: dict[str, Any] = {"policy": "cache_aware", "workers": W2, "port": 30000, **kwargs}
    with pytest.raises(ValueError, match=re.escape(fragment)):
        PeerLaunch(spec=peer_spec(peer), **params)


def test_specs_pin_every_requirement() -> None:
    for spec in PEERS.values():
        assert all("==" in r for r in spec.requirements), spec.name
        assert spec.requirements[0] == spec.requirement
        assert set(spec.log_levels) == {"debug", "info", "warning", "error"}
        assert "cache_aware" in spec.policies and "round_robin" in spec.policies
    assert (SGLANG.requirement, VLLM.requirement) == ("sglang-router==0.3.2", "vllm-router==0.1.17")
    # the 0.3.2 CLI offers random, round_robin, cache_aware, power_of_two, manual
    assert "kv_aware" not in SGLANG.policies


def test_unknown_peer() -> None:
    with pytest.raises(ValueError, match="unknown peer router 'trt'"):
        peer_spec("trt")


def _fake_install(settings: LocalInfraSettings) -> None:
    """Make the sglang venv look installed (stamp + launcher) without pip."""
    target = peer_install(SGLANG, settings)
    (target.root / "bin").mkdir(parents=True)
    target.script.write_text("#!/bin/sh\n")
    target.python.write_text("")
    target.stamp.write_text(json.dumps(target.expected_stamp()))


def test_start_refuses_a_running_router_with_another_command_line(tmp_path: Path) -> None:
    settings = LocalInfraSettings(home=tmp_path)
    _fake_install(settings)
    launch = PeerLaunch(SGLANG, "cache_aware", W2, 30000)
    settings.run_dir.mkdir(parents=True)
    (settings.run_dir / f"{launch.process_name}.pid").write_text(str(os.getpid()))  # a live process
    (settings.run_dir / f"{launch.process_name}.argv.json").write_text(json.dumps(["sglang-router", "--port", "1"]))
    with pytest.raises(PeerStartError, match="already runs with another command line"):
        start_peer(launch, settings)


def test_our_sglang_baseline_uses_the_wheels_cli_defaults() -> None:
    picker = load_profile("sglang-cache-aware").picker
    assert picker is not None
    params = {k: picker.params[k] for k in SGLANG.cache_aware_defaults}
    assert params == dict(SGLANG.cache_aware_defaults)
