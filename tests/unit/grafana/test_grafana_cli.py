"""``lodestar grafana generate|validate``: exit status and messages."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from lodestar.cli.app import build_app

RUNNER = CliRunner()


def test_generate_check_passes_on_the_committed_files() -> None:
    result = RUNNER.invoke(build_app(), ["grafana", "generate", "--check"])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output


def test_generate_writes_and_check_catches_an_edit(tmp_path: Path) -> None:
    result = RUNNER.invoke(build_app(), ["grafana", "generate", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "dashboards" / "lodestar-fleet.json").is_file()
    assert (tmp_path / "provisioning" / "datasources" / "lodestar.yaml").is_file()
    path = tmp_path / "dashboards" / "lodestar-fleet.json"
    model = json.loads(path.read_text())
    model["panels"][0]["gridPos"]["w"] = 24
    path.write_text(json.dumps(model))
    result = RUNNER.invoke(build_app(), ["grafana", "generate", "--check", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "dashboards/lodestar-fleet.json: differs from the generator" in result.output
    assert "run `lodestar grafana generate`" in result.output


def test_validate_reports_each_problem(tmp_path: Path) -> None:
    RUNNER.invoke(build_app(), ["grafana", "generate", "--dir", str(tmp_path)])
    path = tmp_path / "dashboards" / "lodestar-fleet.json"
    model = json.loads(path.read_text())
    model["panels"][1]["id"] = model["panels"][0]["id"]
    path.write_text(json.dumps(model))
    result = RUNNER.invoke(build_app(), ["grafana", "validate", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "lodestar-fleet.json: panel ids must be unique positive integers" in result.output
    assert "4 dashboard(s) checked statically, 1 problem(s)" in result.output


def test_validate_passes_on_the_committed_files() -> None:
    result = RUNNER.invoke(build_app(), ["grafana", "validate"])
    assert result.exit_code == 0, result.output


def test_validate_without_dashboards_says_how_to_make_them(tmp_path: Path) -> None:
    result = RUNNER.invoke(build_app(), ["grafana", "validate", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "no dashboard JSON in" in result.output and "lodestar grafana generate" in result.output
