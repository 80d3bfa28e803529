"""ServeGen per-client data (``chunk-<i>-trace.csv`` + ``chunk-<i>-dataset.json``).

- The trace CSV has no header; each line is ``window_start_s,rate_rps,cv,pattern,shape,scale``
  for one fixed-length window (600 s upstream). ``pattern`` is ``Gamma``, ``Weibull``, or
  empty when the client sent nothing (then ``rate_rps`` must be 0).
- The dataset JSON maps a window start (s, 6-h spacing upstream) to
  ``{"input_tokens": "<Python dict {tokens: probability}>", "output_tokens": "<same>"}``;
  the value strings are Python literals, parsed with :func:`ast.literal_eval`. Empty dicts
  (periods without data) are kept as ``None``; ``reason_ratio`` (deepseek-r1) is ignored.

Generation from this data lives in :mod:`lodestar.workload.windowed`.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import numpy as np
import numpy.typing as npt

from lodestar.workload.errors import TraceFormatError
from lodestar.workload.lengths import PmfLengths
from lodestar.workload.traces.rows import headerless_rows, parse_float, read_text

Pattern = Literal["gamma", "weibull", ""]
_PATTERNS: Mapping[str, Pattern] = MappingProxyType({"gamma": "gamma", "weibull": "weibull", "": ""})
TRACE_FIELDS = ("window_start_s", "rate_rps", "cv", "pattern", "shape", "scale")
DEFAULT_WINDOW_S = 600.0


@dataclass(frozen=True)
class ArrivalWindow:
    """One window of a client's arrival process (``rate_rps`` 0 means silent)."""

    start_s: float
    rate_rps: float
    cv: float
    pattern: Pattern
    shape: float
    scale: float


@dataclass(frozen=True, eq=False)
class ServeGenClient:
    """One ServeGen client: evenly spaced arrival windows and time-varying length pmfs.

    ``length_starts_s`` is sorted; ``length_pmfs[i]`` (``None`` when the period had no data)
    holds from ``length_starts_s[i]`` to the next start.
    """

    name: str
    windows: tuple[ArrivalWindow, ...]
    window_s: float
    length_starts_s: npt.NDArray[np.float64]
    length_pmfs: tuple[PmfLengths | None, ...]

    @property
    def end_s(self) -> float:
        """End of the last window on the client's clock (s)."""
        return self.windows[-1].start_s + self.window_s

    def lengths_at(self, t_s: float) -> PmfLengths:
        """The pmf in force at ``t_s``; an empty period falls back to the nearest earlier
        period with data, else the nearest later one."""
        index = max(int(np.searchsorted(self.length_starts_s, t_s, side="right")) - 1, 0)
        for candidate in (*self.length_pmfs[index::-1], *self.length_pmfs[index + 1 :]):
            if candidate is not None:
                return candidate
        raise AssertionError("load_servegen guarantees at least one period with data")


def dataset_path_for(trace_path: Path) -> Path:
    """``chunk-<i>-dataset.json`` beside ``chunk-<i>-trace.csv``."""
    name = trace_path.name
    if not name.endswith("-trace.csv"):
        raise TraceFormatError(trace_path, "expected a file named chunk-<i>-trace.csv (or give the dataset path)")
    return trace_path.with_name(name[: -len("-trace.csv")] + "-dataset.json")


def load_servegen(trace_path: Path, dataset_path: Path | None = None) -> ServeGenClient:
    """Read one client's arrival windows and length distributions."""
    windows = _read_windows(trace_path)
    window_s = _window_length(trace_path, windows)
    dataset = dataset_path or dataset_path_for(trace_path)
    starts, pmfs = _read_dataset(dataset)
    name = f"{trace_path.parent.name}-{trace_path.name.removesuffix('-trace.csv')}"
    return ServeGenClient(name, tuple(windows), window_s, starts, pmfs)


def _read_windows(path: Path) -> list[ArrivalWindow]:
    windows: list[ArrivalWindow] = []
    for line, cells in headerless_rows(path, len(TRACE_FIELDS)):
        start_s, rate, cv = (parse_float(path, line, TRACE_FIELDS[i], cells[i]) for i in range(3))
        pattern = _PATTERNS.get(cells[3].strip().lower())
        if pattern is None:
            raise TraceFormatError(
                path, f"expected Gamma, Weibull or empty, got {cells[3]!r}", line=line, field="pattern"
            )
        shape, scale = (parse_float(path, line, TRACE_FIELDS[i], cells[i]) for i in (4, 5))
        if rate < 0:
            raise TraceFormatError(path, f"rate must be >= 0, got {rate}", line=line, field="rate_rps")
        if rate > 0 and not pattern:
            raise TraceFormatError(path, "a window with rate > 0 needs a pattern", line=line, field="pattern")
        if rate > 0 and shape <= 0:
            raise TraceFormatError(path, f"shape must be > 0, got {shape}", line=line, field="shape")
        if windows and start_s <= windows[-1].start_s:
            raise TraceFormatError(path, "window starts must increase", line=line, field="window_start_s")
        windows.append(ArrivalWindow(start_s, rate, cv, pattern, shape, scale))
    if not windows:
        raise TraceFormatError(path, "no windows")
    return windows


def _window_length(path: Path, windows: list[ArrivalWindow]) -> float:
    if len(windows) == 1:
        return DEFAULT_WINDOW_S
    starts = np.array([w.start_s for w in windows])
    gaps = np.diff(starts)
    if not np.allclose(gaps, gaps[0]):
        bad = int(np.argmax(~np.isclose(gaps, gaps[0]))) + 2
        raise TraceFormatError(path, "windows must be evenly spaced", line=bad, field="window_start_s")
    return float(gaps[0])


def _read_dataset(path: Path) -> tuple[npt.NDArray[np.float64], tuple[PmfLengths | None, ...]]:
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise TraceFormatError(path, f"not JSON ({err.msg})", line=err.lineno) from None
    if not isinstance(data, dict) or not data:
        raise TraceFormatError(path, "expected a non-empty JSON object keyed by window start")
    periods: list[tuple[float, PmfLengths | None]] = []
    for key, value in data.items():
        try:
            start_s = float(key)
        except ValueError:
            raise TraceFormatError(path, "key is not a window start in seconds", field=key) from None
        if not isinstance(value, dict):
            raise TraceFormatError(path, "expected an object with input_tokens and output_tokens", field=key)
        inputs = _pmf(path, f"{key}.input_tokens", value.get("input_tokens"), zero="drop")
        outputs = _pmf(path, f"{key}.output_tokens", value.get("output_tokens"), zero="to_one")
        if bool(inputs) != bool(outputs):
            raise TraceFormatError(path, "input and output distributions must both be empty or both not", field=key)
        pmf = None
        if inputs and outputs:
            pmf = PmfLengths(
                f"{path.stem}@{key}",
                np.fromiter(inputs.keys(), np.int64),
                np.fromiter(inputs.values(), np.float64),
                np.fromiter(outputs.keys(), np.int64),
                np.fromiter(outputs.values(), np.float64),
            )
        periods.append((start_s, pmf))
    periods.sort(key=lambda period: period[0])
    if all(pmf is None for _, pmf in periods):
        raise TraceFormatError(path, "every period has an empty length distribution")
    return np.array([s for s, _ in periods]), tuple(pmf for _, pmf in periods)


def _pmf(path: Path, field: str, text: object, zero: Literal["drop", "to_one"]) -> dict[int, float]:
    """A pmf string parsed; 0-token mass follows the token policy (inputs: dropped, outputs:
    moved to 1 token); negative counts are an error."""
    if not isinstance(text, str):
        raise TraceFormatError(path, "expected a string holding a Python dict {tokens: probability}", field=field)
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise TraceFormatError(path, "not a Python dict literal", field=field) from None
    if not isinstance(value, dict):
        raise TraceFormatError(path, f"expected a dict, got {type(value).__name__}", field=field)
    pmf: dict[int, float] = {}
    for tokens, prob in value.items():
        if type(tokens) is not int or tokens < 0:
            raise TraceFormatError(path, f"token count must be an integer >= 0, got {tokens!r}", field=field)
        if type(prob) not in (int, float) or not prob >= 0 or prob == float("inf"):
            raise TraceFormatError(path, f"probability must be a finite number >= 0, got {prob!r}", field=field)
        if tokens == 0 and zero == "drop":
            continue
        key = max(tokens, 1)
        pmf[key] = pmf.get(key, 0.0) + float(prob)
    if value and sum(pmf.values()) <= 0:
        raise TraceFormatError(path, "no probability mass on token counts >= 1", field=field)
    return pmf
