"""The soak benchmark (``benchmarks/soak.py``), run as users run it: the whole local stack at a
steady rate, then every topic's events counted in ClickHouse through the history service and
compared with what each producer says it sent. The issue's 2-minute CI version is marked slow
(with the stack's start and drain it takes about 3 minutes on two shared cores, more than the
default suite can spare); the default suite runs a 15-second one with the same checks.

Asserted: no process died, no event lost or dropped on any topic, outcomes stored = requests
sent, every request answered. Memory is printed, not asserted: two minutes mostly show caches
and allocator arenas filling (the first minute of a run grows by a few MiB in every process),
so a growth threshold would judge noise; a leak shows only over the 30-minute run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "minutes", [pytest.param(0.25, id="15s"), pytest.param(2.0, id="2min", marks=pytest.mark.slow)]
)
def test_soak_loses_no_event(tmp_path: Path, minutes: float) -> None:
    out = tmp_path / "soak.json"
    argv = [
        sys.executable, str(REPO / "benchmarks" / "soak.py"), "--minutes", str(minutes), "--warmup-s", "5",
        "--sample-s", "15", "--json", str(out),
    ]  # fmt: skip
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=840, check=False)
    print(proc.stdout[-6000:])  # the table: RSS per process at start / after warm-up / end, events
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())

    assert result["dead_processes"] == []
    traffic = result["traffic"]
    assert traffic["sent"] >= int(minutes * 60 * result["rate_rps"])
    assert traffic["ok"] == traffic["sent"], traffic["statuses"]
    events = {e["table"]: e for e in result["events"]}
    for table, e in events.items():
        assert (e["lost"], e["dropped"]) == (0, 0), (table, e)
        assert e["stored_ids"] == e["stored"], (table, e)
    assert events["request_outcomes"]["stored"] == traffic["sent"]
    assert events["route_decisions"]["sent"] > 0 and events["instance_states"]["sent"] > 0
    assert result["dead_letters_stored"] == 0
    assert proc.returncode == 0, proc.stdout[-3000:]
