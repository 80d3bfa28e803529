"""Cluster files: groups of identical instances, expanded to named instances.

Instance ids are ``<hardware>-<n>`` in lower case (``h100-sxm-0``), numbered per hardware kind
in file order, unless a group gives ``ids`` explicitly.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

from lodestar.engine.profiles import InstanceProfile, hardware, model


class ClusterFileError(ValueError):
    """A cluster name or file that cannot be used; the message names the file and field."""


class InstanceGroup(BaseModel):
    """``count`` identical instances."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hardware: str
    count: PositiveInt = 1
    model: str | None = Field(default=None, description="defaults to the cluster's model")
    tp: PositiveInt = 1
    ids: tuple[str, ...] | None = None
    engine_args: dict[str, Any] = Field(default_factory=dict, description="vLLM engine argument overrides")

    @model_validator(mode="after")
    def _check(self) -> InstanceGroup:
        hardware(self.hardware)  # raises with the known names
        if self.model is not None:
            model(self.model)
        if self.ids is not None and len(self.ids) != self.count:
            raise ValueError(f"ids has {len(self.ids)} entries but count is {self.count}")
        return self


class InstanceSpec(BaseModel):
    """One named instance of a cluster."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    instance_id: str
    profile: InstanceProfile

    @property
    def model_name(self) -> str:
        return self.profile.model.name

    @property
    def hardware_name(self) -> str:
        return self.profile.hardware.name


class ClusterSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str = ""
    model: str
    groups: tuple[InstanceGroup, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> ClusterSpec:
        model(self.model)
        ids = [i.instance_id for i in self.instances()]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate instance ids: {dupes}")
        return self

    def instances(self) -> list[InstanceSpec]:
        out: list[InstanceSpec] = []
        counters: dict[str, int] = {}
        for group in self.groups:
            hw = hardware(group.hardware)
            mdl = model(group.model or self.model)
            for k in range(group.count):
                if group.ids is not None:
                    iid = group.ids[k]
                else:
                    n = counters.get(hw.name, 0)
                    counters[hw.name] = n + 1
                    iid = f"{hw.name.lower()}-{n}"
                profile = InstanceProfile(hardware=hw, model=mdl, tp=group.tp, **group.engine_args)
                out.append(InstanceSpec(instance_id=iid, profile=profile))
        return out


def preset_names() -> list[str]:
    root = resources.files("lodestar.cluster").joinpath("presets")
    return sorted(p.name.removesuffix(".yaml") for p in root.iterdir() if p.name.endswith(".yaml"))


def load_cluster(name_or_path: str | Path) -> ClusterSpec:
    """A preset by name (``hetero-mix8``) or a YAML file path."""
    text: str
    source = str(name_or_path)
    path = Path(source)
    if path.suffix in (".yaml", ".yml") or path.exists():
        try:
            text = path.read_text()
        except OSError as exc:
            raise ClusterFileError(f"cannot read cluster file {source}: {exc.strerror}") from None
    elif source in preset_names():
        text = resources.files("lodestar.cluster").joinpath("presets", f"{source}.yaml").read_text()
    else:
        raise ClusterFileError(f"unknown cluster {source!r}: not a file, and presets are {', '.join(preset_names())}")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ClusterFileError(f"cluster file {source} is not valid YAML: {exc}") from None
    try:
        return ClusterSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ClusterFileError(f"cluster {source}: field {loc or '(root)'}: {first['msg']}") from None
    except KeyError as exc:  # unknown hardware/model names raised by the validators
        raise ClusterFileError(f"cluster {source}: {exc.args[0]}") from None
