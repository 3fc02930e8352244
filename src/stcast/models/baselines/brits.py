"""BRITS (Cao et al., NeurIPS 2018): bidirectional recurrent imputation with temporal decay, history
and feature regressions, and a forward/backward consistency loss. Features = nodes x channels."""

from __future__ import annotations

import torch
from torch import nn

from stcast.models.base import Prediction, ProblemSpec, STModel


class _FeatureRegression(nn.Module):
    """z_t = W x_t + b with a zero diagonal, so a feature is never regressed on itself."""

    def __init__(self, d: int):
        super().__init__()
        self.linear = nn.Linear(d, d)
        self.register_buffer("offdiag", 1.0 - torch.eye(d))

    def forward(self, x):
        return nn.functional.linear(x, self.linear.weight * self.offdiag, self.linear.bias)


class _RITS(nn.Module):
    def __init__(self, d: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.decay_h = nn.Linear(d, hidden)
        self.decay_x = nn.Linear(d, d)
        self.hist = nn.Linear(hidden, d)
        self.feat = _FeatureRegression(d)
        self.combine = nn.Linear(2 * d, d)
        self.cell = nn.LSTMCell(2 * d, hidden)

    def forward(self, x, m, delta):  # (B, L, D) each; steps are the only loop (L = window length)
        B, L, D = x.shape
        h = x.new_zeros(B, self.hidden)
        c = x.new_zeros(B, self.hidden)
        outs, loss = [], x.new_zeros(())
        gamma_h = torch.exp(-torch.relu(self.decay_h(delta)))
        gamma_x = torch.exp(-torch.relu(self.decay_x(delta)))
        beta = torch.sigmoid(self.combine(torch.cat([gamma_x, m], -1)))
        denom = m.sum().clamp(min=1)
        for t in range(L):
            h = h * gamma_h[:, t]
            x_hist = self.hist(h)
            x_c = m[:, t] * x[:, t] + (1 - m[:, t]) * x_hist
            z = self.feat(x_c)
            c_hat = beta[:, t] * z + (1 - beta[:, t]) * x_hist
            for est in (x_hist, z, c_hat):  # reconstruction of the observed inputs
                loss = loss + ((est - x[:, t]).abs() * m[:, t]).sum() / denom
            c_c = m[:, t] * x[:, t] + (1 - m[:, t]) * c_hat
            h, c = self.cell(torch.cat([c_c, m[:, t]], -1), (h, c))
            outs.append(c_c)
        return torch.stack(outs, 1), loss


def _deltas(m: torch.Tensor) -> torch.Tensor:
    """Steps since the last observation per feature (BRITS eq. for delta), vectorised over time."""
    L = m.shape[1]
    t = torch.arange(L, device=m.device, dtype=m.dtype).view(1, L, 1)
    last = torch.where(m > 0, t, torch.zeros_like(t)).cummax(1).values
    prev_last = torch.cat([torch.zeros_like(last[:, :1]), last[:, :-1]], 1)
    return torch.where(t == 0, torch.zeros_like(t.expand_as(m)), t - prev_last)


class BRITS(STModel):
    name = "brits"
    tasks = ("impute",)

    def __init__(self, spec: ProblemSpec, hidden: int = 64, consistency: float = 0.1):
        super().__init__(spec)
        d = spec.num_nodes * spec.num_channels
        self.fwd, self.bwd = _RITS(d, hidden), _RITS(d, hidden)
        self.consistency = consistency

    def forward(self, batch) -> Prediction:
        B, L, N, C = batch.x.shape
        x = batch.x.reshape(B, L, N * C)
        m = batch.x_mask.reshape(B, L, N * C).float()
        out_f, loss_f = self.fwd(x, m, _deltas(m))
        out_b, loss_b = self.bwd(x.flip(1), m.flip(1), _deltas(m.flip(1)))
        out_b = out_b.flip(1)
        imputed = (out_f + out_b) / 2
        aux = {"reconstruction": (loss_f + loss_b) / L,
               "consistency": self.consistency * (out_f - out_b).abs().mean()}
        return Prediction(imputed.view(B, L, N, C), aux_losses=aux)
