"""What each peer router wheel is, what it needs to run, and how its CLI is spelled.

Both wheels (``sglang-router`` 0.3.2, ``vllm-router`` 0.1.17) are a Rust extension
(``*_rs.abi3.so``) behind a thin Python launcher. Their declared dependencies are only what the
launcher imports at start-up — ``launch_router.py`` imports ``setproctitle`` and the debugging
``mini_lb`` module, which imports ``aiohttp``, ``orjson``, ``uvicorn`` and ``fastapi`` (vllm-router
also declares ``requests``, which nothing imports). Neither needs torch. We install the wheel
and that closure, every package pinned, with ``pip --no-deps``, so nothing else (least of all a
CUDA torch) can be resolved in.

Facts below were read from each wheel's ``--help`` and checked against emulated vLLM workers
(``lodestar emulate``); policies that need services the emulator (or a plain OpenAI server)
does not offer say so in their note.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

# The launchers' import-time closure, resolved once on Python 3.11 and pinned (same for both).
LAUNCHER_DEPS: tuple[str, ...] = (
    "setproctitle==1.3.8",
    "orjson==3.13.0",
    "aiohttp==3.14.5",
    "aiohappyeyeballs==2.7.1",
    "aiosignal==1.4.0",
    "attrs==26.1.0",
    "frozenlist==1.8.0",
    "multidict==7.2.1",
    "propcache==0.5.4",
    "yarl==1.25.1",
    "idna==3.20",
    "uvicorn==0.54.0",
    "click==8.5.1",
    "h11==0.16.0",
    "fastapi==0.165.0",
    "starlette==1.10.0",
    "anyio==4.16.0",
    "pydantic==2.14.4",
    "pydantic-core==2.50.5",
    "typing-extensions==4.16.0",
    "typing-inspection==0.4.5",
    "annotated-types==0.8.0",
    "annotated-doc==0.0.7",
    "opentelemetry-api==1.45.2",
)


@dataclass(frozen=True)
class PeerSpec:
    """One peer router: its pinned wheel, its launcher, and the spelling of its CLI."""

    name: str
    package: str
    version: str
    script: str
    subcommand: tuple[str, ...]
    import_check: str
    policies: Mapping[str, str]
    default_policy: str  # what the router runs without ``--policy`` (its ``--help`` says so)
    log_levels: Mapping[str, str]
    cache_aware_defaults: Mapping[str, float] = field(default_factory=dict)
    unused_deps: tuple[str, ...] = ()
    min_workers: Mapping[str, int] = field(default_factory=dict)

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def requirements(self) -> tuple[str, ...]:
        """Everything installed into the peer's venv, each pinned (installed with --no-deps)."""
        return (self.requirement, *LAUNCHER_DEPS)

    def __post_init__(self) -> None:
        if self.default_policy not in self.policies:
            raise ValueError(f"{self.name}: default policy {self.default_policy!r} is not one of its policies")

    def check_policy(self, policy: str, n_workers: int) -> None:
        """ValueError unless the wheel offers ``policy`` and accepts it with ``n_workers``."""
        if policy not in self.policies:
            known = ", ".join(self.policies)
            raise ValueError(f"{self.name} ({self.requirement}) has no policy {policy!r}; it has {known}")
        needed = self.min_workers.get(policy, 1)
        if n_workers < needed:
            raise ValueError(f"{self.name} refuses --policy {policy} with fewer than {needed} workers")


_CACHE_AWARE_DEFAULTS = MappingProxyType(
    {"cache_threshold": 0.3, "balance_abs_threshold": 64, "balance_rel_threshold": 1.5}
)

SGLANG = PeerSpec(
    name="sglang",
    package="sglang-router",
    version="0.3.2",
    script="sglang-router",
    subcommand=("launch",),
    import_check="sglang_router.launch_router",
    policies=MappingProxyType(
        {
            "cache_aware": "character radix tree of the request text per worker + imbalance switch on its own "
            "in-flight counts; calls nothing on the workers",
            "round_robin": "",
            "random": "",
            "power_of_two": "polls SGLang's /get_load every 30 s; vLLM-style workers have none ('No loads "
            "fetched'), so it compares its own in-flight counts; needs at least 2 workers",
            "manual": "sticky by a routing-key header; requests without one went to random workers",
        }
    ),
    default_policy="cache_aware",
    log_levels=MappingProxyType({"debug": "debug", "info": "info", "warning": "warn", "error": "error"}),
    cache_aware_defaults=_CACHE_AWARE_DEFAULTS,
    min_workers=MappingProxyType({"power_of_two": 2}),  # "Power-of-two policy requires at least 2 workers"
)

VLLM = PeerSpec(
    name="vllm",
    package="vllm-router",
    version="0.1.17",
    script="vllm-router",
    subcommand=(),
    import_check="vllm_router.launch_router",
    policies=MappingProxyType(
        {
            "cache_aware": "tokenizes through the workers (per request, on every worker: POST /tokenize and "
            "/v1/completions/render or /v1/chat/completions/render); without them (the emulator, plain OpenAI "
            "servers) it matches nothing and sends each request to its least-loaded worker",
            "round_robin": "",
            "random": "",
            "power_of_two": "asks the workers' /get_load (SGLang's) at start; without it compares in-flight counts",
            "kv_aware": "needs KV-cache events over ZMQ (--kv-event-source WORKER=ENDPOINT, or found through the "
            "workers' /kv_event_sources and /get_server_info) plus the per-request /tokenize and render calls; "
            "without events every request went to one worker",
            "consistent_hash": "keyed by a session id header; for session-tagged traffic only",
            "sticky_least_loaded": "sticky by session id, new sessions to the least-loaded worker",
        }
    ),
    default_policy="cache_aware",
    log_levels=MappingProxyType({"debug": "debug", "info": "info", "warning": "warning", "error": "error"}),
    cache_aware_defaults=_CACHE_AWARE_DEFAULTS,
    unused_deps=("requests",),
)

PEERS: Mapping[str, PeerSpec] = MappingProxyType({p.name: p for p in (SGLANG, VLLM)})


def peer_spec(name: str) -> PeerSpec:
    """The peer called ``name`` ("sglang" or "vllm"); ValueError naming the known ones."""
    try:
        return PEERS[name]
    except KeyError:
        raise ValueError(f"unknown peer router {name!r}; known: {', '.join(PEERS)}") from None
