"""The declarative spec: YAML loading, field-naming errors, shorthand resolution, build."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from lodestar.workload.build import build_workload
from lodestar.workload.errors import SpecError, TraceFormatError
from lodestar.workload.spec import WorkloadSpec, load_spec, parse_spec
from lodestar.workload.summary import summarize
from lodestar.workload.transform import mean_rate_rps

Writer = Callable[[str, str], Path]

GENERATOR_YAML = """
name: chat-mix
seed: 7
source:
  kind: generator
  duration_s: 120
  arrivals: {process: gamma, rate_rps: 8, cv: 2}
  lengths: {kind: named, name: sharegpt}
  tenants: {count: 3, system_prompt_tokens: 800}
  sessions: {concurrent: 6, mean_turns: 4}
  long_context: {fraction: 0.05}
drift:
  - {kind: rate_ramp, start_s: 60, end_s: 120, end_factor: 2}
  - {kind: slowdown, at_s: 30, instance_id: a10g-1, factor: 3}
"""


def test_yaml_spec_builds_the_same_workload_every_time(write: Writer, traces_dir: Path) -> None:
    spec = load_spec(write("spec.yaml", GENERATOR_YAML))
    one = build_workload(spec, traces_dir=traces_dir)
    two = build_workload(load_spec(write("again.yaml", GENERATOR_YAML)), traces_dir=traces_dir)
    other = build_workload(spec.model_copy(update={"seed": 8}), traces_dir=traces_dir)
    assert one == two
    assert one.requests != other.requests
    assert one.name == "chat-mix" and len(one.faults) == 1
    got = summarize(one.requests)
    assert got.tenants == 3 and got.sessions > 10 and got.prefix_reuse_frac > 0.3
    assert max(r.arrival_s for r in one.requests) < 120


# (id, spec data, field named in the error, fragment of the message)
BAD_SPECS = [
    ("no-source", {"seed": 1}, "source", "Field required"),
    ("bad-kind", {"source": {"kind": "database"}}, "source", "does not match"),
    ("typo", {"source": {"kind": "named", "name": "azure-code"}, "sped": 2}, "sped", "Extra inputs"),
    ("unknown-name", {"source": {"kind": "named", "name": "azure-cod"}}, "source.name", "Input should be"),
    (
        "negative-rate",
        {
            "source": {
                "kind": "generator",
                "duration_s": 10,
                "arrivals": {"process": "poisson", "rate_rps": -1},
                "lengths": {"kind": "fixed", "input_tokens": 1, "output_tokens": 1},
            }
        },
        "source.arrivals.rate_rps",
        "greater than 0",
    ),
    (
        "missing-cv",
        {
            "source": {
                "kind": "generator",
                "duration_s": 10,
                "arrivals": {"process": "gamma", "rate_rps": 1},
                "lengths": {"kind": "fixed", "input_tokens": 1, "output_tokens": 1},
            }
        },
        "source.arrivals.cv",
        "Field required",
    ),
    (
        "segment-size",
        {
            "source": {
                "kind": "generator",
                "duration_s": 10,
                "segment_tokens": 100,
                "arrivals": {"process": "poisson", "rate_rps": 1},
                "lengths": {"kind": "fixed", "input_tokens": 1, "output_tokens": 1},
            }
        },
        "source.segment_tokens",
        "multiple of 16",
    ),
    (
        "both-rates",
        {"source": {"kind": "named", "name": "azure-code"}, "speedup": 2, "target_rps": 3},
        None,
        "not both",
    ),
    (
        "ramp-order",
        {
            "source": {"kind": "named", "name": "azure-code"},
            "drift": [{"kind": "rate_ramp", "start_s": 9, "end_s": 3, "end_factor": 2}],
        },
        "drift.0",
        "start_s < end_s",
    ),
    (
        "amplitude",
        {
            "source": {"kind": "named", "name": "azure-code"},
            "drift": [{"kind": "day_night", "period_s": 60, "amplitude": 1.5}],
        },
        "drift.0.amplitude",
        "less than 1",
    ),
    ("infinite", {"source": {"kind": "named", "name": "azure-code"}, "speedup": float("inf")}, "speedup", "finite"),
]


@pytest.mark.parametrize(
    ("data", "field", "fragment"), [row[1:] for row in BAD_SPECS], ids=[row[0] for row in BAD_SPECS]
)
def test_bad_spec_fields_are_named(data: dict[str, object], field: str | None, fragment: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(data, "my.yaml")
    assert caught.value.field == field
    assert fragment in caught.value.reason
    assert str(caught.value).startswith("my.yaml")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("source: [unclosed\n", "not valid YAML at line"),
        ("- just\n- a list\n", "expected a YAML mapping"),
        ("", "expected a YAML mapping"),
    ],
)
def test_bad_yaml_is_a_spec_error(write: Writer, text: str, fragment: str) -> None:
    with pytest.raises(SpecError, match=fragment):
        load_spec(write("bad.yaml", text))


def test_missing_spec_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="file not found") as caught:
        load_spec(tmp_path / "absent.yaml")
    assert str(tmp_path / "absent.yaml") in str(caught.value)


@pytest.mark.parametrize(
    ("source", "field"),
    [
        ({"kind": "named", "name": "mooncake-synthetic", "rate_rps": 4}, "source.rate_rps"),
        ({"kind": "named", "name": "sharegpt", "chunk": 2}, "source.chunk"),
        ({"kind": "named", "name": "servegen-m-large", "rate_rps": 4}, "source.rate_rps"),
    ],
)
def test_shorthand_fields_that_do_not_apply_are_rejected(
    traces_dir: Path, source: dict[str, object], field: str
) -> None:
    with pytest.raises(SpecError, match="does not apply") as caught:
        build_workload(parse_spec({"source": source}, "t"), traces_dir=traces_dir)
    assert caught.value.field == field


def test_servegen_names_cannot_be_length_distributions(traces_dir: Path) -> None:
    source = {
        "kind": "generator",
        "duration_s": 10,
        "arrivals": {"process": "poisson", "rate_rps": 1},
        "lengths": {"kind": "named", "name": "servegen-m-large"},
    }
    with pytest.raises(SpecError) as caught:
        build_workload(parse_spec({"source": source}, "t"), traces_dir=traces_dir)
    assert caught.value.field == "source.lengths"


def test_missing_trace_in_a_spec_names_the_file(tmp_path: Path) -> None:
    spec = parse_spec({"source": {"kind": "trace", "format": "azure", "path": str(tmp_path / "gone.csv")}}, "t")
    with pytest.raises(TraceFormatError, match="file not found") as caught:
        build_workload(spec)
    assert caught.value.path == tmp_path / "gone.csv"


def test_traces_dir_comes_from_the_environment_or_defaults_next_to_the_repo(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, traces_dir: Path
) -> None:
    spec = parse_spec({"source": {"kind": "named", "name": "mooncake-synthetic"}}, "t")
    monkeypatch.setenv("LODESTAR_TRACES_DIR", str(traces_dir))
    monkeypatch.chdir(tmp_path)
    assert len(build_workload(spec).requests) == 3_993
    monkeypatch.setenv("LODESTAR_TRACES_DIR", str(tmp_path))
    with pytest.raises(SpecError, match="LODESTAR_TRACES_DIR"):
        build_workload(spec)
    monkeypatch.delenv("LODESTAR_TRACES_DIR")
    monkeypatch.chdir(Path(__file__).resolve().parents[3])  # default: ../shared/traces from the repo root
    assert len(build_workload(spec).requests) == 3_993


def test_slice_then_target_rate_on_a_trace(traces_dir: Path) -> None:
    spec = parse_spec(
        {
            "source": {"kind": "named", "name": "azure-code"},
            "slice": {"start_s": 600, "duration_s": 600},
            "target_rps": 10,
        },
        "t",
    )
    requests = list(build_workload(spec, traces_dir=traces_dir).requests)
    sliced = parse_spec(
        {"source": {"kind": "named", "name": "azure-code"}, "slice": {"start_s": 600, "duration_s": 600}}, "t"
    )
    raw = build_workload(sliced, traces_dir=traces_dir).requests
    assert len(requests) == len(raw) > 1000
    assert mean_rate_rps(requests) == pytest.approx(10.0, rel=1e-12)
    assert all(0 <= r.arrival_s < 600 for r in raw)


def test_speedup_of_a_trace_divides_its_times(traces_dir: Path) -> None:
    base = build_workload(
        parse_spec({"source": {"kind": "named", "name": "mooncake-synthetic"}}, "t"), traces_dir=traces_dir
    )
    fast = build_workload(
        parse_spec({"source": {"kind": "named", "name": "mooncake-synthetic"}, "speedup": 4}, "t"),
        traces_dir=traces_dir,
    )
    assert [r.arrival_s / 4 for r in base.requests] == [r.arrival_s for r in fast.requests]
    assert [dataclasses.replace(r, arrival_s=0.0) for r in base.requests] == [
        dataclasses.replace(r, arrival_s=0.0) for r in fast.requests
    ]


def test_target_rate_of_a_generator_sets_its_arrival_rate() -> None:
    source = {
        "kind": "generator",
        "duration_s": 500,
        "arrivals": {"process": "poisson", "rate_rps": 1},
        "lengths": {"kind": "fixed", "input_tokens": 10, "output_tokens": 1},
    }
    workload = build_workload(parse_spec({"source": source, "target_rps": 20}, "t"))
    assert len(workload.requests) / 500 == pytest.approx(20, rel=0.03)


def test_lengths_can_come_from_a_trace_file(traces_dir: Path) -> None:
    source = {
        "kind": "generator",
        "duration_s": 100,
        "arrivals": {"process": "poisson", "rate_rps": 5},
        "lengths": {
            "kind": "trace",
            "format": "azure",
            "path": str(traces_dir / "azure-llm-inference-2023/AzureLLMInferenceTrace_code.csv"),
        },
    }
    spec = WorkloadSpec.model_validate({"source": source})
    requests = build_workload(spec).requests
    code = build_workload(parse_spec({"source": {"kind": "named", "name": "azure-code"}}, "t"), traces_dir=traces_dir)
    pairs = {(r.prompt.n_tokens, r.output_tokens) for r in code.requests}
    assert requests and all((r.prompt.n_tokens, r.output_tokens) in pairs for r in requests)


@pytest.mark.parametrize(
    ("source", "field"),
    [
        ({"kind": "named", "name": "azure-conv"}, "source"),
        (
            {
                "kind": "generator",
                "duration_s": 10,
                "arrivals": {"process": "poisson", "rate_rps": 1},
                "lengths": {"kind": "named", "name": "sharegpt"},
            },
            "source.lengths",
        ),
    ],
)
def test_a_shared_trace_missing_from_the_traces_dir_names_the_setting(
    tmp_path: Path, source: dict[str, object], field: str
) -> None:
    """The default directory is relative to the working directory: run elsewhere, a name used
    to fail with only '<path>: file not found'."""
    with pytest.raises(SpecError, match="LODESTAR_TRACES_DIR") as caught:
        build_workload(parse_spec({"source": source}, "t"), traces_dir=tmp_path)
    assert caught.value.field == field and str(tmp_path) in caught.value.reason
