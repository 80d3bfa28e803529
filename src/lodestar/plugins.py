"""The full plugin registry: every shipped baseline plus the learned ``lodestar`` policy.

Hosts (simulator, router, replay) build policies from :func:`full_registry`, so a profile
runs unchanged everywhere.
"""

from __future__ import annotations

from pathlib import Path

from lodestar.learn.policy import LodestarParams, LodestarPolicy
from lodestar.policy.contracts import Policy
from lodestar.policy.profile_spec import ProfileSpec, build_policy, load_profile, load_profile_file
from lodestar.policy.registry import PolicyRegistry, default_registry


def resolve_profile(name_or_path: str) -> ProfileSpec:
    """A shipped profile by name, or a YAML profile file by path."""
    if name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path:
        return load_profile_file(Path(name_or_path))
    return load_profile(name_or_path)


def register_learned(registry: PolicyRegistry) -> None:
    def make(params: LodestarParams) -> Policy:
        fallback = build_policy(resolve_profile(params.fallback_profile), registry, seed=params.seed)
        return LodestarPolicy(params, fallback)

    registry.register(
        "policy",
        "lodestar",
        LodestarParams,
        make,
        "Lodestar: online-learned latency predictor, exploration, heuristic fallback until confident",
    )


def full_registry() -> PolicyRegistry:
    registry = default_registry()
    register_learned(registry)
    return registry
