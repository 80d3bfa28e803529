"""Routing profiles: YAML documents that compose registered plugins into a :class:`Policy`.

A profile is either a pipeline::

    name: llm-d
    description: ...
    filters: [{type: healthy}, {type: model}, {type: context-length}]
    scorers:
      - {type: queue-scorer, weight: 2}
      - {type: prefix-cache-scorer, weight: 3, params: {max_prefix_blocks: 256}}
    picker: {type: max-score, params: {seed: 0}}

or one whole policy plugin::

    name: my-policy
    policy: {type: some-policy, params: {...}}

Entries may carry a ``name`` (default: their type), unique within the profile; hosts override
parameters by entry name (:meth:`ProfileSpec.with_params`). Shipped profiles live in
``lodestar/policy/profiles/*.yaml`` (package data). Every error (malformed YAML, unknown field
or plugin type, bad params) raises :class:`ProfileError` naming the offending field.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lodestar.policy.contracts import Policy
from lodestar.policy.framework import Filter, Picker, Scorer
from lodestar.policy.profile_policy import NamedFilter, ProfilePolicy, WeightedScorer
from lodestar.policy.registry import PluginError, PluginKind, PolicyRegistry, describe_validation_error

_PACKAGE = "lodestar.policy"
_DIR = "profiles"


class ProfileError(ValueError):
    """A profile that cannot be loaded or built; the message names the profile and field."""


class PluginRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(min_length=1)
    name: str | None = Field(default=None, min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.name or self.type


class ScorerRef(PluginRef):
    weight: float = Field(default=1.0, ge=0.0, allow_inf_nan=False)


class ProfileSpec(BaseModel):
    """A validated profile (plugin types and params are checked when it is built)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    description: str = ""
    filters: tuple[PluginRef, ...] = ()
    scorers: tuple[ScorerRef, ...] = ()
    picker: PluginRef | None = None
    policy: PluginRef | None = None

    @model_validator(mode="after")
    def _shape(self) -> ProfileSpec:
        if self.policy is not None:
            if self.picker is not None or self.filters or self.scorers:
                raise ValueError("a profile with 'policy' takes no 'filters', 'scorers' or 'picker'")
        elif self.picker is None:
            raise ValueError("a profile needs a 'picker' (or a whole 'policy')")
        seen: set[str] = set()
        for ref in self.entries().values():
            if ref.key in seen:
                raise ValueError(f"entry name {ref.key!r} is used twice; give one of them a distinct 'name'")
            seen.add(ref.key)
        return self

    def entries(self) -> dict[str, PluginRef]:
        """Every plugin entry by its path in the profile (``scorers[1]``, ``picker``...)."""
        out: dict[str, PluginRef] = {f"filters[{i}]": f for i, f in enumerate(self.filters)}
        out.update({f"scorers[{i}]": s for i, s in enumerate(self.scorers)})
        if self.picker is not None:
            out["picker"] = self.picker
        if self.policy is not None:
            out["policy"] = self.policy
        return out

    def with_params(self, entry: str, **params: Any) -> ProfileSpec:
        """A copy whose entry named ``entry`` has ``params`` merged over its own."""
        data = self.model_dump()
        for section in ("filters", "scorers"):
            for ref in data[section]:
                if (ref["name"] or ref["type"]) == entry:
                    ref["params"] = {**ref["params"], **params}
                    return ProfileSpec.model_validate(data)
        for section in ("picker", "policy"):
            ref = data[section]
            if ref is not None and (ref["name"] or ref["type"]) == entry:
                ref["params"] = {**ref["params"], **params}
                return ProfileSpec.model_validate(data)
        names = ", ".join(r.key for r in self.entries().values())
        raise ProfileError(f"profile {self.name!r} has no entry named {entry!r}; entries: {names}")


# --- loading -----------------------------------------------------------------------------


def parse_profile(text: str, source: str = "<string>") -> ProfileSpec:
    """A profile from YAML text; ``source`` names it in errors."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProfileError(f"malformed YAML in {source}{where}: {problem}") from exc
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: a profile must be a YAML mapping, got {type(data).__name__}")
    try:
        return ProfileSpec.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(f"{source}: {describe_validation_error(exc, prefix='profile')}") from exc


def load_profile_file(path: Path) -> ProfileSpec:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ProfileError(f"cannot read profile file {path}: {exc.strerror or exc}") from exc
    return parse_profile(text, source=str(path))


def list_profiles() -> list[str]:
    """Names of the shipped profiles (``profiles/<name>.yaml``), sorted."""
    folder = resources.files(_PACKAGE).joinpath(_DIR)
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_profile(name: str) -> ProfileSpec:
    """The shipped profile ``name``."""
    known = list_profiles()
    if name not in known:
        raise ProfileError(f"unknown profile {name!r}; shipped profiles: {', '.join(known)}")
    text = resources.files(_PACKAGE).joinpath(_DIR, f"{name}.yaml").read_text()
    spec = parse_profile(text, source=f"profile {name!r}")
    if spec.name != name:
        raise ProfileError(f"profile file {name}.yaml declares name {spec.name!r}")
    return spec


# --- building ----------------------------------------------------------------------------


def resolved_params(spec: ProfileSpec, registry: PolicyRegistry) -> dict[str, dict[str, Any]]:
    """Every entry's params with defaults filled in, by entry path (validates them)."""
    return {path: _params(spec, registry, path, ref).model_dump(mode="json") for path, ref in spec.entries().items()}


def build_policy(spec: ProfileSpec, registry: PolicyRegistry, *, seed: int | None = None) -> Policy:
    """A fresh policy from ``spec``. With ``seed``, every stochastic plugin gets a seed
    derived from it and its entry name (overriding the profile's), so one number seeds a run."""
    if spec.policy is not None:
        policy = _build(spec, registry, "policy", "policy", spec.policy, seed)
        assert isinstance(policy, Policy)
        return policy
    filters = []
    for i, ref in enumerate(spec.filters):
        plugin = _build(spec, registry, "filter", f"filters[{i}]", ref, seed)
        assert isinstance(plugin, Filter)
        filters.append(NamedFilter(ref.key, plugin))
    scorers = []
    for i, sref in enumerate(spec.scorers):
        plugin = _build(spec, registry, "scorer", f"scorers[{i}]", sref, seed)
        assert isinstance(plugin, Scorer)
        scorers.append(WeightedScorer(sref.key, sref.weight, plugin))
    assert spec.picker is not None
    picker = _build(spec, registry, "picker", "picker", spec.picker, seed)
    assert isinstance(picker, Picker)
    return ProfilePolicy(spec.name, filters, scorers, picker, picker_name=spec.picker.key)


_KIND_OF = {"filters": "filter", "scorers": "scorer", "picker": "picker", "policy": "policy"}


def _kind(path: str) -> PluginKind:
    kind = _KIND_OF[path.split("[")[0]]
    assert kind in ("filter", "scorer", "picker", "policy")
    return kind  # type: ignore[return-value]


def _params(spec: ProfileSpec, registry: PolicyRegistry, path: str, ref: PluginRef, seed: int | None = None) -> Any:
    kind = _kind(path)
    try:
        registry.spec(kind, ref.type)
    except PluginError as exc:
        raise ProfileError(f"profile {spec.name!r}: {path}.type: {exc}") from exc
    params: Mapping[str, Any] = ref.params
    if seed is not None and registry.spec(kind, ref.type).stochastic:
        params = {**params, "seed": derive_seed(seed, ref.key)}
    try:
        return registry.params(kind, ref.type, params)
    except PluginError as exc:
        raise ProfileError(f"profile {spec.name!r}: {path} ({ref.type}).{exc}") from exc


def _build(
    spec: ProfileSpec, registry: PolicyRegistry, kind: PluginKind, path: str, ref: PluginRef, seed: int | None
) -> object:
    params = _params(spec, registry, path, ref, seed)
    return registry.spec(kind, ref.type).factory(params)


def derive_seed(seed: int, entry: str) -> int:
    """A per-entry seed: stable across runs and platforms."""
    return (seed * 1_000_003 + zlib.crc32(entry.encode())) % 2**32
