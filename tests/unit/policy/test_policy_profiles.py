"""Profiles: shipped ones load and build; failure paths name the offending field."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from policy_helpers import request, view

from lodestar.plugins import full_registry
from lodestar.policy.contracts import Decision, InstanceView, NoCandidateError, Policy, RequestView
from lodestar.policy.framework import Filter, Scored, Scorer
from lodestar.policy.params import NoParams, PluginParams
from lodestar.policy.profile_spec import (
    ProfileError,
    ProfileSpec,
    build_policy,
    derive_seed,
    list_profiles,
    load_profile,
    load_profile_file,
    parse_profile,
    resolved_params,
)
from lodestar.policy.registry import PluginError, default_registry

BASELINES = {
    "random", "round-robin", "least-request", "power-of-two", "least-kv",
    "sglang-cache-aware", "llm-d", "dynamo-kv", "aibrix-prefix-cache", "estimated-ttft",
}  # fmt: skip


def test_every_baseline_ships_a_profile_that_resolves() -> None:
    assert set(list_profiles()) >= BASELINES | {"lodestar"}
    registry = full_registry()
    for name in list_profiles():
        spec = load_profile(name)
        assert spec.name == name and spec.description
        resolved = resolved_params(spec, registry)
        assert set(resolved) == set(spec.entries())
        assert build_policy(spec, registry).name == name


def test_resolved_params_fill_defaults() -> None:
    spec = parse_profile("name: t\npicker: {type: sglang-cache-aware, params: {cache_threshold: 0.5}}")
    params = resolved_params(spec, default_registry())["picker"]
    assert params["cache_threshold"] == 0.5 and params["balance_abs_threshold"] == 64
    assert params["max_tree_size"] == 2**26


PICK = "\npicker: {type: max-score}"
BAD = [
    ("unknown-scorer", "scorers: [{type: nope}]" + PICK, r"scorers\[0\]\.type: unknown scorer type 'nope'"),
    ("unknown-picker", "picker: {type: nope}", r"picker\.type: unknown picker type 'nope'"),
    ("filter-as-picker", "picker: {type: healthy}", r"picker\.type: unknown picker type 'healthy'"),
    (
        "bad-param-value",
        "scorers: [{type: prefix-cache-scorer, params: {max_prefix_blocks: 0}}]" + PICK,
        r"scorers\[0\] \(prefix-cache-scorer\)\.params\.max_prefix_blocks: Input should be greater than or equal to 1",
    ),
    (
        "bad-param-type",
        "picker: {type: softmax, params: {temperature: hot}}",
        r"picker \(softmax\)\.params\.temperature: Input should be a valid number",
    ),
    (
        "unknown-param",
        "picker: {type: random, params: {bogus: 1}}",
        r"picker \(random\)\.params\.bogus: Extra inputs are not permitted",
    ),
    (
        "bad-literal",
        "picker: {type: sglang-cache-aware, params: {fallback: oldest}}",
        r"params\.fallback: Input should be 'least-loaded' or 'smallest-tree'",
    ),
    (
        "bad-speed",
        "scorers: [{type: estimated-ttft, params: {prefill_tokens_per_s: {a: -1}}}]" + PICK,
        r"params\.prefill_tokens_per_s\.a: Input should be greater than 0",
    ),
]


@pytest.mark.parametrize(("case", "text", "message"), BAD)
def test_build_errors_name_the_field(case: str, text: str, message: str) -> None:
    spec = parse_profile("name: t\n" + text, source="t.yaml")
    with pytest.raises(ProfileError, match=message):
        build_policy(spec, default_registry())


SHAPE = [
    ("malformed-yaml", "name: t\npicker: {type: [", r"malformed YAML in t\.yaml at line 2"),
    ("not-a-mapping", "- a\n- b", r"t\.yaml: a profile must be a YAML mapping, got list"),
    ("missing-picker", "name: t\nscorers: [{type: queue-scorer}]", r"profile: Value error, a profile needs a 'picker'"),
    ("unknown-field", "name: t\nfiltres: []" + PICK, r"profile\.filtres: Extra inputs are not permitted"),
    (
        "negative-weight",
        "name: t\nscorers: [{type: queue-scorer, weight: -1}]" + PICK,
        r"profile\.scorers\.0\.weight: Input should be greater than or equal to 0",
    ),
    ("missing-name", "picker: {type: random}", r"profile\.name: Field required"),
    ("missing-type", "name: t\npicker: {params: {}}", r"profile\.picker\.type: Field required"),
    ("policy-and-picker", "name: t\npolicy: {type: x}" + PICK, r"a profile with 'policy' takes no"),
    (
        "duplicate-names",
        "name: t\nscorers: [{type: queue-scorer}, {type: queue-scorer}]" + PICK,
        r"entry name 'queue-scorer' is used twice",
    ),
]


@pytest.mark.parametrize(("case", "text", "message"), SHAPE)
def test_parse_errors_name_the_field(case: str, text: str, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        parse_profile(text, source="t.yaml")


def test_unknown_profile_and_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"unknown profile 'nope'; shipped profiles: .*llm-d"):
        load_profile("nope")
    with pytest.raises(ProfileError, match="cannot read profile file"):
        load_profile_file(tmp_path / "missing.yaml")
    path = tmp_path / "p.yaml"
    path.write_text("name: mine\npicker: {type: round-robin}\n")
    assert load_profile_file(path).name == "mine"


def test_with_params_overrides_one_entry() -> None:
    spec = load_profile("estimated-ttft").with_params("estimated-ttft", prefill_tokens_per_s={"a": 5000.0})
    assert spec.scorers[0].params["prefill_tokens_per_s"] == {"a": 5000.0}
    assert spec.scorers[0].params["index_ttl_s"] == 120.0  # kept
    with pytest.raises(ProfileError, match="no entry named 'nope'; entries: healthy, model"):
        spec.with_params("nope", x=1)


def test_build_seed_is_derived_per_entry_and_overrides_the_profile_seed() -> None:
    assert len({derive_seed(1, "picker"), derive_seed(1, "scorer"), derive_seed(2, "picker")}) == 3
    spec = parse_profile("name: t\npicker: {type: random, params: {seed: 5}}")
    candidates = [view(c) for c in "abcdefgh"]

    def choices(seed: int | None) -> list[str]:
        policy = build_policy(spec, default_registry(), seed=seed)
        return [policy.decide(request(f"r{k}"), candidates, 0.0).instance_id for k in range(12)]

    assert choices(3) == choices(3)
    assert choices(3) != choices(4)
    assert choices(None) == choices(None) != choices(3)


# --- registry ------------------------------------------------------------------------------


class _Fixed(Scorer):
    def __init__(self, values: list[float]) -> None:
        self.values = values

    def score(self, request: RequestView, candidates: list[InstanceView], now_s: float) -> Scored:  # type: ignore[override]
        return Scored(self.values[: len(candidates)])


class _FixedParams(PluginParams):
    values: list[float]


class _FirstPolicy(Policy):
    name = "first"

    def decide(self, request: RequestView, candidates: list[InstanceView], now_s: float) -> Decision:  # type: ignore[override]
        if not candidates:
            raise NoCandidateError(request.request_id, "empty")
        return Decision(candidates[0].instance_id, {c.instance_id: 1.0 for c in candidates}, self.name)


def test_registry_rejects_duplicates_and_unknown_kinds() -> None:
    registry = default_registry()
    with pytest.raises(ValueError, match="already registered"):
        registry.register("picker", "random", NoParams, lambda _: None, "dup")
    with pytest.raises(ValueError, match="unknown plugin kind"):
        registry.register("sorter", "x", NoParams, lambda _: None, "?")  # type: ignore[arg-type]
    with pytest.raises(PluginError, match="unknown scorer type 'x'; known scorer types: active-request-scorer"):
        registry.spec("scorer", "x")
    with pytest.raises(TypeError, match="returned str"):
        registry.register("picker", "broken", NoParams, lambda _: "nope", "?")
        registry.build("picker", "broken")


def test_scores_are_clamped_and_weighted_and_policy_plugins_build() -> None:
    registry = default_registry()
    registry.register("scorer", "fixed", _FixedParams, lambda p: _Fixed(p.values), "test")
    registry.register("policy", "first", NoParams, lambda _: _FirstPolicy(), "test")
    spec = ProfileSpec.model_validate(
        {
            "name": "clamp",
            "scorers": [
                {"type": "fixed", "name": "wild", "weight": 3, "params": {"values": [1.5, -0.2, float("nan")]}},
                {"type": "fixed", "name": "tame", "weight": 1, "params": {"values": [0.0, 1.0, 0.5]}},
            ],
            "picker": {"type": "max-score"},
        }
    )
    d = build_policy(spec, registry).decide(request("r"), [view("a"), view("b"), view("c")], 0.0)
    assert d.scores == pytest.approx({"a": 0.75, "b": 0.25, "c": 0.125})
    assert d.features["a"] == {"wild": 1.0, "tame": 0.0}
    assert d.instance_id == "a" and d.policy == "clamp"
    policy = build_policy(ProfileSpec.model_validate({"name": "p", "policy": {"type": "first"}}), registry)
    assert policy.decide(request("r"), [view("b"), view("a")], 0.0).instance_id == "b"


def test_filters_explain_which_one_emptied_the_set() -> None:
    policy = build_policy(load_profile("round-robin"), default_registry())
    with pytest.raises(NoCandidateError) as caught:
        policy.decide(request("r", model="other"), [view("a"), view("b")], 0.0)
    assert caught.value.reason == "filter 'model': none of the 2 instance(s) serves model 'other'"
    big = request("r", tokens=1000, out=100)
    with pytest.raises(NoCandidateError) as caught:
        policy.decide(big, [view("a", max_len=1000), view("b", max_len=512)], 0.0)
    assert caught.value.reason == (
        "filter 'context-length': 1100 tokens of context needed (1000 prompt + 100 output); "
        f"the largest of the 2 instance(s) of model {big.model!r} has 1000"
    )
    assert policy.decide(big, [view("a", max_len=1100), view("b", max_len=512)], 0.0).instance_id == "a"


def test_a_filter_without_words_of_its_own_is_named_by_its_class() -> None:
    class DropAll(Filter):
        def filter(self, request: RequestView, candidates: Sequence[InstanceView], now_s: float) -> list[InstanceView]:
            return []

    assert DropAll().none_left(request("r"), [view("a"), view("b")]) == "none of 2 candidate(s) passed DropAll"
