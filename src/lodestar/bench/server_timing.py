"""Read a W3C ``Server-Timing`` response header: ``name;dur=1.23;desc="…", other;dur=4``.

Lodestar's gateway sends ``route`` (deciding) and ``gateway`` (everything before the upstream
request), in milliseconds; other servers send their own metrics or none.
"""

from __future__ import annotations

import math


def server_timing_ms(value: str | None) -> dict[str, float]:
    """Each metric's ``dur`` (ms) by name; metrics without a finite, non-negative ``dur`` and
    malformed entries are left out (a header is advisory: it never fails a request)."""
    out: dict[str, float] = {}
    if not value:
        return out
    for entry in value.split(","):
        name, *params = (part.strip() for part in entry.split(";"))
        if not name:
            continue
        for param in params:
            key, _, raw = param.partition("=")
            if key.strip().lower() != "dur":
                continue
            try:
                dur = float(raw.strip().strip('"'))
            except ValueError:
                break
            if math.isfinite(dur) and dur >= 0:
                out[name] = dur
            break
    return out
