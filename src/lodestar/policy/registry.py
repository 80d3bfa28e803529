"""The plugin registry: plugin kind and type name → (pydantic params model, factory).

A registry is an ordinary object: :func:`default_registry` builds one and registers every
shipped plugin explicitly; nothing registers itself at import time. Hosts and tests may
register more plugins on their own registry (the learned policy will be one more scorer or
policy). Kinds: ``filter``, ``scorer``, ``picker``, and ``policy`` (a whole :class:`Policy`
used instead of filters/scorers/picker).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import ValidationError

from lodestar.policy.contracts import Policy
from lodestar.policy.filters import ContextLengthFilter, HealthyFilter, ModelFilter
from lodestar.policy.framework import Filter, Picker, Scorer
from lodestar.policy.params import NoParams, PluginParams, SeededParams
from lodestar.policy.pickers.aibrix_prefix_cache import AIBrixPrefixCacheParams, AIBrixPrefixCachePicker
from lodestar.policy.pickers.max_score import MaxScoreParams, MaxScorePicker
from lodestar.policy.pickers.power_of_two import PowerOfTwoPicker
from lodestar.policy.pickers.random_picker import RandomPicker
from lodestar.policy.pickers.round_robin import RoundRobinPicker
from lodestar.policy.pickers.sglang_cache_aware import SGLangCacheAwareParams, SGLangCacheAwarePicker
from lodestar.policy.pickers.softmax import SoftmaxParams, SoftmaxPicker
from lodestar.policy.scorers.active_request import ActiveRequestScorer
from lodestar.policy.scorers.dynamo_kv import DynamoKVParams, DynamoKVScorer
from lodestar.policy.scorers.estimated_ttft import EstimatedTTFTParams, EstimatedTTFTScorer
from lodestar.policy.scorers.kv_utilization import KVUtilizationScorer
from lodestar.policy.scorers.prefix_cache import PrefixCacheParams, PrefixCacheScorer
from lodestar.policy.scorers.queue import QueueScorer

PluginKind = Literal["filter", "scorer", "picker", "policy"]
KINDS: tuple[PluginKind, ...] = ("filter", "scorer", "picker", "policy")
_BASES: dict[PluginKind, type] = {"filter": Filter, "scorer": Scorer, "picker": Picker, "policy": Policy}

P = TypeVar("P", bound=PluginParams)


class PluginError(ValueError):
    """An unknown plugin type or invalid parameters; the message names the field."""


@dataclass(frozen=True, slots=True)
class PluginSpec:
    kind: PluginKind
    type_name: str
    params_model: type[PluginParams]
    factory: Callable[[Any], object]
    description: str

    @property
    def stochastic(self) -> bool:
        return "seed" in self.params_model.model_fields


class PolicyRegistry:
    """Plugin specs by (kind, type name)."""

    def __init__(self) -> None:
        self._specs: dict[tuple[PluginKind, str], PluginSpec] = {}

    def register(
        self,
        kind: PluginKind,
        type_name: str,
        params_model: type[P],
        factory: Callable[[P], object],
        description: str,
    ) -> None:
        """Add a plugin type; registering the same (kind, type) twice is an error."""
        if kind not in KINDS:
            raise ValueError(f"unknown plugin kind {kind!r}; kinds: {', '.join(KINDS)}")
        key = (kind, type_name)
        if key in self._specs:
            raise ValueError(f"{kind} type {type_name!r} is already registered")
        self._specs[key] = PluginSpec(kind, type_name, params_model, factory, description)

    def spec(self, kind: PluginKind, type_name: str) -> PluginSpec:
        spec = self._specs.get((kind, type_name))
        if spec is None:
            known = ", ".join(self.type_names(kind)) or "none"
            raise PluginError(f"unknown {kind} type {type_name!r}; known {kind} types: {known}")
        return spec

    def type_names(self, kind: PluginKind) -> list[str]:
        return sorted(name for k, name in self._specs if k == kind)

    def specs(self, kind: PluginKind | None = None) -> list[PluginSpec]:
        return [self._specs[k] for k in sorted(self._specs) if kind is None or k[0] == kind]

    def params(self, kind: PluginKind, type_name: str, params: Mapping[str, Any]) -> PluginParams:
        """Validated params (defaults filled in); bad params raise :class:`PluginError`
        naming the field (``params.<field>: <why>``)."""
        spec = self.spec(kind, type_name)
        try:
            return spec.params_model.model_validate(dict(params))
        except ValidationError as exc:
            raise PluginError(describe_validation_error(exc, prefix="params")) from exc

    def build(self, kind: PluginKind, type_name: str, params: Mapping[str, Any] | None = None) -> object:
        """A new plugin instance of the given kind and type."""
        spec = self.spec(kind, type_name)
        plugin = spec.factory(self.params(kind, type_name, params or {}))
        if not isinstance(plugin, _BASES[kind]):
            raise TypeError(f"factory of {kind} {type_name!r} returned {type(plugin).__name__}")
        return plugin


def describe_validation_error(exc: ValidationError, prefix: str) -> str:
    """``prefix.field.sub: message`` for each error, joined by ``; ``."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in (prefix, *err["loc"]))
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def default_registry() -> PolicyRegistry:
    """A registry with every shipped filter, scorer and picker."""
    r = PolicyRegistry()
    r.register("filter", "healthy", NoParams, lambda _: HealthyFilter(), "keep instances whose last state is healthy")
    r.register("filter", "model", NoParams, lambda _: ModelFilter(), "keep instances serving the requested model")
    r.register(
        "filter",
        "context-length",
        NoParams,
        lambda _: ContextLengthFilter(),
        "keep instances whose max_model_len fits prompt + expected output",
    )
    r.register(
        "scorer", "queue-scorer", NoParams, lambda _: QueueScorer(), "llm-d: (max_q − q)/(max_q − min_q) on waiting"
    )
    r.register(
        "scorer", "kv-cache-utilization-scorer", NoParams, lambda _: KVUtilizationScorer(), "llm-d: 1 − KV usage"
    )
    r.register(
        "scorer",
        "active-request-scorer",
        NoParams,
        lambda _: ActiveRequestScorer(),
        "llm-d: (max − c)/max on router-side in-flight requests",
    )
    r.register(
        "scorer",
        "prefix-cache-scorer",
        PrefixCacheParams,
        PrefixCacheScorer,
        "llm-d: matched/total blocks in an approximate per-pod LRU index of past picks",
    )
    r.register(
        "scorer",
        "dynamo-kv-cost",
        DynamoKVParams,
        DynamoKVScorer,
        "NVIDIA Dynamo KV-router cost (prefill after overlap credit + decode blocks), normalised",
    )
    r.register(
        "scorer",
        "estimated-ttft",
        EstimatedTTFTParams,
        EstimatedTTFTScorer,
        "predicted TTFT from pending uncached prefill tokens and nominal prefill speed",
    )
    r.register("picker", "max-score", MaxScoreParams, MaxScorePicker, "highest total wins, ties at random")
    r.register("picker", "softmax", SoftmaxParams, SoftmaxPicker, "samples p ∝ exp(total/T); T = 0 is max-score")
    r.register("picker", "random", SeededParams, RandomPicker, "uniformly random candidate")
    r.register("picker", "round-robin", NoParams, lambda _: RoundRobinPicker(), "candidates in turn")
    r.register("picker", "power-of-two", SeededParams, PowerOfTwoPicker, "two random candidates, fewer in-flight wins")
    r.register(
        "picker",
        "sglang-cache-aware",
        SGLangCacheAwareParams,
        SGLangCacheAwarePicker,
        "SGLang router cache-aware policy (approximate radix tree + imbalance switch)",
    )
    r.register(
        "picker",
        "aibrix-prefix-cache",
        AIBrixPrefixCacheParams,
        AIBrixPrefixCachePicker,
        "AIBrix prefix-cache routing (hash table + load gate + mean+std rule)",
    )
    return r
