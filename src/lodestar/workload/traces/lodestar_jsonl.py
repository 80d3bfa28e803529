"""Lodestar's own request-stream file (``lodestar workload export``): one JSON object per
request with every :class:`RequestSpec` field, so reading it back rebuilds the stream exactly
(floats are written with ``repr`` precision and round-trip bit for bit)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lodestar.workload.errors import TraceFormatError
from lodestar.workload.request import DEFAULT_MODEL, Prompt, RequestSpec
from lodestar.workload.traces.rows import LoadedTrace, read_text


class RequestRecord(BaseModel):
    """The on-disk form of one :class:`RequestSpec` (flat: the prompt's fields inlined)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: str
    arrival_s: float = Field(ge=0, allow_inf_nan=False)
    n_tokens: int = Field(ge=1)
    segments: tuple[int, ...] = ()
    segment_tokens: int = Field(ge=16, multiple_of=16)
    output_tokens: int = Field(ge=1)
    model: str = DEFAULT_MODEL
    session_id: str | None = None
    tenant: str | None = None
    tags: tuple[str, ...] = ()

    @classmethod
    def of(cls, request: RequestSpec) -> RequestRecord:
        prompt = request.prompt
        return cls(
            request_id=request.request_id,
            arrival_s=request.arrival_s,
            n_tokens=prompt.n_tokens,
            segments=prompt.segments,
            segment_tokens=prompt.segment_tokens,
            output_tokens=request.output_tokens,
            model=request.model,
            session_id=request.session_id,
            tenant=request.tenant,
            tags=request.tags,
        )

    def to_spec(self) -> RequestSpec:
        return RequestSpec(
            request_id=self.request_id,
            arrival_s=self.arrival_s,
            prompt=Prompt(self.n_tokens, self.segments, self.segment_tokens),
            output_tokens=self.output_tokens,
            model=self.model,
            session_id=self.session_id,
            tenant=self.tenant,
            tags=self.tags,
        )


def dump_requests(requests: Iterable[RequestSpec]) -> str:
    """The jsonl text of a stream (one line per request, in stream order)."""
    return "".join(RequestRecord.of(r).model_dump_json() + "\n" for r in requests)


def load_lodestar_jsonl(path: Path) -> LoadedTrace:
    """Read an exported stream as is: times are not re-based, order is stable-sorted by arrival."""
    requests: list[RequestSpec] = []
    for index, text in enumerate(read_text(path).splitlines()):
        if not text.strip():
            continue
        try:
            requests.append(RequestRecord.model_validate_json(text).to_spec())
        except ValidationError as err:
            first = err.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or None
            raise TraceFormatError(path, first["msg"], line=index + 1, field=field) from None
    if not requests:
        raise TraceFormatError(path, "no requests")
    requests.sort(key=lambda r: r.arrival_s)
    return LoadedTrace(path, requests)
