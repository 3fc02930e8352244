"""BRITS (Cao et al., NeurIPS 2018): bidirectional recurrent imputation with temporal decay, history
and feature regressions, and a forward/backward consistency loss. Features = nodes x channels.

The mechanisms, as the paper and its reference code (caow13/BRITS, `models/rits.py`, `models/brits.py`) build
them, each switchable for ablation:
- temporal decay (paper eq. 3): gamma_t = exp(-max(0, W_gamma delta_t + b_gamma)); the decay of the hidden state
  uses a full W, the input-side decay `gamma_x` (which weighs history against feature regression, eq. 7) a
  *diagonal* W, so feature d's weight reads only its own time since observation (`diag_decay=False`: a full W);
- history regression x_hat = W_x h_{t-1} + b_x (eq. 1), feature regression z_hat with a zero diagonal (eq. 5),
  their combination c_hat = beta z_hat + (1 - beta) x_hat, beta = sigmoid(W_beta [gamma_x, m] + b_beta) (eqs. 6-7);
- the objective (`objective="paper"`, the default): the reconstruction loss of the *observed* inputs, each of
  x_hat, z_hat and c_hat scored by a per-step masked MAE, summed over steps and divided by the window length
  (the reference code's `x_loss / SEQ_LEN`), for both directions, plus 0.1 x the mean absolute difference of the
  two directions' imputations (the consistency loss); all in the scaled space. The entries stcast hides are
  input-missing and never reach the loss, as in the paper (it hides its evaluation entries and trains on what
  is left).
  `objective="hidden"` instead trains on stcast's imputation loss (MAE of the hidden entries, in original units)
  with the two paper terms as auxiliary losses: the kind of objective stcast's `brits` had before 2026-12-05
  (its reconstruction term then weighed 1/L of the reference code's; here it has the reference scale).

Differences from the paper / reference code, with the reason:
- No classification head (the paper's joint label task): stcast's tasks are imputation and forecasting.
- Trained by stcast's trainer (its optimiser, early stopping on the hidden entries of the validation windows,
  time budget) like every other row of a table.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from stcast.errors import StcastError
from stcast.models.base import Prediction, ProblemSpec, STModel


class _FeatureRegression(nn.Module):
    """z_t = W x_t + b with a zero diagonal, so a feature is never regressed on itself (eq. 5)."""

    def __init__(self, d: int):
        super().__init__()
        self.linear = nn.Linear(d, d)
        self.register_buffer("offdiag", 1.0 - torch.eye(d))

    def forward(self, x):
        return nn.functional.linear(x, self.linear.weight * self.offdiag, self.linear.bias)


class _DiagonalDecay(nn.Module):
    """w * delta + b, one weight per feature: the diagonal W_gamma of the input decay (the caller applies
    exp(-relu(.)), as it does to the full-matrix `nn.Linear` this replaces)."""

    def __init__(self, d: int):
        super().__init__()
        bound = 1.0 / math.sqrt(d)
        self.weight = nn.Parameter(torch.empty(d).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(d).uniform_(-bound, bound))

    def forward(self, delta):
        return delta * self.weight + self.bias


def _reconstruction_loss(est, x, m):
    """est (3, B, L, D): x_hat, z_hat, c_hat. Each scored by a per-step masked MAE over the batch and features
    (the reference code's normalisation), summed over the three and the steps, divided by L."""
    per_step = ((est - x).abs() * m).sum((1, 3)) / (m.sum((0, 2)) + 1e-5)  # (3, L)
    return per_step.sum() / x.shape[1]


class _RITS(nn.Module):
    def __init__(self, d: int, hidden: int, diag_decay: bool = True):
        super().__init__()
        self.hidden = hidden
        self.decay_h = nn.Linear(d, hidden)
        self.decay_x = _DiagonalDecay(d) if diag_decay else nn.Linear(d, d)
        self.hist = nn.Linear(hidden, d)
        self.feat = _FeatureRegression(d)
        self.combine = nn.Linear(2 * d, d)
        self.cell = nn.LSTMCell(2 * d, hidden)

    def forward(self, x, m, delta):  # (B, L, D) each; steps are the only loop (L = window length)
        B, L, D = x.shape
        h = x.new_zeros(B, self.hidden)
        c = x.new_zeros(B, self.hidden)
        gamma_h = torch.exp(-torch.relu(self.decay_h(delta)))  # eq. 3, both decays for every step at once
        gamma_x = torch.exp(-torch.relu(self.decay_x(delta)))
        beta = torch.sigmoid(self.combine(torch.cat([gamma_x, m], -1)))  # eq. 7
        outs, ests = [], []
        for t in range(L):
            h = h * gamma_h[:, t]
            x_hist = self.hist(h)  # eq. 1
            x_c = m[:, t] * x[:, t] + (1 - m[:, t]) * x_hist
            z = self.feat(x_c)  # eq. 5
            c_hat = beta[:, t] * z + (1 - beta[:, t]) * x_hist  # eq. 6
            ests.append(torch.stack([x_hist, z, c_hat]))
            c_c = m[:, t] * x[:, t] + (1 - m[:, t]) * c_hat
            h, c = self.cell(torch.cat([c_c, m[:, t]], -1), (h, c))
            outs.append(c_c)
        return torch.stack(outs, 1), _reconstruction_loss(torch.stack(ests, 2), x, m)


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

    def __init__(self, spec: ProblemSpec, hidden: int = 64, consistency: float = 0.1, diag_decay: bool = True,
                 objective: str = "paper"):
        super().__init__(spec)
        if hidden < 1 or not 0 <= consistency < float("inf"):
            raise StcastError(f"brits: hidden={hidden} must be >= 1 and consistency={consistency} a finite "
                              "number >= 0")
        if objective not in ("paper", "hidden"):
            raise StcastError(f"brits: unknown objective {objective!r}; use 'paper' (the reconstruction of the "
                              "observed inputs + consistency) or 'hidden' (stcast's loss on the hidden entries)")
        d = spec.num_nodes * spec.num_channels
        self.fwd, self.bwd = _RITS(d, hidden, diag_decay), _RITS(d, hidden, diag_decay)
        self.consistency = consistency
        self.objective = objective

    def forward(self, batch) -> Prediction:
        B, L, N, C = batch.x.shape
        m = batch.x_mask.reshape(B, L, N * C).float()
        x = torch.where(m > 0, batch.x.reshape(B, L, N * C), 0.0)  # hidden / missing entries carry no value in
        out_f, loss_f = self.fwd(x, m, _deltas(m))
        out_b, loss_b = self.bwd(x.flip(1), m.flip(1), _deltas(m.flip(1)))
        out_b = out_b.flip(1)
        imputed = ((out_f + out_b) / 2).view(B, L, N, C)
        consistency = self.consistency * (out_f - out_b).abs().mean()
        if self.objective == "paper":
            return Prediction(imputed, own_loss=loss_f + loss_b + consistency)
        return Prediction(imputed, aux_losses={"reconstruction": loss_f + loss_b, "consistency": consistency})
