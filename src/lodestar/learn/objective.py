"""What the policy optimises: a weighted cost over predicted latencies, changeable at runtime
without retraining (the predictor outputs every quantity; weights only combine them).

cost = w_ttft·E[TTFT] + w_ttft_tail·TTFT_tail + w_tpot·TPOT·expected_output + w_e2e·E2E

in seconds, where TTFT_tail = exp(μ + z·σ) is risk-averse through the ensemble spread σ and
E[TTFT] ≈ exp(μ) uses the member mean μ of log TTFT.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator


class Objective(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ttft: float = Field(default=1.0, ge=0.0)
    ttft_tail: float = Field(default=0.0, ge=0.0)
    tail_z: float = Field(default=1.5, ge=0.0)
    tpot: float = Field(default=0.0, ge=0.0)
    e2e: float = Field(default=0.0, ge=0.0)

    @model_validator(mode="after")
    def _some_weight(self) -> Objective:
        if self.ttft + self.ttft_tail + self.tpot + self.e2e <= 0:
            raise ValueError("at least one objective weight must be > 0")
        return self

    def cost(
        self, mu: npt.NDArray[np.float64], sigma: npt.NDArray[np.float64], expected_output: float
    ) -> npt.NDArray[np.float64]:
        """Cost per candidate from log-second predictions ``mu``/``sigma`` of shape [..., 3]
        (TTFT, TPOT, E2E); lower is better."""
        out = self.ttft * np.exp(mu[..., 0])
        if self.ttft_tail:
            out = out + self.ttft_tail * np.exp(mu[..., 0] + self.tail_z * sigma[..., 0])
        if self.tpot:
            out = out + self.tpot * np.exp(mu[..., 1]) * max(expected_output, 1.0)
        if self.e2e:
            out = out + self.e2e * np.exp(mu[..., 2])
        result: npt.NDArray[np.float64] = out
        return result
