"""Shorthand names for the shared traces, resolved against ``LODESTAR_TRACES_DIR``.

Traces are only ever read from a directory given at run time (this setting, default
``../shared/traces`` relative to the current working directory); nothing is imported from
the shared directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SharedTraceName = Literal[
    "mooncake-conversation",
    "mooncake-synthetic",
    "azure-code",
    "azure-conv",
    "splitwise-code",
    "splitwise-conv",
    "sharegpt",
    "arxiv",
    "servegen-m-large",
    "servegen-deepseek-r1",
]
TraceFormat = Literal["mooncake", "azure", "splitwise", "lodestar-jsonl"]
EntryKind = Literal["trace", "lengths", "servegen"]


class TracesSettings(BaseSettings):
    """Where the shared traces live; env ``LODESTAR_TRACES_DIR``."""

    model_config = SettingsConfigDict(env_prefix="LODESTAR_", extra="ignore")

    traces_dir: Path = Field(default=Path("../shared/traces"), description="directory of the shared traces")


@dataclass(frozen=True)
class SharedTrace:
    """One shorthand: what it is and where it lives under the traces directory.

    ``relative_path`` of a ServeGen entry has a ``{chunk}`` placeholder for the client index.
    """

    name: SharedTraceName
    kind: EntryKind
    relative_path: str
    format: TraceFormat | None = None
    description: str = ""

    def path(self, traces_dir: Path, chunk: int = 0) -> Path:
        return traces_dir / self.relative_path.format(chunk=chunk)


CATALOG: tuple[SharedTrace, ...] = (
    SharedTrace(
        "mooncake-conversation",
        "trace",
        "mooncake-fast25/conversation_trace.jsonl",
        "mooncake",
        "Kimi conversation requests with prefix hash ids, 1 h",
    ),
    SharedTrace(
        "mooncake-synthetic",
        "trace",
        "mooncake-fast25/synthetic_trace.jsonl",
        "mooncake",
        "Mooncake synthetic multi-turn trace, Poisson arrivals",
    ),
    SharedTrace(
        "azure-code",
        "trace",
        "azure-llm-inference-2023/AzureLLMInferenceTrace_code.csv",
        "azure",
        "Azure 2023 code completion, 1 h, no prefix info",
    ),
    SharedTrace(
        "azure-conv",
        "trace",
        "azure-llm-inference-2023/AzureLLMInferenceTrace_conv.csv",
        "azure",
        "Azure 2023 conversation, 1 h, no prefix info",
    ),
    SharedTrace(
        "splitwise-code",
        "trace",
        "vidur-processed-traces/splitwise_code.csv",
        "splitwise",
        "Vidur's relative-time copy of azure-code",
    ),
    SharedTrace(
        "splitwise-conv",
        "trace",
        "vidur-processed-traces/splitwise_conv.csv",
        "splitwise",
        "Vidur's relative-time copy of azure-conv",
    ),
    SharedTrace(
        "sharegpt",
        "lengths",
        "sharegpt-length-stats/sharegpt_8k_filtered_stats_llama2_tokenizer.csv",
        None,
        "ShareGPT lengths (<= 8k) + Poisson arrivals",
    ),
    SharedTrace(
        "arxiv",
        "lengths",
        "vidur-processed-traces/arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv",
        None,
        "arXiv summarisation lengths + Poisson arrivals",
    ),
    SharedTrace(
        "servegen-m-large",
        "servegen",
        "servegen/language/m-large/chunk-{chunk}-trace.csv",
        None,
        "ServeGen language m-large client (chunk 0 by default)",
    ),
    SharedTrace(
        "servegen-deepseek-r1",
        "servegen",
        "servegen/reason/deepseek-r1/chunk-{chunk}-trace.csv",
        None,
        "ServeGen deepseek-r1 reasoning client (chunk 0 by default)",
    ),
)

SHARED_TRACE_NAMES: tuple[str, ...] = get_args(SharedTraceName)


def shared_trace(name: str) -> SharedTrace | None:
    """The catalog entry called ``name``, or ``None``."""
    return next((entry for entry in CATALOG if entry.name == name), None)
