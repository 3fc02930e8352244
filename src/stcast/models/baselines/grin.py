"""GRIN (Cini, Marisca, Alippi, "Filling the G_ap_s: Multivariate Time Series Imputation by Graph Neural
Networks", ICLR 2022): a bidirectional graph recurrent imputer.

Each direction is a GRIL (section 4): at step t, with the state H_{t-1} of every node,
- first stage: Y1_t = H_{t-1} W1 (a linear readout: a one-step forecast), X1_t = M_t X_t + (1 - M_t) Y1_t;
- spatial decoder: a message-passing layer over [X1_t, M_t, H_{t-1}] of the *neighbours only* (no self-loop),
  so a node's second-stage estimate comes from the graph even when the node itself is observed;
  Y2_t = [S_t, H_{t-1}] W2, X2_t = M_t X_t + (1 - M_t) Y2_t;
- the state update is an MPGRU: a GRU whose gates are diffusion graph convolutions (order K over the forward
  and backward transition matrices) of [X2_t, M_t] and H_{t-1}.
The two directions' [S_t, H_{t-1}] are joined by an MLP into the final estimate Y_t (eq. 9); observed inputs are
copied into the output. Loss (section 4.3): the MAE of Y and of both directions' Y1 and Y2 on the target
entries.

Why our own code: torch-spatiotemporal's GRIN imports torch_sparse, which has no wheel on PyPI (source only) and
does not build here; PyPOTS 1.3 has no GRIN (docs/baselines, issue 29).

Differences from the paper / the reference code, with the reason:
- The loss sees stcast's hidden entries only (as every stcast imputer; the reference also scores the observed,
  shown ones, which our windows keep as inputs), in the scaled space.
- No node embedding in the final MLP and no layer norm (the reference code has both as options, off in its
  AQI-36 configuration as far as the paper states); dropout 0 on CPU budgets.
- The hidden state starts at zero (the reference: zero too).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from stcast.data.graphs import row_normalise
from stcast.errors import StcastError
from stcast.models.base import Prediction, ProblemSpec
from stcast.models.baselines.scaled_targets import ScaledTargetsImputer


class _GraphConv(nn.Module):
    """sum_k P^k X W_k over the supports (diffusion convolution, order K), x (B, N, F) -> (B, N, out)."""

    def __init__(self, c_in: int, c_out: int, num_supports: int, order: int, include_self: bool = True):
        super().__init__()
        self.order, self.include_self = order, include_self
        self.lin = nn.Linear(c_in * (int(include_self) + num_supports * order), c_out)

    def forward(self, x, receive):
        """receive: per support, R = P^T (node m receives sum_n P[n, m] x[n]), dense or sparse CSR."""
        out = [x] if self.include_self else []
        B, N, F = x.shape
        for r in receive:
            h = x
            for _ in range(self.order):
                if r.layout == torch.sparse_csr:  # sparse road graphs: (N, N) @ (N, B F)
                    h = (r @ h.transpose(0, 1).reshape(N, -1)).reshape(N, B, -1).transpose(0, 1)
                else:
                    h = torch.matmul(r, h)
                out.append(h)
        return self.lin(torch.cat(out, -1))


def _receivers(supports: torch.Tensor) -> list[torch.Tensor]:
    """P^T for each support; sparse CSR when under 20 % of the pairs are edges (METR-LA: 4 %), which costs a
    third of the dense product there (the same values: tests compare the two)."""
    out = []
    for a in supports:
        r = a.T.contiguous()
        if (r != 0).float().mean() < 0.2:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
                r = r.to_sparse_csr()
        out.append(r)
    return out


class _GRIL(nn.Module):
    def __init__(self, d_in: int, hidden: int, num_supports: int, order: int):
        super().__init__()
        self.hidden = hidden
        self.gates = _GraphConv(2 * d_in + hidden, 2 * hidden, num_supports, order)  # update and reset (MPGRU)
        self.cand = _GraphConv(2 * d_in + hidden, hidden, num_supports, order)
        self.first = nn.Linear(hidden, d_in)
        self.decoder_in = nn.Linear(2 * d_in + hidden, hidden)
        self.decoder_mp = _GraphConv(hidden, hidden, num_supports, 1, include_self=False)  # neighbours only
        self.act = nn.PReLU()
        self.second = nn.Linear(2 * hidden, d_in)

    def forward(self, x, m, supports, neighbours, spatial: bool = True):
        """x, m (B, L, N, D) -> first and second-stage estimates (B, L, N, D), representations (B, L, N, 2h)."""
        B, L, N, D = x.shape
        h = x.new_zeros(B, N, self.hidden)
        y1s, y2s, reps = [], [], []
        for t in range(L):  # steps are the only loop (L = window length)
            xt, mt = x[:, t], m[:, t]
            y1 = self.first(h)
            x1 = mt * xt + (1 - mt) * y1
            s = self.decoder_in(torch.cat([x1, mt, h], -1))
            s = self.act(self.decoder_mp(s, neighbours)) if spatial else self.act(s)
            rep = torch.cat([s, h], -1)
            y2 = self.second(rep)
            x2 = mt * xt + (1 - mt) * y2
            inp = torch.cat([x2, mt], -1)
            zr = torch.sigmoid(self.gates(torch.cat([inp, h], -1), supports))
            z, r = zr.chunk(2, -1)
            c = torch.tanh(self.cand(torch.cat([inp, r * h], -1), supports))
            h = z * h + (1 - z) * c
            y1s.append(y1)
            y2s.append(y2)
            reps.append(rep)
        return torch.stack(y1s, 1), torch.stack(y2s, 1), torch.stack(reps, 1)


class GRIN(ScaledTargetsImputer):
    name = "grin"
    needs_graph = True

    def __init__(self, spec: ProblemSpec, hidden: int = 64, ff: int = 64, order: int = 2,
                 use_spatial_decoder: bool = True, bidirectional: bool = True):
        super().__init__(spec)
        if hidden < 1 or ff < 1 or order < 1:
            raise StcastError(f"grin: hidden={hidden}, ff={ff} and order={order} must be >= 1")
        a = np.asarray(spec.adjacency, dtype=np.float32)
        self.register_buffer("supports", torch.stack([torch.as_tensor(row_normalise(a)),
                                                      torch.as_tensor(row_normalise(a.T))]))
        nb = a * (1 - np.eye(len(a), dtype=np.float32))  # the decoder's messages: neighbours only, no self-loop
        self.register_buffer("neighbours", torch.stack([torch.as_tensor(row_normalise(nb)),
                                                        torch.as_tensor(row_normalise(nb.T))]))
        d = spec.num_channels
        self.use_spatial_decoder, self.bidirectional = use_spatial_decoder, bidirectional
        self.fwd = _GRIL(d, hidden, 2, order)
        self.bwd = _GRIL(d, hidden, 2, order) if bidirectional else None
        width = 2 * hidden * (2 if bidirectional else 1)
        self.out = nn.Sequential(nn.Linear(width, ff), nn.ReLU(), nn.Linear(ff, d))

    def forward(self, batch) -> Prediction:
        self.check_window(batch.x)
        m = batch.x_mask.float()
        x = batch.x * m
        supports, neighbours = _receivers(self.supports), _receivers(self.neighbours)
        y1f, y2f, rf = self.fwd(x, m, supports, neighbours, self.use_spatial_decoder)
        stages, reps = [y1f, y2f], [rf]
        if self.bwd is not None:
            y1b, y2b, rb = self.bwd(x.flip(1), m.flip(1), supports, neighbours, self.use_spatial_decoder)
            stages += [y1b.flip(1), y2b.flip(1)]
            reps.append(rb.flip(1))
        y = self.out(torch.cat(reps, -1))
        point = m * x + (1 - m) * y
        if not (self.training and batch.eval_mask is not None):
            return Prediction(point)
        hid = batch.eval_mask.float()
        truth, n = self.scaled_truth(batch), hid.sum().clamp(min=1)
        loss = sum(((est - truth).abs() * hid).sum() / n for est in [y] + stages)  # section 4.3
        return Prediction(point, own_loss=loss)
