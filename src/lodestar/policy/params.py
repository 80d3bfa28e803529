"""Base classes of plugin parameter models: pydantic at the profile boundary, frozen, strict
about unknown fields so a typo in a profile is an error naming the field."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class PluginParams(BaseModel):
    """Parameters of a plugin; every field has a default (the peer's published default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(PluginParams):
    """A plugin without parameters."""


class SeededParams(PluginParams):
    """Parameters of a stochastic plugin: it owns a ``random.Random(seed)``."""

    seed: int = 0
