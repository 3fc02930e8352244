"""Graph WaveNet (Wu et al., IJCAI 2019): gated dilated TCN + diffusion graph convolution over the
forward/backward transition matrices and a learned adaptive adjacency softmax(relu(E1 E2)).

CPU layout: tensors are channel-last (B, N, T, C) and every convolution is a matmul. A dilated
kernel-2 convolution is W0 x[t] + W1 x[t + d], i.e. one Linear over the two shifted slices
concatenated; filter and gate share that Linear. The skip connections only reach the output through
the last time step (the receptive field covers the padded input exactly), so each skip projection is
computed on that step alone: the same function as the reference, ~8x fewer FLOPs in the skips.
For the same reason only the last `receptive_field` (13) input steps can reach the output, so longer
inputs are cropped to them (288 -> 144 would otherwise hold >24 GiB of activations at batch 32); the one
difference from the reference is that BatchNorm's training statistics then come from those steps only.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stcast.data.graphs import row_normalise
from stcast.models.base import Prediction, ProblemSpec, STModel


class _DiffusionConv(nn.Module):
    """sum_k A^k X W_k over the supports (GWNet eq. 6), on channel-last (B, N, T, C) tensors."""

    def __init__(self, c_in: int, c_out: int, num_supports: int, order: int = 2, dropout: float = 0.3):
        super().__init__()
        self.order = order
        self.mlp = nn.Linear(c_in * (1 + num_supports * order), c_out)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, supports):  # x (B, N, T, C); supports: (S, N, N), row-normalised transitions
        B, N, T, C = x.shape
        out = [x]
        for a in supports:
            h = x.reshape(B, N, T * C)
            for _ in range(self.order):
                h = torch.matmul(a.T, h)  # node m receives sum_n a[n, m] h[n]
                out.append(h.view(B, N, T, C))
        return self.drop(self.mlp(torch.cat(out, -1)))


class GraphWaveNet(STModel):
    name = "gwnet"
    needs_graph = False  # uses the adjacency when there is one, the adaptive matrix always

    def __init__(self, spec: ProblemSpec, residual: int = 32, dilation_ch: int = 32, skip: int = 256,
                 end: int = 512, blocks: int = 4, layers: int = 2, dropout: float = 0.3,
                 adaptive: bool = True, use_graph: bool = True, embed_dim: int = 10):
        super().__init__(spec)
        C, N = spec.num_channels, spec.num_nodes
        supports = []
        if spec.adjacency is not None and use_graph:
            a = np.asarray(spec.adjacency, dtype=np.float32)
            supports = [torch.as_tensor(row_normalise(a)), torch.as_tensor(row_normalise(a.T))]
        self.register_buffer("supports", torch.stack(supports) if supports else torch.zeros(0, N, N))
        self.adaptive = adaptive
        if adaptive:
            self.e1 = nn.Parameter(torch.randn(N, embed_dim))
            self.e2 = nn.Parameter(torch.randn(embed_dim, N))
        n_sup = len(supports) + int(adaptive)
        self.start = nn.Linear(C + 1, residual)  # value channels + time of day
        self.tcn, self.skips, self.gconvs, self.norms = (nn.ModuleList() for _ in range(4))
        self.dilations = []
        for _ in range(blocks):
            d = 1
            for _ in range(layers):
                self.tcn.append(nn.Linear(2 * residual, 2 * dilation_ch))  # filter | gate, kernel 2
                self.skips.append(nn.Linear(dilation_ch, skip))
                self.gconvs.append(_DiffusionConv(dilation_ch, residual, n_sup, dropout=dropout)
                                   if n_sup else nn.Linear(dilation_ch, residual))
                self.norms.append(nn.BatchNorm1d(residual))
                self.dilations.append(d)
                d *= 2
        self.receptive_field = 1 + sum(self.dilations)
        self.dilation_ch = dilation_ch
        self.end1 = nn.Linear(skip, end)
        self.end2 = nn.Linear(end, spec.horizon * C)

    def forward(self, batch) -> Prediction:
        B, L, N, C = batch.x.shape
        tod = (batch.tod_x.float() / self.spec.steps_per_day).view(B, L, 1, 1).expand(B, L, N, 1)
        x = torch.cat([batch.x, tod], -1).transpose(1, 2)  # (B, N, L, C+1)
        if L < self.receptive_field:
            x = F.pad(x, (0, 0, self.receptive_field - L, 0))
        elif L > self.receptive_field:  # earlier steps cannot reach the output (see the module docstring)
            x = x[:, :, -self.receptive_field:]
        supports = list(self.supports)
        if self.adaptive:
            supports.append(F.softmax(F.relu(self.e1 @ self.e2), dim=1))
        x = self.start(x)
        skip = 0
        for i, d in enumerate(self.dilations):
            res = x
            fg = self.tcn[i](torch.cat([x[:, :, :-d], x[:, :, d:]], -1))
            h = torch.tanh(fg[..., :self.dilation_ch]) * torch.sigmoid(fg[..., self.dilation_ch:])
            skip = skip + self.skips[i](h[:, :, -1])  # (B, N, skip): only the last step reaches the output
            h = self.gconvs[i](h, supports) if supports else self.gconvs[i](h)
            h = h + res[:, :, -h.shape[2]:]
            x = self.norms[i](h.reshape(-1, h.shape[-1])).view(h.shape)
        out = self.end2(F.relu(self.end1(F.relu(skip))))  # (B, N, H*C)
        return Prediction(out.view(B, N, self.spec.horizon, C).transpose(1, 2))
