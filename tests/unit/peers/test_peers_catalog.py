"""The peer catalog refuses a default policy its wheel does not have."""

from __future__ import annotations

import dataclasses

import pytest

from lodestar.peers.catalog import PEERS, VLLM


def test_each_peer_defaults_to_one_of_its_policies() -> None:
    assert {name: spec.default_policy for name, spec in PEERS.items()} == {
        "sglang": "cache_aware",
        "vllm": "cache_aware",
    }


def test_a_default_policy_the_wheel_lacks_is_refused() -> None:
    with pytest.raises(ValueError, match="vllm: default policy 'manual' is not one of its policies"):
        dataclasses.replace(VLLM, default_policy="manual")
