"""``lodestar policy``: list, show, bench; bad input exits non-zero with a clear message."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from lodestar.cli import policy_cmd

runner = CliRunner()


def build_app():  # type: ignore[no-untyped-def]
    """The ``policy`` command group as ``lodestar`` mounts it (``app.add_typer(..., name="policy")``)."""
    import typer

    app = typer.Typer()
    app.add_typer(policy_cmd.build(), name="policy")
    return app


def test_list_shows_plugin_types_and_profiles() -> None:
    result = runner.invoke(build_app(), ["policy", "list"])
    assert result.exit_code == 0, result.output
    for word in ("picker types:", "sglang-cache-aware", "prefix-cache-scorer", "profiles:", "dynamo-kv", "llm-d"):
        assert word in result.output


def test_show_resolves_defaults() -> None:
    result = runner.invoke(build_app(), ["policy", "show", "dynamo-kv"])
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load(result.output)
    assert doc["name"] == "dynamo-kv"
    assert doc["scorers"][0]["params"]["router_ttl_s"] == 120.0
    assert doc["picker"] == {"type": "softmax", "params": {"seed": 0, "temperature": 0.0}}
    assert [f["type"] for f in doc["filters"]] == ["healthy", "model", "context-length"]


def test_show_resolves_the_learned_policy_and_its_ablation_profiles() -> None:
    result = runner.invoke(build_app(), ["policy", "show", "lodestar"])
    assert result.exit_code == 0, result.output
    params = yaml.safe_load(result.output)["policy"]["params"]
    assert params["fallback_profile"] == "least-request" and params["index_engine_capacity"] is True
    ablation = Path(__file__).parents[3] / "benchmarks" / "profiles" / "lodestar-no-kv-size.yaml"
    result = runner.invoke(build_app(), ["policy", "show", str(ablation)])
    assert result.exit_code == 0, result.output
    params = yaml.safe_load(result.output)["policy"]["params"]
    assert params["index_engine_capacity"] is False and params["zero_features"] == ["kv_demand_log"]


def test_show_unknown_profile_fails() -> None:
    result = runner.invoke(build_app(), ["policy", "show", "nope"])
    assert result.exit_code == 1
    assert "unknown profile 'nope'" in result.output


def test_show_file_with_bad_params_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\npicker: {type: power-of-two, params: {seed: x}}\n")
    result = runner.invoke(build_app(), ["policy", "show", str(path)])
    assert result.exit_code == 1
    assert "picker (power-of-two).params.seed" in result.output
    good = tmp_path / "good.yml"
    good.write_text("name: good\npicker: {type: round-robin}\n")
    assert runner.invoke(build_app(), ["policy", "show", str(good)]).exit_code == 0


def test_bench_runs_and_rejects_unknown_profiles() -> None:
    result = runner.invoke(
        build_app(),
        ["policy", "bench", "--profile", "llm-d", "--blocks", "8", "--decisions", "20", "--candidates", "3"],
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].startswith("llm-d")
    result = runner.invoke(build_app(), ["policy", "bench", "--profile", "nope"])
    assert result.exit_code == 1 and "unknown profile" in result.output
