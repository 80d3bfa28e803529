"""Builders shared by the policy tests (imported by module name; tests dirs are not packages)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lodestar import tokenizer
from lodestar.policy.contracts import InstanceView, Policy, RequestView
from lodestar.policy.profile_spec import ProfileSpec, build_policy, load_profile
from lodestar.policy.registry import PolicyRegistry, default_registry

MODEL = "m"
STANDARD_FILTERS = [{"type": "healthy"}, {"type": "model"}, {"type": "context-length"}]


def chain(*segments: int) -> tuple[int, ...]:
    """Chained block hashes of a prompt whose k-th 16-token block has content id ``segments[k]``
    (two chains share block j exactly when they share segments 0..j)."""
    n = len(segments)
    return tuple(tokenizer.expand_block_hashes(list(segments), tokenizer.BLOCK_SIZE, n * tokenizer.BLOCK_SIZE))


def view(
    iid: str,
    *,
    model: str = MODEL,
    healthy: bool = True,
    waiting: int = 0,
    running: int = 0,
    kv: float = 0.0,
    inflight: int = 0,
    max_len: int | None = None,
) -> InstanceView:
    return InstanceView(
        instance_id=iid,
        model=model,
        healthy=healthy,
        num_running=running,
        num_waiting=waiting,
        kv_usage_frac=kv,
        state_age_s=0.0,
        max_model_len=max_len,
        inflight_requests=inflight,
    )


def request(
    rid: str = "r",
    *,
    blocks: Sequence[int] = (),
    tokens: int | None = None,
    model: str = MODEL,
    out: int | None = None,
) -> RequestView:
    n = tokens if tokens is not None else max(1, len(blocks) * tokenizer.BLOCK_SIZE)
    return RequestView(
        request_id=rid, model=model, prompt_tokens=n, block_hashes=tuple(blocks), expected_output_tokens=out
    )


def profile(
    picker: Mapping[str, Any] | None = None,
    scorers: Sequence[Mapping[str, Any]] = (),
    name: str = "test",
    filters: Sequence[Mapping[str, Any]] = STANDARD_FILTERS,
) -> ProfileSpec:
    data: dict[str, Any] = {"name": name, "filters": list(filters), "scorers": list(scorers)}
    data["picker"] = dict(picker) if picker is not None else {"type": "max-score"}
    return ProfileSpec.model_validate(data)


def shipped(name: str, seed: int | None = 0, registry: PolicyRegistry | None = None, **overrides: Any) -> Policy:
    """The shipped profile ``name``; ``overrides`` map an entry name to params merged in."""
    spec = load_profile(name)
    for entry, params in overrides.items():
        spec = spec.with_params(entry.replace("_", "-"), **params)
    return build_policy(spec, registry or default_registry(), seed=seed)
