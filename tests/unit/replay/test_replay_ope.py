"""Off-policy estimators on synthetic logs with a known answer, and the logged → workload map."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from lodestar.replay.logged import Candidate, LoggedDecision, LoggedWindow
from lodestar.replay.ope import FeatureArgmin, LoggedPolicy, evaluate

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _log(n: int, seed: int = 0) -> tuple[list[LoggedDecision], float]:
    """A uniformly random logging policy over two candidates whose TTFT equals their feature
    ``x``; the best target (min:x) has a known true mean."""
    rng = np.random.default_rng(seed)
    out, best = [], []
    for i in range(n):
        x = rng.uniform(0.1, 2.0, size=2)
        a = int(rng.integers(0, 2))
        cands = tuple(Candidate(f"i{k}", 0.5, {"x": float(x[k])}) for k in range(2))
        out.append(
            LoggedDecision(
                decision_id=f"r{i}",
                ts=T0 + timedelta(seconds=i),
                model="m",
                policy="random",
                instance_id=f"i{a}",
                propensity=0.5,
                explore=True,
                fallback=False,
                prompt_tokens=100,
                prefix_segments=(),
                candidates=cands,
                status="ok",
                ttft_s=float(x[a]),
                completion_tokens=10,
            )
        )
        best.append(float(x.min()))
    return out, float(np.mean(best))


class _Perfect:
    def predict(self, d: LoggedDecision) -> np.ndarray:
        return np.array([c.features["x"] for c in d.candidates])


def test_ips_and_snips_are_close_to_the_truth_and_dr_is_exact_with_a_perfect_model() -> None:
    logs, truth = _log(4000)
    est = evaluate(logs, FeatureArgmin("x"), n_boot=200)
    assert est.n == 4000 and 1800 < est.matched < 2200
    assert est.snips_s == pytest.approx(truth, rel=0.05)
    assert est.ci_low_s <= truth <= est.ci_high_s
    dr = evaluate(logs, FeatureArgmin("x"), reward=_Perfect(), n_boot=50)
    assert dr.dr_s == pytest.approx(truth, rel=1e-9)


def test_the_logging_policy_evaluates_to_what_was_observed() -> None:
    logs, _ = _log(500)
    est = evaluate(logs, LoggedPolicy(), n_boot=50)
    assert est.matched == est.n == 500
    assert est.snips_s == pytest.approx(est.observed_mean_s)


def test_decisions_a_target_cannot_judge_are_skipped_and_none_is_an_error() -> None:
    logs, _ = _log(50)
    failed = [LoggedDecision(**{**d.__dict__, "status": "error", "ttft_s": None}) for d in logs[:10]]
    est = evaluate(failed + logs[10:], FeatureArgmin("x"), n_boot=20)
    assert est.n == 40
    with pytest.raises(ValueError, match="no logged decision"):
        evaluate(logs, FeatureArgmin("missing"))


def test_logged_requests_become_a_workload_with_their_prefix_structure() -> None:
    base = _log(2)[0]
    shared = (11, 22, 33)
    a = LoggedDecision(**{**base[0].__dict__, "prompt_tokens": 1600, "prefix_segments": shared})
    b = LoggedDecision(
        **{**base[1].__dict__, "prompt_tokens": 1100, "prefix_segments": shared[:2], "completion_tokens": 7}
    )
    no_outcome = LoggedDecision(**{**base[1].__dict__, "decision_id": "x", "completion_tokens": None})
    requests = LoggedWindow([b, a, no_outcome]).requests()
    assert [r.request_id for r in requests] == ["r0", "r1"]
    assert requests[0].arrival_s == 0.0 and requests[1].arrival_s == 1.0
    assert requests[1].output_tokens == 7
    ha, hb = requests[0].prompt.block_hashes(), requests[1].prompt.block_hashes()
    # blocks exist where segments are known: 3 × 32 for a, 2 × 32 for b, and b's are a's first 64
    assert (len(ha), len(hb)) == (96, 64)
    assert hb == ha[:64]
