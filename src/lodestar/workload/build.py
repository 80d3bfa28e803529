"""``build_workload``: a :class:`WorkloadSpec` becomes a :class:`Workload`.

Order of application:

1. Each source (the main one and every mix-shift target) becomes a stream on a *base clock*:
   - trace and ServeGen sources are read/generated, then sliced (``slice``), then time-scaled
     (``speedup`` divides arrival times; ``target_rps`` scales them to that mean rate, exactly);
   - generator sources (and ``sharegpt``/``arxiv``) draw arrivals at ``rate_rps × speedup``
     (or at ``target_rps``: a statistical, not exact, mean rate) for ``M(duration_s)`` base
     seconds, so that after step 3 they cover ``duration_s`` seconds; then they are sliced.
2. Mix shifts apply in ``at_s`` order: requests of the stream so far before ``M(at_s)``, then
   the target's from there on. Each target stream's segment ids are re-keyed (no prefix is
   shared across a shift) and its request and session ids get a ``shift<i>/`` prefix.
3. Rate drift (ramps, day/night) warps the base clock into the output clock ``t`` with
   ``M(t) = ∫ factors`` (identity without rate drift), see :mod:`lodestar.workload.drift`.
4. Slowdown/restore items become :class:`InstanceFault` s on the output clock.

Seeds: every stochastic piece gets its own seed derived from ``spec.seed`` and its position,
so the same spec always gives the same workload.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

import numpy as np

from lodestar.workload.arrivals import ArrivalProcess, GammaArrivals, PoissonArrivals
from lodestar.workload.catalog import SharedTrace, TraceFormat, TracesSettings, shared_trace
from lodestar.workload.drift import DayNightCycle, RateMultiplier, RateRamp, TimeWarp, switch_at
from lodestar.workload.errors import SpecError
from lodestar.workload.faults import InstanceFault
from lodestar.workload.generator import LongContextMix, RequestGenerator, SessionMix, TenantMix
from lodestar.workload.lengths import EmpiricalLengths, FixedLengths, LengthDistribution, UniformLengths
from lodestar.workload.request import RequestSpec
from lodestar.workload.segments import rekey
from lodestar.workload.spec import (
    DayNightDrift,
    FixedLengthsConfig,
    GammaConfig,
    GeneratorSource,
    LengthsConfig,
    LengthStatsLengths,
    MixShiftDrift,
    NamedLengths,
    NamedSource,
    PoissonConfig,
    RateRampDrift,
    RestoreDrift,
    ServeGenSource,
    SlowdownDrift,
    SourceConfig,
    TraceLengths,
    TraceSource,
    UniformLengthsConfig,
    WorkloadSpec,
)
from lodestar.workload.traces.azure import load_azure
from lodestar.workload.traces.length_stats import load_length_stats
from lodestar.workload.traces.lodestar_jsonl import load_lodestar_jsonl
from lodestar.workload.traces.mooncake import load_mooncake
from lodestar.workload.traces.rows import LoadedTrace
from lodestar.workload.traces.servegen import load_servegen
from lodestar.workload.traces.splitwise import load_splitwise
from lodestar.workload.transform import scale_to_rate, speedup, time_slice
from lodestar.workload.windowed import servegen_requests
from lodestar.workload.workload import MetadataValue, Workload

LENGTHS_DEFAULT_DURATION_S = 600.0
SERVEGEN_DEFAULT_DURATION_S = 3600.0

TRACE_LOADERS: Mapping[TraceFormat, Callable[[Path], LoadedTrace]] = MappingProxyType(
    {
        "mooncake": load_mooncake,
        "azure": load_azure,
        "splitwise": load_splitwise,
        "lodestar-jsonl": load_lodestar_jsonl,
    }
)


def load_trace(path: Path, format: TraceFormat) -> LoadedTrace:
    """Read a trace file of a known format (``TraceFormatError`` on bad input)."""
    return TRACE_LOADERS[format](path)


def build_workload(spec: WorkloadSpec, *, traces_dir: Path | None = None, origin: str = "spec") -> Workload:
    """Build the workload a spec describes (see the module docstring for the order).

    ``traces_dir`` resolves shorthand names (default: ``LODESTAR_TRACES_DIR``); ``origin``
    names the spec in error messages (e.g. its file). Raises :class:`WorkloadError`
    (``TraceFormatError``/``SpecError``) on bad files or fields.
    """
    context = _Context(spec, traces_dir or TracesSettings().traces_dir, _warp(spec), origin)
    requests = context.stream(spec.source, 0, "source")
    shifts = sorted(
        ((i, d) for i, d in enumerate(spec.drift) if isinstance(d, MixShiftDrift)), key=lambda item: item[1].at_s
    )
    for n, (index, shift) in enumerate(shifts, start=1):
        other = context.stream(shift.source, n, f"drift.{index}.source")
        other = [_relabel(r, f"shift{n}/") for r in rekey(other, f"shift{n}")]
        requests = switch_at(requests, other, context.warp.base_time(shift.at_s))
    requests = context.warp.apply(requests)
    faults = sorted(
        (_fault(d) for d in spec.drift if isinstance(d, SlowdownDrift | RestoreDrift)), key=lambda f: f.at_s
    )
    context.metadata["requests"] = len(requests)
    return Workload(
        name=spec.name or context.default_name,
        requests=tuple(requests),
        faults=tuple(faults),
        metadata=context.metadata,
    )


def child_seed(seed: int, *path: int) -> int:
    """A 32-bit seed for the piece at ``path`` under ``seed`` (independent streams)."""
    return int(np.random.SeedSequence([seed, *path]).generate_state(1)[0])


@dataclass
class _Context:
    spec: WorkloadSpec
    traces_dir: Path
    warp: TimeWarp
    origin: str
    default_name: str = "workload"

    def __post_init__(self) -> None:
        self.metadata: dict[str, MetadataValue] = {"seed": self.spec.seed}

    def stream(self, source: SourceConfig, index: int, where: str) -> list[RequestSpec]:
        """The base-clock stream of one source (step 1)."""
        label = source.name if isinstance(source, NamedSource) else _label(source)
        if isinstance(source, NamedSource):
            source = self._resolve(source, where)
        if index == 0:
            self.default_name = label
            self.metadata["source"] = label
        else:
            self.metadata[f"shift{index}_source"] = label
        seed = child_seed(self.spec.seed, index)
        if isinstance(source, GeneratorSource):
            return self._sliced(self._generate(source, seed, where))
        if isinstance(source, TraceSource):
            loaded = load_trace(source.path, source.format)
            self._count(loaded.skipped_rows, loaded.clamped_outputs)
            requests = loaded.requests
        else:
            client = load_servegen(source.trace_path, source.dataset_path)
            requests = servegen_requests(client, source.start_s, source.duration_s, seed)
        return self._scaled(self._sliced(requests), where)

    def _resolve(self, source: NamedSource, where: str) -> TraceSource | GeneratorSource | ServeGenSource:
        entry = shared_trace(source.name)
        assert entry is not None  # the spec's Literal type admits catalog names only
        given = source.model_fields_set
        allowed: dict[str, set[str]] = {
            "trace": set(),
            "lengths": {"rate_rps", "duration_s"},
            "servegen": {"duration_s", "start_s", "chunk"},
        }
        extra = sorted(given - {"kind", "name"} - allowed[entry.kind])
        if extra:
            raise SpecError(
                self.origin, f"does not apply to {entry.kind} name {source.name!r}", field=f"{where}.{extra[0]}"
            )
        path = self._shared_path(entry, source.chunk, where)
        if entry.kind == "trace":
            assert entry.format is not None
            return TraceSource(kind="trace", format=entry.format, path=path)
        if entry.kind == "lengths":
            return GeneratorSource(
                kind="generator",
                duration_s=source.duration_s or LENGTHS_DEFAULT_DURATION_S,
                arrivals=PoissonConfig(process="poisson", rate_rps=source.rate_rps),
                lengths=LengthStatsLengths(kind="length-stats", path=path),
            )
        return ServeGenSource(
            kind="servegen",
            trace_path=path,
            start_s=source.start_s,
            duration_s=source.duration_s or SERVEGEN_DEFAULT_DURATION_S,
        )

    def _shared_path(self, entry: SharedTrace, chunk: int, where: str) -> Path:
        """Where a shorthand name's file is; a SpecError naming the setting when it is not there
        (the default directory is relative to the working directory, so it depends on where the
        command runs)."""
        path = entry.path(self.traces_dir, chunk)
        if not path.exists():
            at = str(path) if path.is_absolute() else f"{path} (from {Path.cwd()})"
            raise SpecError(
                self.origin,
                f"shared trace {entry.name!r} is not at {at}: LODESTAR_TRACES_DIR names the traces directory"
                " (default ../shared/traces, relative to the working directory)",
                field=where,
            )
        return path

    def _generate(self, source: GeneratorSource, seed: int, where: str) -> list[RequestSpec]:
        rate_rps = source.arrivals.rate_rps
        if self.spec.target_rps is not None:
            rate_rps = self.spec.target_rps
        elif self.spec.speedup is not None:
            rate_rps *= self.spec.speedup
        arrivals: ArrivalProcess
        if isinstance(source.arrivals, GammaConfig):
            arrivals = GammaArrivals(rate_rps, source.arrivals.cv, seed=child_seed(seed, 0))
        else:
            arrivals = PoissonArrivals(rate_rps, seed=child_seed(seed, 0))
        generator = RequestGenerator(
            lengths=self._lengths(source.lengths, f"{where}.lengths"),
            seed=child_seed(seed, 1),
            segment_tokens=source.segment_tokens,
            tenants=TenantMix(**source.tenants.model_dump()) if source.tenants else None,
            sessions=SessionMix(**source.sessions.model_dump()) if source.sessions else None,
            long_context=LongContextMix(**source.long_context.model_dump()) if source.long_context else None,
            model=source.model,
        )
        return generator.generate(arrivals.times(self.warp.base_time(source.duration_s)))

    def _lengths(self, config: LengthsConfig, where: str) -> LengthDistribution:
        if isinstance(config, UniformLengthsConfig):
            return UniformLengths("uniform", config.input_min, config.input_max, config.output_min, config.output_max)
        if isinstance(config, FixedLengthsConfig):
            return FixedLengths("fixed", config.input_tokens, config.output_tokens)
        if isinstance(config, NamedLengths):
            entry = shared_trace(config.name)
            assert entry is not None
            if entry.kind == "servegen":
                raise SpecError(
                    self.origin, "ServeGen names have time-varying lengths; use a servegen source", field=where
                )
            path = self._shared_path(entry, 0, where)
            if entry.kind == "lengths":
                config = LengthStatsLengths(kind="length-stats", path=path)
            else:
                assert entry.format is not None
                config = TraceLengths(kind="trace", format=entry.format, path=path)
        if isinstance(config, LengthStatsLengths):
            loaded = load_length_stats(config.path)
            self._count(loaded.skipped_rows, loaded.clamped_outputs)
            return loaded.lengths
        trace = load_trace(config.path, config.format)
        self._count(trace.skipped_rows, trace.clamped_outputs)
        return EmpiricalLengths.from_requests(config.path.stem, trace.requests)

    def _sliced(self, requests: list[RequestSpec]) -> list[RequestSpec]:
        window = self.spec.slice
        return requests if window is None else time_slice(requests, window.start_s, window.duration_s)

    def _scaled(self, requests: list[RequestSpec], where: str) -> list[RequestSpec]:
        if self.spec.speedup is not None:
            return speedup(requests, self.spec.speedup)
        if self.spec.target_rps is not None:
            try:
                return scale_to_rate(requests, self.spec.target_rps)
            except ValueError as err:
                raise SpecError(self.origin, f"cannot scale {where} to a rate: {err}", field="target_rps") from None
        return requests

    def _count(self, skipped: int, clamped: int) -> None:
        self.metadata["skipped_rows"] = int(self.metadata.get("skipped_rows") or 0) + skipped
        self.metadata["clamped_outputs"] = int(self.metadata.get("clamped_outputs") or 0) + clamped


def _warp(spec: WorkloadSpec) -> TimeWarp:
    multipliers: list[RateMultiplier] = []
    for item in spec.drift:
        if isinstance(item, RateRampDrift):
            multipliers.append(RateRamp(item.start_s, item.end_s, item.end_factor, item.start_factor))
        elif isinstance(item, DayNightDrift):
            multipliers.append(DayNightCycle(item.period_s, item.amplitude, item.phase_s))
    return TimeWarp(tuple(multipliers))


def _fault(item: SlowdownDrift | RestoreDrift) -> InstanceFault:
    if isinstance(item, SlowdownDrift):
        return InstanceFault(item.at_s, item.instance_id, "slowdown", item.factor)
    return InstanceFault(item.at_s, item.instance_id, "restore")


def _relabel(request: RequestSpec, prefix: str) -> RequestSpec:
    session = f"{prefix}{request.session_id}" if request.session_id is not None else None
    return replace(request, request_id=f"{prefix}{request.request_id}", session_id=session)


def _label(source: TraceSource | GeneratorSource | ServeGenSource) -> str:
    """A short name of a source for the workload's default name and metadata."""
    if isinstance(source, TraceSource):
        return source.path.stem
    if isinstance(source, ServeGenSource):
        return source.trace_path.stem
    return "generator"
