"""DLinear (Zeng et al., AAAI 2023): moving-average trend/seasonal split, one linear map each, shared
across nodes and channels."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from stcast.models.base import Prediction, ProblemSpec, STModel


class DLinear(STModel):
    name = "dlinear"

    def __init__(self, spec: ProblemSpec, kernel_size: int = 25):
        super().__init__(spec)
        k = min(kernel_size, spec.input_len)
        self.kernel = k if k % 2 == 1 else k - 1
        self.seasonal = nn.Linear(spec.input_len, spec.horizon)
        self.trend = nn.Linear(spec.input_len, spec.horizon)

    def forward(self, batch) -> Prediction:
        x = batch.x.permute(0, 2, 3, 1)  # (B, N, C, L)
        B, N, C, L = x.shape
        flat = x.reshape(B * N * C, 1, L)
        pad = (self.kernel - 1) // 2
        trend = F.avg_pool1d(F.pad(flat, (pad, pad), mode="replicate"), self.kernel, stride=1).view(B, N, C, L)
        out = self.seasonal(x - trend) + self.trend(trend)  # (B, N, C, H)
        return Prediction(out.permute(0, 3, 1, 2))
