"""Graph WaveNet (Wu et al., IJCAI 2019): gated dilated TCN + diffusion graph convolution over the
forward/backward transition matrices and a learned adaptive adjacency softmax(relu(E1 E2))."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stcast.data.graphs import row_normalise
from stcast.models.base import Prediction, ProblemSpec, STModel, register_model


class _DiffusionConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, num_supports: int, order: int = 2, dropout: float = 0.3):
        super().__init__()
        self.order = order
        self.mlp = nn.Conv2d(c_in * (1 + num_supports * order), c_out, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, supports):  # x (B, C, N, T); supports: list of (N, N)
        out = [x]
        for a in supports:
            h = x
            for _ in range(self.order):
                h = torch.einsum("bcnt,nm->bcmt", h, a)
                out.append(h)
        return self.drop(self.mlp(torch.cat(out, 1)))


@register_model("gwnet")
class GraphWaveNet(STModel):
    needs_graph = False  # uses the adjacency when there is one, the adaptive matrix always

    def __init__(self, spec: ProblemSpec, residual: int = 32, dilation_ch: int = 32, skip: int = 256,
                 end: int = 512, blocks: int = 4, layers: int = 2, kernel: int = 2, dropout: float = 0.3,
                 adaptive: bool = True, embed_dim: int = 10):
        super().__init__(spec)
        C, N = spec.num_channels, spec.num_nodes
        supports = []
        if spec.adjacency is not None:
            a = torch.as_tensor(spec.adjacency, dtype=torch.float32)
            supports = [torch.as_tensor(row_normalise(a.numpy())).T, torch.as_tensor(row_normalise(a.T.numpy())).T]
        self.register_buffer("supports", torch.stack(supports) if supports else torch.zeros(0, N, N))
        self.adaptive = adaptive
        if adaptive:
            self.e1 = nn.Parameter(torch.randn(N, embed_dim))
            self.e2 = nn.Parameter(torch.randn(embed_dim, N))
        n_sup = len(supports) + int(adaptive)
        self.start = nn.Conv2d(C + 1, residual, 1)  # value channels + time of day
        self.filters, self.gates, self.skips, self.gconvs, self.norms = (nn.ModuleList() for _ in range(5))
        self.dilations = []
        field = 1
        for _ in range(blocks):
            d, extra = 1, kernel - 1
            for _ in range(layers):
                self.filters.append(nn.Conv2d(residual, dilation_ch, (1, kernel), dilation=d))
                self.gates.append(nn.Conv2d(residual, dilation_ch, (1, kernel), dilation=d))
                self.skips.append(nn.Conv2d(dilation_ch, skip, 1))
                self.gconvs.append(_DiffusionConv(dilation_ch, residual, max(n_sup, 1), dropout=dropout)
                                   if n_sup else nn.Conv2d(dilation_ch, residual, 1))
                self.norms.append(nn.BatchNorm2d(residual))
                self.dilations.append(d)
                field += extra
                d *= 2
                extra *= 2
        self.receptive_field = field
        self.end1 = nn.Conv2d(skip, end, 1)
        self.end2 = nn.Conv2d(end, spec.horizon * C, 1)

    def forward(self, batch) -> Prediction:
        B, L, N, C = batch.x.shape
        tod = (batch.tod_x.float() / self.spec.steps_per_day).view(B, L, 1, 1).expand(B, L, N, 1)
        x = torch.cat([batch.x, tod], -1).permute(0, 3, 2, 1)  # (B, C+1, N, L)
        if L < self.receptive_field:
            x = F.pad(x, (self.receptive_field - L, 0))
        supports = list(self.supports)
        if self.adaptive:
            supports.append(F.softmax(F.relu(self.e1 @ self.e2), dim=1))
        x = self.start(x)
        skip = 0
        for i in range(len(self.filters)):
            res = x
            h = torch.tanh(self.filters[i](x)) * torch.sigmoid(self.gates[i](x))
            s = self.skips[i](h)
            skip = s + (skip[..., -s.shape[-1]:] if torch.is_tensor(skip) else 0)
            h = self.gconvs[i](h, supports) if supports else self.gconvs[i](h)
            x = self.norms[i](h + res[..., -h.shape[-1]:])
        out = self.end2(F.relu(self.end1(F.relu(skip))))  # (B, H*C, N, 1)
        return Prediction(out.squeeze(-1).view(B, self.spec.horizon, C, N).transpose(2, 3))
