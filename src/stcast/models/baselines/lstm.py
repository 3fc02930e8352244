"""LSTM per node with shared weights: value + calendar embeddings in, all horizon steps out."""

from __future__ import annotations

import torch
from torch import nn

from stcast.models.base import Prediction, ProblemSpec, STModel
from stcast.nn.calendar import day_of_week, time_of_day


class LSTMForecaster(STModel):
    name = "lstm"

    def __init__(self, spec: ProblemSpec, hidden: int = 64, layers: int = 2, dropout: float = 0.1):
        super().__init__(spec)
        C = spec.num_channels
        self.tod = time_of_day(spec.steps_per_day, 8)
        self.dow = day_of_week(4)
        self.lstm = nn.LSTM(2 * C + 12, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0)
        self.head = nn.Linear(hidden, spec.horizon * C)

    def forward(self, batch) -> Prediction:
        B, L, N, C = batch.x.shape
        cal = torch.cat([self.tod(batch.tod_x), self.dow(batch.dow_x)], -1)  # (B, L, 12)
        feats = torch.cat([batch.x, batch.x_mask.float(), cal.unsqueeze(2).expand(B, L, N, -1)], -1)
        seq = feats.permute(0, 2, 1, 3).reshape(B * N, L, -1)  # one sequence per node
        _, (h, _) = self.lstm(seq)
        out = self.head(h[-1]).view(B, N, self.spec.horizon, C)
        return Prediction(out.permute(0, 2, 1, 3))
