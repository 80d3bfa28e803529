"""The reward predictor's network: an ensemble of small MLPs evaluated in one batched pass.

Weights are stacked over members (``[members, in, out]``), so the whole ensemble is three
``baddbmm`` calls. Members differ by initialisation and by bootstrap sample weights; their
spread is the model's uncertainty.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class EnsembleMLP(nn.Module):
    """``members`` MLPs ``in → hidden → hidden → out`` with ReLU; deterministic from ``seed``."""

    def __init__(self, n_in: int, n_out: int, hidden: int = 64, members: int = 5, seed: int = 0) -> None:
        super().__init__()
        self.n_in, self.n_out, self.hidden, self.members = n_in, n_out, hidden, members
        gen = torch.Generator().manual_seed(seed)
        dims = [(n_in, hidden), (hidden, hidden), (hidden, n_out)]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in dims:
            bound = 1.0 / math.sqrt(fan_in)
            w = (torch.rand(members, fan_in, fan_out, generator=gen) * 2 - 1) * bound * math.sqrt(3.0)
            b = (torch.rand(members, 1, fan_out, generator=gen) * 2 - 1) * bound
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: [members, batch, n_in] (or [batch, n_in], shared) → [members, batch, n_out]."""
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.members, -1, -1)
        h = x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = torch.relu(h)
        return h
