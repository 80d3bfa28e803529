"""The declarative workload spec (YAML-loadable pydantic models) and its loader.

A spec names one *source* (a trace file, a shared-trace shorthand, a ServeGen client, or a
generator), optional slicing and rate scaling of that source, a seed, and *drift* items (rate
ramp, day/night cycle, prompt-mix shift, instance slowdown/restore). ``build_workload`` in
:mod:`lodestar.workload.build` turns it into a :class:`~lodestar.workload.workload.Workload`;
its docstring gives the order in which the pieces apply. Relative paths are relative to the
current working directory. Times are seconds; every ``at_s`` and ramp time is on the final
(output) clock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lodestar import tokenizer
from lodestar.workload.catalog import SharedTraceName, TraceFormat
from lodestar.workload.errors import SpecError
from lodestar.workload.request import DEFAULT_MODEL

PosFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
PosInt = Annotated[int, Field(ge=1)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# --- sources ---------------------------------------------------------------------------


class TraceSource(_Spec):
    """A request trace file in ``format``."""

    kind: Literal["trace"]
    format: TraceFormat
    path: Path


class NamedSource(_Spec):
    """A shared-trace shorthand (``lodestar workload list``).

    ``rate_rps`` (Poisson rate) applies to the length-only names (``sharegpt``, ``arxiv``);
    ``duration_s`` to those (default 600 s) and to ServeGen names (default 3600 s), with
    ``start_s`` and ``chunk`` (client index) for ServeGen only.
    """

    kind: Literal["named"]
    name: SharedTraceName
    rate_rps: PosFloat = 1.0
    duration_s: PosFloat | None = None
    start_s: NonNegFloat = 0.0
    chunk: Annotated[int, Field(ge=0)] = 0


class ServeGenSource(_Spec):
    """One ServeGen client, generated over [start_s, start_s + duration_s) of its clock."""

    kind: Literal["servegen"]
    trace_path: Path
    dataset_path: Path | None = None
    start_s: NonNegFloat = 0.0
    duration_s: PosFloat = 3600.0


class PoissonConfig(_Spec):
    process: Literal["poisson"]
    rate_rps: PosFloat


class GammaConfig(_Spec):
    """Gamma renewal arrivals; ``cv`` > 1 is burstier than Poisson."""

    process: Literal["gamma"]
    rate_rps: PosFloat
    cv: PosFloat


ArrivalsConfig = Annotated[PoissonConfig | GammaConfig, Field(discriminator="process")]


class LengthStatsLengths(_Spec):
    """A ``num_prefill_tokens,num_decode_tokens,...`` CSV, resampled row by row."""

    kind: Literal["length-stats"]
    path: Path


class TraceLengths(_Spec):
    """The (input, output) pairs of a trace file, resampled row by row."""

    kind: Literal["trace"]
    format: TraceFormat
    path: Path


class NamedLengths(_Spec):
    """The lengths of a shared trace or length-only shorthand (not ServeGen)."""

    kind: Literal["named"]
    name: SharedTraceName


class UniformLengthsConfig(_Spec):
    kind: Literal["uniform"]
    input_min: PosInt
    input_max: PosInt
    output_min: PosInt
    output_max: PosInt

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.input_min > self.input_max or self.output_min > self.output_max:
            raise ValueError("need input_min <= input_max and output_min <= output_max")
        return self


class FixedLengthsConfig(_Spec):
    kind: Literal["fixed"]
    input_tokens: PosInt
    output_tokens: PosInt


LengthsConfig = Annotated[
    LengthStatsLengths | TraceLengths | NamedLengths | UniformLengthsConfig | FixedLengthsConfig,
    Field(discriminator="kind"),
]


class TenantsConfig(_Spec):
    """Tenants with their own system prompts (rounded up to whole segments)."""

    count: PosInt
    system_prompt_tokens: PosInt = 1024
    weights: tuple[NonNegFloat, ...] | None = None

    @model_validator(mode="after")
    def _weights(self) -> Self:
        if self.weights is not None and (len(self.weights) != self.count or sum(self.weights) <= 0):
            raise ValueError(f"weights must have one entry per tenant ({self.count}) and a positive sum")
        return self


class SessionsConfig(_Spec):
    """Multi-turn conversations (see :mod:`lodestar.workload.generator`)."""

    concurrent: PosInt = 32
    mean_turns: Annotated[float, Field(ge=1)] = 4.0
    follow_up_min_tokens: PosInt = 16
    follow_up_max_tokens: PosInt = 256
    max_prompt_tokens: PosInt = 32_768

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.follow_up_min_tokens > self.follow_up_max_tokens:
            raise ValueError("need follow_up_min_tokens <= follow_up_max_tokens")
        return self


class LongContextConfig(_Spec):
    fraction: Annotated[float, Field(ge=0, le=1)]
    min_tokens: PosInt = 8_192
    max_tokens: PosInt = 32_768

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min_tokens > self.max_tokens:
            raise ValueError("need min_tokens <= max_tokens")
        return self


class GeneratorSource(_Spec):
    """Synthetic requests over ``duration_s`` seconds of the final clock."""

    kind: Literal["generator"]
    duration_s: PosFloat
    arrivals: ArrivalsConfig
    lengths: LengthsConfig
    tenants: TenantsConfig | None = None
    sessions: SessionsConfig | None = None
    long_context: LongContextConfig | None = None
    segment_tokens: Annotated[int, Field(ge=tokenizer.BLOCK_SIZE, multiple_of=tokenizer.BLOCK_SIZE)] = 512
    model: str = DEFAULT_MODEL


SourceConfig = Annotated[
    TraceSource | NamedSource | ServeGenSource | GeneratorSource,
    Field(discriminator="kind"),
]


# --- drift -------------------------------------------------------------------------------


class RateRampDrift(_Spec):
    """Rate factor ``start_factor`` until ``start_s``, linear to ``end_factor`` at ``end_s``."""

    kind: Literal["rate_ramp"]
    start_s: NonNegFloat = 0.0
    end_s: PosFloat
    end_factor: PosFloat
    start_factor: PosFloat = 1.0

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.start_s >= self.end_s:
            raise ValueError("need start_s < end_s")
        return self


class DayNightDrift(_Spec):
    """Rate factor ``1 + amplitude·sin(2π(t − phase_s)/period_s)``."""

    kind: Literal["day_night"]
    period_s: PosFloat
    amplitude: Annotated[float, Field(ge=0, lt=1)]
    phase_s: float = 0.0


class MixShiftDrift(_Spec):
    """From ``at_s`` on, requests come from ``source`` instead (sliced and scaled like the main
    source; prefixes are never shared across the shift)."""

    kind: Literal["mix_shift"]
    at_s: NonNegFloat
    source: SourceConfig


class SlowdownDrift(_Spec):
    """Instance ``instance_id`` runs ``factor``× slower from ``at_s`` (an InstanceFault)."""

    kind: Literal["slowdown"]
    at_s: NonNegFloat
    instance_id: Annotated[str, Field(min_length=1)]
    factor: PosFloat


class RestoreDrift(_Spec):
    """Instance ``instance_id`` runs at nominal speed again from ``at_s``."""

    kind: Literal["restore"]
    at_s: NonNegFloat
    instance_id: Annotated[str, Field(min_length=1)]


DriftConfig = Annotated[
    RateRampDrift | DayNightDrift | MixShiftDrift | SlowdownDrift | RestoreDrift,
    Field(discriminator="kind"),
]


# --- the spec ----------------------------------------------------------------------------


class SliceConfig(_Spec):
    """Keep [start_s, start_s + duration_s) of the source clock, re-based to 0."""

    start_s: NonNegFloat = 0.0
    duration_s: PosFloat | None = None


class WorkloadSpec(_Spec):
    """A whole workload (see the module docstring). ``speedup`` and ``target_rps`` exclude
    each other."""

    name: str | None = None
    seed: Annotated[int, Field(ge=0)] = 0
    source: SourceConfig
    slice: SliceConfig | None = None
    speedup: PosFloat | None = None
    target_rps: PosFloat | None = None
    drift: tuple[DriftConfig, ...] = ()

    @model_validator(mode="after")
    def _one_rate(self) -> Self:
        if self.speedup is not None and self.target_rps is not None:
            raise ValueError("give speedup or target_rps, not both")
        return self


def parse_spec(data: object, origin: str) -> WorkloadSpec:
    """Validate already-parsed YAML/JSON data; :class:`SpecError` names ``origin`` and the
    first bad field by its path in the data (e.g. ``source.arrivals.rate_rps``)."""
    try:
        return WorkloadSpec.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = _data_path(data, first["loc"])
        more = f" (and {err.error_count() - 1} more error(s))" if err.error_count() > 1 else ""
        raise SpecError(origin, f"{first['msg']}{more}", field=field or None) from None


def load_spec(path: Path) -> WorkloadSpec:
    """Read and validate a YAML spec file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(str(path), "file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(str(path), f"cannot read file: {err}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SpecError(str(path), f"not valid YAML{where}: {getattr(err, 'problem', None) or err}") from None
    if not isinstance(data, dict):
        raise SpecError(str(path), "expected a YAML mapping with at least a 'source'")
    return parse_spec(data, str(path))


def _data_path(data: object, loc: tuple[int | str, ...]) -> str:
    """The error location as a path in the user's data, dropping union tags pydantic adds."""
    parts: list[str] = []
    node: Any = data
    for item in loc:
        if _has(node, item):
            node = node[item]
            parts.append(str(item))
        elif isinstance(item, str) and not (isinstance(node, dict) and _is_tag(node, item)):
            parts.append(item)  # a missing or extra key: name it
            node = None
    return ".".join(parts)


def _has(node: Any, item: int | str) -> bool:
    if isinstance(node, dict):
        return item in node
    return isinstance(node, list) and isinstance(item, int) and 0 <= item < len(node)


def _is_tag(node: dict[str, Any], item: str) -> bool:
    return item in (node.get("kind"), node.get("process"))
