"""Bad trace input: every reader raises TraceFormatError naming file, line and field; the
token policy skips empty prompts and clamps empty outputs, counting both."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from lodestar.workload.build import load_trace
from lodestar.workload.catalog import TraceFormat
from lodestar.workload.errors import TraceFormatError
from lodestar.workload.traces.azure import parse_timestamp_ns
from lodestar.workload.traces.length_stats import load_length_stats
from lodestar.workload.traces.servegen import load_servegen

Writer = Callable[[str, str], Path]

MOONCAKE_OK = '{"timestamp": 0, "input_length": 600, "output_length": 5, "hash_ids": [1, 2]}\n'
AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
AZURE_OK = "2023-11-16 18:17:03.9799600,100,10\n"
SPLIT_HEADER = "arrived_at,num_prefill_tokens,num_decode_tokens\n"

# (id, format, file name, content, line, field, fragment of the reason)
BAD_TRACES = [
    ("mooncake-not-json", "mooncake", "t.jsonl", MOONCAKE_OK + "{oops\n", 2, None, "not a JSON object"),
    ("mooncake-array", "mooncake", "t.jsonl", "[1, 2]\n", 1, None, "expected a JSON object"),
    (
        "mooncake-missing-key",
        "mooncake",
        "t.jsonl",
        MOONCAKE_OK + '{"timestamp": 5, "output_length": 5, "hash_ids": []}\n',
        2,
        "input_length",
        "expected an integer",
    ),
    (
        "mooncake-hash-ids",
        "mooncake",
        "t.jsonl",
        '{"timestamp": 0, "input_length": 10, "output_length": 5, "hash_ids": "ab"}\n',
        1,
        "hash_ids",
        "list of non-negative integers",
    ),
    (
        "mooncake-timestamp",
        "mooncake",
        "t.jsonl",
        '{"timestamp": "soon", "input_length": 10, "output_length": 5, "hash_ids": []}\n',
        1,
        "timestamp",
        "number >= 0",
    ),
    (
        "mooncake-negative-output",
        "mooncake",
        "t.jsonl",
        '{"timestamp": 0, "input_length": 10, "output_length": -3, "hash_ids": []}\n',
        1,
        "output_length",
        "negative token count",
    ),
    ("azure-header", "azure", "a.csv", "TIME,ContextTokens,GeneratedTokens\n" + AZURE_OK, 1, "TIMESTAMP", "lacks"),
    ("azure-timestamp", "azure", "a.csv", AZURE_HEADER + "2023/11/16 18:17:03,100,10\n", 2, "TIMESTAMP", "YYYY"),
    (
        "azure-tokens",
        "azure",
        "a.csv",
        AZURE_HEADER + AZURE_OK + "2023-11-16 18:17:04.1,many,10\n",
        3,
        "ContextTokens",
        "integer",
    ),
    ("azure-columns", "azure", "a.csv", AZURE_HEADER + "2023-11-16 18:17:04.1,10\n", 2, None, "expected 3 columns"),
    (
        "azure-negative",
        "azure",
        "a.csv",
        AZURE_HEADER + "2023-11-16 18:17:04.1,-1,10\n",
        2,
        "ContextTokens",
        "negative",
    ),
    ("azure-empty", "azure", "a.csv", "", 1, None, "empty file"),
    ("azure-header-only", "azure", "a.csv", AZURE_HEADER, None, None, "no requests"),
    (
        "split-header",
        "splitwise",
        "s.csv",
        "at,num_prefill_tokens,num_decode_tokens\n0,1,1\n",
        1,
        "arrived_at",
        "lacks",
    ),
    ("split-arrival", "splitwise", "s.csv", SPLIT_HEADER + "-1.0,5,5\n", 2, "arrived_at", ">= 0"),
    ("split-nan", "splitwise", "s.csv", SPLIT_HEADER + "nan,5,5\n", 2, "arrived_at", "finite"),
    ("split-fraction", "splitwise", "s.csv", SPLIT_HEADER + "0.5,5.5,5\n", 2, "num_prefill_tokens", "integer"),
    (
        "jsonl-field",
        "lodestar-jsonl",
        "e.jsonl",
        '{"request_id": "a", "arrival_s": 0, "n_tokens": 0}\n',
        1,
        "n_tokens",
        "greater than or equal to 1",
    ),
]


@pytest.mark.parametrize(
    ("format", "name", "content", "line", "field", "fragment"),
    [row[1:] for row in BAD_TRACES],
    ids=[row[0] for row in BAD_TRACES],
)
def test_bad_trace_rows_name_file_line_and_field(
    write: Writer,
    format: TraceFormat,
    name: str,
    content: str,
    line: int | None,
    field: str | None,
    fragment: str,
) -> None:
    path = write(name, content)
    with pytest.raises(TraceFormatError) as caught:
        load_trace(path, format)
    err = caught.value
    assert (err.path, err.line, err.field) == (path, line, field)
    assert fragment in err.reason
    message = str(err)
    assert str(path) in message and fragment in message
    if line is not None:
        assert f"line {line}" in message
    if field is not None:
        assert repr(field) in message


@pytest.mark.parametrize("format", ["mooncake", "azure", "splitwise", "lodestar-jsonl"])
def test_missing_file_and_directory_are_clear_errors(tmp_path: Path, format: TraceFormat) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(TraceFormatError, match="file not found") as caught:
        load_trace(missing, format)
    assert caught.value.path == missing and str(missing) in str(caught.value)
    with pytest.raises(TraceFormatError, match="is a directory"):
        load_trace(tmp_path, format)


def test_non_utf8_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bin.csv"
    path.write_bytes(b"TIMESTAMP,ContextTokens,GeneratedTokens\n\xff\xfe\n")
    with pytest.raises(TraceFormatError, match="not UTF-8"):
        load_trace(path, "azure")


# (id, format, content, requests kept, skipped rows, clamped outputs, kept (input, output))
TOKEN_POLICY = [
    (
        "mooncake",
        "mooncake",
        '{"timestamp": 0, "input_length": 0, "output_length": 5, "hash_ids": []}\n'
        '{"timestamp": 7, "input_length": 9, "output_length": 0, "hash_ids": [3]}\n'
        '{"timestamp": 9, "input_length": 4, "output_length": 2, "hash_ids": [4]}\n',
        (1, 1),
        [(9, 1), (4, 2)],
    ),
    (
        "azure",
        "azure",
        AZURE_HEADER + "2023-11-16 18:00:00.0,0,4\n2023-11-16 18:00:01.5,7,0\n",
        (1, 1),
        [(7, 1)],
    ),
    ("splitwise", "splitwise", SPLIT_HEADER + "0.0,0,0\n1.0,3,0\n2.0,3,3\n", (1, 1), [(3, 1), (3, 3)]),
]


@pytest.mark.parametrize(
    ("format", "content", "counts", "kept"), [row[1:] for row in TOKEN_POLICY], ids=[row[0] for row in TOKEN_POLICY]
)
def test_token_policy_skips_empty_prompts_and_clamps_empty_outputs(
    write: Writer, format: TraceFormat, content: str, counts: tuple[int, int], kept: list[tuple[int, int]]
) -> None:
    loaded = load_trace(write("t.data", content), format)
    assert (loaded.skipped_rows, loaded.clamped_outputs) == counts
    assert [(r.prompt.n_tokens, r.output_tokens) for r in loaded.requests] == kept
    assert loaded.requests[0].arrival_s == 0.0  # re-based to the first kept request


def test_mooncake_rows_keep_hash_ids_and_millisecond_times(write: Writer) -> None:
    path = write(
        "m.jsonl",
        '{"timestamp": 1500, "input_length": 1100, "output_length": 3, "hash_ids": [5, 6, 7]}\n\n'
        '{"timestamp": 250, "input_length": 10, "output_length": 2, "hash_ids": [5]}\n',
    )
    requests = load_trace(path, "mooncake").requests
    assert [r.arrival_s for r in requests] == [0.0, 1.25]  # sorted, re-based, ms -> s
    assert [r.request_id for r in requests] == ["m:3", "m:1"]  # <stem>:<line>
    assert requests[1].prompt.segments == (5, 6, 7) and requests[1].prompt.segment_tokens == 512


@pytest.mark.parametrize(
    ("text", "expected_ns"),
    [
        ("1970-01-01 00:00:01.0000001", 1_000_000_100),
        ("1970-01-01 00:00:00", 0),
        ("2023-11-16 18:17:03.9799600", 1_700_158_623_979_960_000),
    ],
)
def test_azure_timestamps_parse_exactly(text: str, expected_ns: int) -> None:
    assert parse_timestamp_ns(Path("x.csv"), 2, text) == expected_ns


def test_length_stats_header_and_rows_are_checked(write: Writer) -> None:
    with pytest.raises(TraceFormatError) as caught:
        load_length_stats(write("l.csv", "prefill,num_decode_tokens\n1,2\n"))
    assert (caught.value.line, caught.value.field) == (1, "num_prefill_tokens")
    with pytest.raises(TraceFormatError) as caught:
        load_length_stats(write("l.csv", "num_prefill_tokens,num_decode_tokens,pd_ratio\n1,2,0.5\nx,2,1\n"))
    assert (caught.value.line, caught.value.field) == (3, "num_prefill_tokens")
    loaded = load_length_stats(write("l.csv", "num_prefill_tokens,num_decode_tokens\n0,4\n5,0\n6,7\n"))
    assert (loaded.skipped_rows, loaded.clamped_outputs) == (1, 1)
    assert loaded.lengths.input_tokens.tolist() == [5, 6] and loaded.lengths.output_tokens.tolist() == [1, 7]


SERVEGEN_DATASET = {"0": {"input_tokens": "{10: 0.5, 20: 0.5}", "output_tokens": "{0: 0.25, 3: 0.75}"}}

# (id, trace csv, dataset, file at fault ("trace"/"dataset"), line, field, fragment)
BAD_SERVEGEN = [
    ("pattern", "0,1.0,1.0,Lognormal,1,1\n", SERVEGEN_DATASET, "trace", 1, "pattern", "Gamma, Weibull"),
    ("no-pattern", "0,1.0,1.0,,0,0\n", SERVEGEN_DATASET, "trace", 1, "pattern", "needs a pattern"),
    ("columns", "0,1.0,1.0,Gamma,1\n", SERVEGEN_DATASET, "trace", 1, None, "expected 6 columns"),
    (
        "uneven",
        "0,1,1,Gamma,1,1\n600,1,1,Gamma,1,1\n900,1,1,Gamma,1,1\n",
        SERVEGEN_DATASET,
        "trace",
        3,
        "window_start_s",
        "evenly",
    ),
    ("order", "600,1,1,Gamma,1,1\n0,1,1,Gamma,1,1\n", SERVEGEN_DATASET, "trace", 2, "window_start_s", "increase"),
    ("shape", "0,1,1,Weibull,0,1\n", SERVEGEN_DATASET, "trace", 1, "shape", "> 0"),
    (
        "literal",
        "0,1,1,Gamma,1,1\n",
        {"0": {"input_tokens": "{10: }", "output_tokens": "{}"}},
        "dataset",
        None,
        "0.input_tokens",
        "dict literal",
    ),
    ("key", "0,1,1,Gamma,1,1\n", {"later": SERVEGEN_DATASET["0"]}, "dataset", None, "later", "window start"),
    (
        "empty",
        "0,1,1,Gamma,1,1\n",
        {"0": {"input_tokens": "{}", "output_tokens": "{}"}},
        "dataset",
        None,
        None,
        "every period",
    ),
    (
        "negative",
        "0,1,1,Gamma,1,1\n",
        {"0": {"input_tokens": "{-1: 1.0}", "output_tokens": "{1: 1.0}"}},
        "dataset",
        None,
        "0.input_tokens",
        ">= 0",
    ),
]


@pytest.mark.parametrize(
    ("trace", "dataset", "culprit", "line", "field", "fragment"),
    [row[1:] for row in BAD_SERVEGEN],
    ids=[row[0] for row in BAD_SERVEGEN],
)
def test_bad_servegen_files_name_file_line_and_field(
    write: Writer,
    trace: str,
    dataset: object,
    culprit: str,
    line: int | None,
    field: str | None,
    fragment: str,
) -> None:
    paths = {"trace": write("chunk-0-trace.csv", trace), "dataset": write("chunk-0-dataset.json", json.dumps(dataset))}
    with pytest.raises(TraceFormatError) as caught:
        load_servegen(paths["trace"])
    assert (caught.value.path, caught.value.line, caught.value.field) == (paths[culprit], line, field)
    assert fragment in caught.value.reason


def test_servegen_zero_token_mass_follows_the_token_policy(write: Writer) -> None:
    write("chunk-0-dataset.json", json.dumps(SERVEGEN_DATASET))
    client = load_servegen(write("chunk-0-trace.csv", "0,2.0,1.0,Gamma,1.0,0.5\n"))
    pmf = client.lengths_at(0.0)
    assert pmf.output_values.tolist() == [1, 3] and pmf.output_probs.tolist() == [0.25, 0.75]
    with pytest.raises(TraceFormatError, match="file not found"):
        load_servegen(write("chunk-1-trace.csv", "0,1,1,Gamma,1,1\n"))  # no chunk-1-dataset.json
