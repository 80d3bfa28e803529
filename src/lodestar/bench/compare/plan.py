"""What a comparison runs: the routers under test ("cases") and the run parameters.

A case is written ``ROUTER:VARIANT`` on the command line:

- ``vllm:POLICY`` / ``sglang:POLICY``: the peer router wheel with ``--policy POLICY``;
- ``lodestar:cold``: a fresh Lodestar stack (no model yet: the learned policy decides with its
  heuristic until the trainer publishes a confident model, live, during the run);
- ``lodestar:warm``: a fresh stack warmed by a warm-up run on a different slice of the trace,
  then measured on a restarted (cold-cache) emulator with the same router and trainer;
- ``lodestar:PROFILE`` (any other shipped profile, e.g. ``estimated-ttft``, ``llm-d``): the same
  stack with the router on that profile (for reference; nothing is learned).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from lodestar.peers.catalog import PEERS

# The peer policies that route on something this benchmark's traffic has (no session ids, no
# KV events): the list. ``random`` is the floor and adds nothing over round_robin.
PEER_POLICIES: dict[str, tuple[str, ...]] = {
    "vllm": ("round_robin", "power_of_two", "cache_aware"),
    "sglang": ("round_robin", "power_of_two", "cache_aware"),
}

# Offered by the wheels but left out of the default set, and why (``--router`` still runs them).
EXCLUDED: dict[str, str] = {
    "vllm:kv_aware": "needs KV-cache events over ZMQ from every worker (not served by the emulator or a plain OpenAI "
    "server): without them every request went to one worker",
    "vllm:consistent_hash": "keyed by a session-id header: this traffic has no sessions (Mooncake: 0)",
    "vllm:sticky_least_loaded": "sticky by session id: no sessions here, so it is least-loaded",
    "sglang:manual": "sticky by a routing-key header the traffic does not carry (random without one)",
    "vllm:random": "the floor; adds nothing over round_robin",
    "sglang:random": "the floor; adds nothing over round_robin",
}

NOTES: dict[str, str] = {
    "vllm:cache_aware": (
        "tokenizes every request through each worker's /tokenize and /v1/completions/render, which the "
        "emulator (like a plain OpenAI server) does not serve: nothing ever matches and every request goes "
        "to its least-loaded worker (its own in-flight count) — run as such"
    ),
    "vllm:power_of_two": "no /get_load on vLLM-style workers: compares its own in-flight counts",
    "sglang:power_of_two": "no /get_load on vLLM-style workers ('No loads fetched'): compares its own in-flight counts",
    "sglang:cache_aware": "character radix tree per worker + imbalance switch (CLI defaults)",
    "lodestar:cold": "fresh stack: heuristic (least-request) until the trainer publishes a confident model",
    "lodestar:warm": "model trained on a warm-up slice; every process restarted (cold KV, empty broker), model kept",
}

Kind = Literal["peer", "lodestar"]


@dataclass(frozen=True)
class RouterCase:
    """One router under test. ``policy``: the peer's ``--policy`` or Lodestar's router profile."""

    kind: Kind
    router: str  # "vllm" | "sglang" | "lodestar"
    policy: str
    warm: bool = False

    @property
    def key(self) -> str:
        if self.kind == "lodestar" and self.policy == "lodestar":
            return f"lodestar:{'warm' if self.warm else 'cold'}"
        return f"{self.router}:{self.policy}"

    @property
    def label(self) -> str:
        """Display name: ``vllm-router round_robin``, ``Lodestar warmed``, ``Lodestar router llm-d``."""
        if self.kind == "peer":
            return f"{self.router}-router {self.policy}"
        if self.policy == "lodestar":
            return "Lodestar warmed" if self.warm else "Lodestar cold"
        return f"Lodestar router {self.policy}"

    @property
    def is_learned(self) -> bool:
        return self.kind == "lodestar" and self.policy == "lodestar"

    @property
    def note(self) -> str:
        return NOTES.get(self.key, "")


def parse_case(text: str) -> RouterCase:
    """``vllm:round_robin``, ``sglang:cache_aware``, ``lodestar:cold``, ``lodestar:warm``,
    ``lodestar:estimated-ttft`` …; ValueError naming what is accepted."""
    router, sep, variant = text.strip().partition(":")
    if not sep or not variant:
        raise ValueError(f"router {text!r}: expected ROUTER:VARIANT, e.g. vllm:round_robin or lodestar:warm")
    if router in PEERS:
        spec = PEERS[router]
        if variant not in spec.policies:
            raise ValueError(f"router {text!r}: {spec.name} has no policy {variant!r} ({', '.join(spec.policies)})")
        return RouterCase("peer", router, variant)
    if router != "lodestar":
        raise ValueError(f"router {text!r}: unknown router {router!r} (vllm, sglang, lodestar)")
    if variant in ("cold", "warm"):
        return RouterCase("lodestar", "lodestar", "lodestar", warm=variant == "warm")
    from lodestar.policy.profile_spec import ProfileError, load_profile

    try:
        load_profile(variant)
    except ProfileError as exc:
        raise ValueError(f"router {text!r}: {exc}") from None
    if variant == "lodestar":
        raise ValueError("router 'lodestar:lodestar': say lodestar:cold or lodestar:warm")
    return RouterCase("lodestar", "lodestar", variant)


def default_cases(reference_profiles: Sequence[str] = ("estimated-ttft",)) -> list[RouterCase]:
    """Every peer policy of the issue, Lodestar cold and warmed, then the reference profiles."""
    out = [RouterCase("peer", peer, policy) for peer, policies in PEER_POLICIES.items() for policy in policies]
    out += [RouterCase("lodestar", "lodestar", "lodestar"), RouterCase("lodestar", "lodestar", "lodestar", warm=True)]
    out += [RouterCase("lodestar", "lodestar", p) for p in reference_profiles]
    return out


@dataclass(frozen=True)
class RunPlan:
    """The run parameters shared by every case of a comparison.

    Times are workload seconds except ``*_wall_*``. ``ttft_cap_s``: a request still without its
    first token this long after it was sent is abandoned by the client (a ``timeout`` error):
    it bounds how long an overloaded router's backlog may drain. ``max_send_lag_ms``: the
    bench's P90 send lag allowed, in workload ms (wall ÷ time scale: what it shifts arrivals by)."""

    trace: str = "mooncake-conversation"
    load: float = 0.8
    duration_s: float = 60.0
    start_s: float = 0.0
    warmup_start_s: float = 1800.0
    warmup_duration_s: float = 90.0
    time_scale: float = 2.0
    ttft_cap_s: float = 60.0
    max_late_step_frac: float = 0.02
    max_send_lag_ms: float = 100.0
    model_wait_wall_s: float = 60.0
    #: Lodestar's router inside its gateway's process (no HTTP exchange per request), else a
    #: process of its own as in the compose file
    lodestar_embedded: bool = True

    def __post_init__(self) -> None:
        for name in ("load", "duration_s", "warmup_duration_s", "time_scale", "ttft_cap_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        if self.start_s < 0 or self.warmup_start_s < 0:
            raise ValueError("slice starts must be >= 0")
        overlap = self.start_s < self.warmup_start_s + self.warmup_duration_s and (
            self.warmup_start_s < self.start_s + self.duration_s
        )
        if overlap:
            raise ValueError("the warm-up slice must not overlap the measured slice")
