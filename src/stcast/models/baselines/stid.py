"""STID (Shao et al., CIKM 2022), BasicTS's architecture: series, node, time-of-day and day-of-week
embeddings concatenated, residual MLP encoder, 1x1 regression to the horizon."""

from __future__ import annotations

import torch
from torch import nn

from stcast.models.base import Prediction, ProblemSpec, STModel
from stcast.nn.calendar import day_of_week, time_of_day


class _ResidualMLP(nn.Module):
    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.fc1 = nn.Conv2d(width, width, 1)
        self.fc2 = nn.Conv2d(width, width, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, h):
        return h + self.fc2(self.drop(torch.relu(self.fc1(h))))


class STID(STModel):
    name = "stid"

    def __init__(self, spec: ProblemSpec, embed_dim: int = 32, node_dim: int = 32, temp_dim: int = 32,
                 num_layers: int = 3, dropout: float = 0.15, use_node: bool = True, use_tod: bool = True,
                 use_dow: bool = True):
        super().__init__(spec)
        C, L = spec.num_channels, spec.input_len
        self.series_embed = nn.Conv2d(C * L, embed_dim, 1)
        self.node_emb = nn.Parameter(torch.empty(spec.num_nodes, node_dim)) if use_node else None
        # calendar tables fall back to their mean row for days/slots never seen in training (nn/calendar.py)
        self.tod_emb = time_of_day(spec.steps_per_day, temp_dim) if use_tod else None
        self.dow_emb = day_of_week(temp_dim) if use_dow else None
        for p in (self.node_emb, self.tod_emb, self.dow_emb):
            if p is not None:
                nn.init.xavier_uniform_(p if isinstance(p, nn.Parameter) else p.weight)
        width = embed_dim + node_dim * use_node + temp_dim * (use_tod + use_dow)
        self.encoder = nn.Sequential(*[_ResidualMLP(width, dropout) for _ in range(num_layers)])
        self.regression = nn.Conv2d(width, spec.horizon * C, 1)

    def forward(self, batch) -> Prediction:
        B, L, N, C = batch.x.shape
        h = [self.series_embed(batch.x.permute(0, 2, 3, 1).reshape(B, N, C * L).transpose(1, 2).unsqueeze(-1))]
        if self.node_emb is not None:
            h.append(self.node_emb.T.unsqueeze(0).expand(B, -1, -1).unsqueeze(-1))
        if self.tod_emb is not None:  # the last input step's slot
            h.append(self.tod_emb(batch.tod_x[:, -1]).unsqueeze(-1).expand(-1, -1, N).unsqueeze(-1))
        if self.dow_emb is not None:
            h.append(self.dow_emb(batch.dow_x[:, -1]).unsqueeze(-1).expand(-1, -1, N).unsqueeze(-1))
        h = self.encoder(torch.cat(h, 1))  # (B, width, N, 1)
        out = self.regression(h).squeeze(-1).view(B, self.spec.horizon, C, N)
        return Prediction(out.transpose(2, 3))
