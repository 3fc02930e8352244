"""A quantile head for any point forecaster: `--quantiles 0.1,0.5,0.9` gives every model intervals.

The head reads the model's point forecast (detached: learning the intervals never changes the point
forecast), the window's last value and its volatility (mean |step change|) for each node, step and channel,
and predicts the distance of each quantile from the point forecast: positive widths, accumulated outward
from the median, so quantiles never cross. Each (step, node, channel) has its own learned scale. It is
trained with the pinball loss added to the model's own loss (`Prediction.quantile_loss`), and scored with
CRPS and interval coverage like FactoST-v2's native quantiles.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stcast.errors import StcastError


def check_levels(levels) -> tuple[float, ...]:
    q = tuple(float(v) for v in levels)
    if not q or any(not 0 < v < 1 for v in q) or any(b <= a for a, b in zip(q, q[1:])):
        raise StcastError(f"quantiles {list(levels)}: expected increasing levels strictly between 0 and 1, e.g. "
                          "0.1,0.5,0.9")
    return q


class QuantileHead(nn.Module):
    def __init__(self, levels, horizon: int, num_nodes: int, num_channels: int, hidden: int = 32):
        super().__init__()
        self.levels = check_levels(levels)
        self.below = [i for i, v in enumerate(self.levels) if v < 0.5]  # outward order: nearest 0.5 last here
        self.above = [i for i, v in enumerate(self.levels) if v > 0.5]
        self.at = [i for i, v in enumerate(self.levels) if v == 0.5]
        self.mlp = nn.Sequential(nn.Linear(3, hidden), nn.GELU(), nn.Linear(hidden, len(self.levels)))
        self.log_scale = nn.Parameter(torch.zeros(horizon, num_nodes, num_channels))

    def forward(self, point: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """point (B, H, N, C) and the input window x (B, L, N, C), both scaled -> quantiles (B, H, N, C, Q)."""
        p = point.detach()
        last = x[:, -1:].expand_as(p)
        vol = (x.diff(dim=1).abs().mean(1, keepdim=True) if x.shape[1] > 1 else torch.zeros_like(x[:, -1:]))
        feats = torch.stack([p, last, vol.expand_as(p)], -1)
        scale = self.log_scale.exp()
        if self.log_scale.shape[1] != p.shape[2]:  # a node subset this step (token reduction): no per-node scale
            scale = scale.mean(1, keepdim=True)
        widths = (F.softplus(self.mlp(feats)) + 1e-3) * scale[None, :, :, :, None]  # (B, H, N, C, Q), > 0
        out = [None] * len(self.levels)
        for i in self.at:
            out[i] = p
        acc = torch.zeros_like(p)
        for i in reversed(self.below):  # from the level nearest 0.5 outward
            acc = acc + widths[..., i]
            out[i] = p - acc
        acc = torch.zeros_like(p)
        for i in self.above:
            acc = acc + widths[..., i]
            out[i] = p + acc
        return torch.stack(out, -1)
