"""Generate the committed JSON Schema files under ``schemas/json-schema/``."""

from __future__ import annotations

import json
from pathlib import Path

from lodestar_schemas.topics import TOPICS


def render_schemas() -> dict[str, str]:
    """File name → JSON Schema text for every topic's event model (stable formatting)."""
    out: dict[str, str] = {}
    for spec in TOPICS:
        schema = spec.model.model_json_schema(mode="serialization")
        schema["$id"] = f"https://lodestar.dev/schemas/{spec.name.value}.schema.json"
        schema["x-topic"] = spec.name.value
        out[f"{spec.name.value}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_schemas().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


def drifted(directory: Path) -> list[str]:
    """Names of schema files missing from ``directory`` or differing from the models."""
    return [
        name
        for name, text in render_schemas().items()
        if not (directory / name).exists() or (directory / name).read_text() != text
    ]
