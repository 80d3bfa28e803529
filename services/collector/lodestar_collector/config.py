"""Which instances to scrape: a YAML file (reloadable) and/or a short ``ID=URL,…`` list.

The file is either a list of instances or a mapping with an ``instances:`` list::

    instances:
      - instance_id: h100-0
        url: http://10.0.0.5:8000
        hardware: H100-SXM      # optional, display only
        model: llama-3-8b       # optional; else /v1/models, else the metrics' model_name

The short form (env ``LODESTAR_COLLECTOR_INSTANCES`` or ``--instance`` on the CLI) is
``ID=URL`` entries separated by commas; a bare ``URL`` gets the id ``host:port``.
Every problem is an :class:`InstancesConfigError` naming the file/entry and field.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Ident = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\s]+$")]


class InstancesConfigError(ValueError):
    """The instance list is unusable; the message names where (file, entry) and what."""


class InstanceConfig(BaseModel):
    """One instance to scrape. ``url`` is the server root (``/metrics`` is appended)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instance_id: Ident
    url: Annotated[str, Field(min_length=1, max_length=2048)]
    hardware: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    model: Ident | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL with a host")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise ValueError(f"{value!r}: {exc}") from None
        return value.rstrip("/")


class _InstancesDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instances: list[InstanceConfig]


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{loc}: {first['msg']}{more}"


def parse_instances_yaml(text: str, source: str = "<instances>") -> tuple[InstanceConfig, ...]:
    """Instances from YAML text (a list, or ``{instances: [...]}``); ids must be unique."""
    try:
        raw: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InstancesConfigError(f"{source}: not valid YAML: {exc}") from None
    if raw is None:
        raw = []
    if isinstance(raw, list):
        raw = {"instances": raw}
    if not isinstance(raw, dict):
        raise InstancesConfigError(f"{source}: expected a list of instances or a mapping with 'instances'")
    try:
        doc = _InstancesDoc.model_validate(raw)
    except ValidationError as exc:
        raise InstancesConfigError(f"{source}: {_validation_message(exc)}") from None
    return ensure_unique(doc.instances, source)


def load_instances_file(path: Path) -> tuple[InstanceConfig, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InstancesConfigError(f"{path}: cannot read: {exc}") from None
    return parse_instances_yaml(text, str(path))


def parse_instance_list(entries: Iterable[str], source: str = "instances") -> tuple[InstanceConfig, ...]:
    """``ID=URL`` or ``URL`` entries (each may itself hold several, comma-separated)."""
    out: list[InstanceConfig] = []
    for chunk in entries:
        for entry in (e.strip() for e in chunk.split(",")):
            if not entry:
                continue
            ident, sep, url = entry.partition("=")
            if not sep:
                ident, url = "", entry
            if not ident:
                parts = urlsplit(url)
                ident = f"{parts.hostname}:{parts.port}" if parts.hostname and parts.port else (parts.hostname or "")
            try:
                out.append(InstanceConfig(instance_id=ident, url=url))
            except ValidationError as exc:
                raise InstancesConfigError(f"{source}: entry {entry!r}: {_validation_message(exc)}") from None
    return ensure_unique(out, source)


def ensure_unique(instances: Sequence[InstanceConfig], source: str) -> tuple[InstanceConfig, ...]:
    seen: set[str] = set()
    for inst in instances:
        if inst.instance_id in seen:
            raise InstancesConfigError(f"{source}: duplicate instance_id {inst.instance_id!r}")
        seen.add(inst.instance_id)
    return tuple(instances)
