"""The committed JSON Schema files match the models; a changed model is detected as drift."""

from __future__ import annotations

from pathlib import Path

from lodestar_schemas.jsonschema_export import drifted, render_schemas, write_schemas
from lodestar_schemas.topics import TOPICS

COMMITTED = Path(__file__).resolve().parents[3] / "schemas" / "json-schema"


def test_committed_schemas_match_models() -> None:
    assert drifted(COMMITTED) == [], "run `lodestar schemas export` and commit the result"


def test_drift_is_detected(tmp_path: Path) -> None:
    write_schemas(tmp_path)
    assert drifted(tmp_path) == []
    victim = tmp_path / f"{TOPICS[0].name.value}.schema.json"
    victim.write_text(victim.read_text().replace("kv_usage_frac", "kv_usage"))
    assert drifted(tmp_path) == [victim.name]
    assert len(render_schemas()) == len(TOPICS)
