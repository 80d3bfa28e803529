"""Profiles: shapes derived from config, vLLM defaults per GPU, KV capacity, cluster files."""

from __future__ import annotations

from pathlib import Path

import pytest

from lodestar.cluster.spec import ClusterFileError, load_cluster, preset_names
from lodestar.engine.calibration import validate
from lodestar.engine.profiles import UnknownProfileError, instance_profile, model


@pytest.mark.parametrize(
    ("name", "params_b", "kv_bytes"),
    [("llama-3-8b", 8.03, 131_072), ("llama-3-70b", 70.55, 327_680), ("llama-2-7b", 6.74, 524_288)],
)
def test_model_shapes(name: str, params_b: float, kv_bytes: int) -> None:
    m = model(name)
    assert m.total_params / 1e9 == pytest.approx(params_b, abs=0.01)
    assert m.kv_bytes_per_token == kv_bytes


@pytest.mark.parametrize(
    ("gpu", "batched", "seqs"),
    [("H100-SXM", 8192, 1024), ("A100-80GB", 2048, 256), ("L40S", 2048, 256), ("A10G", 2048, 256), ("L4", 2048, 256)],
)
def test_vllm_batch_defaults_follow_get_batch_defaults(gpu: str, batched: int, seqs: int) -> None:
    p = instance_profile(gpu, "llama-3-8b")
    assert (p.batched_tokens, p.seqs_limit) == (batched, seqs)
    assert p.block_size == 16


def test_kv_capacity_and_context_limit() -> None:
    h100 = instance_profile("H100-SXM", "llama-3-8b")
    a10g = instance_profile("A10G", "llama-3-8b")
    assert h100.context_limit == 131_072
    assert a10g.context_limit == a10g.num_gpu_blocks * 16 < 32_768  # capped by the KV cache
    assert instance_profile("A10G", "llama-3-8b", max_model_len=8192).context_limit == 8192
    assert instance_profile("H100-SXM", "llama-3-8b", num_gpu_blocks_override=10).num_gpu_blocks == 10
    # 70B does not fit one 80 GB GPU: no KV left.
    assert instance_profile("A100-80GB", "llama-3-70b").kv_capacity_tokens == 0
    assert instance_profile("A100-80GB", "llama-3-70b", tp=4).kv_capacity_tokens > 400_000


def test_unknown_names_fail_clearly() -> None:
    with pytest.raises(UnknownProfileError, match="unknown hardware 'B200'"):
        instance_profile("B200", "llama-3-8b")
    with pytest.raises(UnknownProfileError, match="unknown model"):
        instance_profile("H100-SXM", "gpt-5")


def test_presets_expand_to_named_instances() -> None:
    assert {"homo-h100x8", "hetero-mix8"} <= set(preset_names())
    hetero = load_cluster("hetero-mix8").instances()
    assert [i.instance_id for i in hetero] == [
        "h100-sxm-0",
        "h100-sxm-1",
        "a100-80gb-0",
        "a100-80gb-1",
        "l40s-0",
        "l40s-1",
        "a10g-0",
        "a10g-1",
    ]
    assert {i.model_name for i in load_cluster("homo-h100x8").instances()} == {"llama-3-8b"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nmodel: llama-3-8b\ngroups: []\n", "groups"),
        ("name: x\nmodel: llama-3-8b\ngroups:\n  - hardware: B200\n", "unknown hardware"),
        ("name: x\nmodel: llama-3-8b\ngroups:\n  - hardware: L4\n    count: 0\n", "count"),
        ("name: x\nmodel: llama-3-8b\ngroups:\n  - {hardware: L4, ids: [a, b]}\n", "ids has 2"),
        ("name: x\nmodel: llama-3-8b\ngroups:\n  - {hardware: L4, ids: [a]}\n  - {hardware: A10G, ids: [a]}\n", "dup"),
        ("name: [unclosed\n", "not valid YAML"),
        ("name: x\nmodel: llama-3-8b\ngroups:\n  - {hardware: L4, colour: red}\n", "colour"),
    ],
)
def test_bad_cluster_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ClusterFileError, match=message):
        load_cluster(path)


def test_unknown_preset_and_missing_file() -> None:
    with pytest.raises(ClusterFileError, match="presets are"):
        load_cluster("no-such-cluster")
    with pytest.raises(ClusterFileError, match="cannot read"):
        load_cluster("/nonexistent/c.yaml")


def test_engine_model_stays_within_calibration_tolerance() -> None:
    rows, skipped = validate()
    assert len(rows) >= 30 and skipped
    bad = [(r.source, r.instance, r.point, round(r.error_frac, 3)) for r in rows if not r.within]
    assert bad == []
