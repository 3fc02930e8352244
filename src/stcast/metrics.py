"""Masked point metrics (per horizon step, pooled and per-step averaged) and probabilistic metrics.

Conventions (DCRNN/BasicTS): entries whose truth is missing (mask False, NaN, or equal to the null
value) are excluded; MAPE also excludes |y| <= mape_eps so near-zero truths cannot explode it.
"pooled" averages over every scored entry of every step (BasicTS's "overall"); "per_step" averages the
12 per-step figures (it differs for RMSE and when steps have different counts).
"""

from __future__ import annotations

import torch

from stcast.errors import StcastError

MAPE_EPS = 1e-4


def valid_mask(y: torch.Tensor, mask: torch.Tensor | None = None, null_value: float | None = None):
    m = torch.isfinite(y)
    if mask is not None:
        m &= mask.bool()
    if null_value is not None:
        m &= y != null_value
    return m


def masked_mae(pred, y, mask=None, null_value=None) -> torch.Tensor:
    m = valid_mask(y, mask, null_value)
    return torch.where(m, (pred - y).abs(), 0.0).sum() / m.sum().clamp(min=1)


def masked_rmse(pred, y, mask=None, null_value=None) -> torch.Tensor:
    m = valid_mask(y, mask, null_value)
    return (torch.where(m, (pred - y) ** 2, 0.0).sum() / m.sum().clamp(min=1)).sqrt()


def masked_mape(pred, y, mask=None, null_value=None, eps: float = MAPE_EPS) -> torch.Tensor:
    m = valid_mask(y, mask, null_value) & (y.abs() > eps)
    safe = torch.where(m, y, 1.0)
    return torch.where(m, ((pred - y) / safe).abs(), 0.0).sum() / m.sum().clamp(min=1)


class MetricAccumulator:
    """Streams batches (B, H, ...) and keeps per-step sums; nothing per sample is stored."""

    def __init__(self, horizon: int, null_value: float | None = None, mape_eps: float = MAPE_EPS):
        self.null_value, self.mape_eps = null_value, mape_eps
        z = lambda: torch.zeros(horizon, dtype=torch.float64)  # noqa: E731
        self.abs, self.sq, self.ape, self.n, self.n_ape, self.abs_y = z(), z(), z(), z(), z(), z()

    @torch.no_grad()
    def update(self, pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        m = valid_mask(y, mask, self.null_value)
        if self.abs.device != pred.device:  # sums live where the predictions are (no sync per batch on a GPU)
            self.abs, self.sq, self.ape, self.n, self.n_ape, self.abs_y = (
                t.to(pred.device) for t in (self.abs, self.sq, self.ape, self.n, self.n_ape, self.abs_y))
        dims = [d for d in range(pred.dim()) if d != 1]  # sum over everything but the step axis
        err = torch.where(m, pred - y, 0.0).double()
        self.abs += err.abs().sum(dims)
        self.sq += (err * err).sum(dims)
        self.n += m.sum(dims).double()
        self.abs_y += torch.where(m, y, 0.0).double().abs().sum(dims)
        mp = m & (y.abs() > self.mape_eps)
        self.ape += torch.where(mp, (pred - y).abs() / torch.where(mp, y, 1.0).abs(), 0.0).double().sum(dims)
        self.n_ape += mp.sum(dims).double()

    def reduce(self, all_reduce_sum) -> None:
        """Sum every rank's sums and counts (`all_reduce_sum(tensor) -> tensor`): the pooled figures are then
        exactly those of one process over all windows, never a mean of per-rank means."""
        packed = all_reduce_sum(torch.stack([self.abs, self.sq, self.ape, self.n, self.n_ape, self.abs_y]))
        self.abs, self.sq, self.ape, self.n, self.n_ape, self.abs_y = (t.clone() for t in packed.cpu())

    def per_step(self) -> dict[str, torch.Tensor]:
        """Per-step figures (on the CPU); NaN where a step has nothing to score (never a silent 0)."""
        nan = torch.tensor(float("nan"), dtype=torch.float64)
        abs_, sq, ape, n, n_ape = (t.cpu() for t in (self.abs, self.sq, self.ape, self.n, self.n_ape))
        n = torch.where(n > 0, n, nan)
        n_ape = torch.where(n_ape > 0, n_ape, nan)
        return {"mae": abs_ / n, "rmse": (sq / n).sqrt(), "mape": ape / n_ape}

    def summary(self, steps=(3, 6, 12)) -> dict[str, float]:
        """Pooled over all steps ('mae'), per-step averaged ('mae_stepavg'), and at chosen steps ('mae@3').

        A figure with nothing to score is NaN (every target missing; MAPE when every target is ~0), and
        `count` / `count_mape` say how many entries were scored."""
        def ratio(num, den) -> float:
            return float(num / den) if float(den) > 0 else float("nan")

        out = {}
        per = self.per_step()
        n = self.n.sum()
        out["mae"] = ratio(self.abs.sum(), n)
        out["rmse"] = ratio(self.sq.sum(), n) ** 0.5
        out["mape"] = ratio(self.ape.sum(), self.n_ape.sum())
        out["mre"] = ratio(self.abs.sum(), self.abs_y.sum()) if float(n) > 0 else float("nan")
        out["mse"] = ratio(self.sq.sum(), n)
        for k in ("mae", "rmse", "mape"):
            valid = per[k][~torch.isnan(per[k])]
            out[f"{k}_stepavg"] = float(valid.mean()) if len(valid) else float("nan")
        for s in steps:
            if 1 <= s <= len(self.n):
                for k in ("mae", "rmse", "mape"):
                    out[f"{k}@{s}"] = float(per[k][s - 1])
        out["count"] = int(n)
        out["count_mape"] = int(self.n_ape.sum())
        return out


def nothing_scored(metrics: dict) -> str | None:
    """A sentence for a user when a split had nothing to score (else None)."""
    if metrics.get("count", 1) == 0:
        return ("nothing could be scored: the split has no window, or every target entry in it is missing "
                "(MAE/RMSE/MAPE are NaN)")
    if metrics.get("count_mape", 1) == 0:
        return "MAPE could not be scored: every target is zero or missing (MAPE is NaN)"
    return None


# ------------------------------------------------------------------------------------ probabilistic


def pinball_loss(quantile_pred: torch.Tensor, y: torch.Tensor, quantiles, mask=None) -> torch.Tensor:
    """Mean over levels and valid entries of max(q (y - f), (q - 1)(y - f)); quantile axis last."""
    q = torch.as_tensor(quantiles, dtype=quantile_pred.dtype, device=quantile_pred.device)
    if quantile_pred.shape[-1] != len(q) or quantile_pred.shape[:-1] != y.shape:
        raise StcastError(f"quantile predictions {tuple(quantile_pred.shape)} do not match targets "
                          f"{tuple(y.shape)} x {len(q)} quantile levels")
    m = valid_mask(y, mask)
    diff = y.unsqueeze(-1) - quantile_pred
    loss = torch.maximum(q * diff, (q - 1) * diff)
    loss = torch.where(m.unsqueeze(-1), loss, 0.0)
    return loss.sum() / (m.sum().clamp(min=1) * len(q))


def laplace_nll(mu: torch.Tensor, b: torch.Tensor, y: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over valid entries of |y - mu| / b + log b (the Laplace negative log-likelihood less log 2)."""
    b = b.clamp(min=1e-6)
    nll = (torch.where(valid, y - mu, 0).abs() / b + b.log()) * valid
    return nll.sum() / valid.sum().clamp(min=1)


def interval_coverage(lower: torch.Tensor, upper: torch.Tensor, y: torch.Tensor, mask=None) -> torch.Tensor:
    """Fraction of valid truths inside [lower, upper]."""
    m = valid_mask(y, mask)
    inside = (y >= lower) & (y <= upper) & m
    return inside.sum() / m.sum().clamp(min=1)


def crps_from_quantiles(quantile_pred: torch.Tensor, y: torch.Tensor, quantiles, mask=None) -> torch.Tensor:
    """CRPS ~= 2 * mean pinball loss over the levels (the discretised quantile form used by CSDI and
    Chronos); `crps_normalised` divides by mean |y| as CSDI reports it."""
    return 2.0 * pinball_loss(quantile_pred, y, quantiles, mask)


def crps_normalised(quantile_pred, y, quantiles, mask=None) -> torch.Tensor:
    m = valid_mask(y, mask)
    denom = torch.where(m, y, 0.0).abs().sum() / m.sum().clamp(min=1)
    return crps_from_quantiles(quantile_pred, y, quantiles, mask) / denom.clamp(min=1e-12)


class ProbabilisticAccumulator:
    """Streams quantile forecasts: CRPS (2 x mean pinball over the levels, in units and normalised by mean |y|)
    and the empirical coverage of the central intervals whose bounds are among the levels (80 %: 0.1-0.9,
    98 %: 0.01-0.99, ...). Empty summary when nothing probabilistic was seen."""

    def __init__(self):
        self.pin, self.n, self.abs_y, self.levels = 0.0, 0.0, 0.0, None
        self.inside: dict[str, float] = {}

    @torch.no_grad()
    def update(self, q: torch.Tensor, y: torch.Tensor, levels, mask=None) -> None:
        m = valid_mask(y, mask)
        n = float(m.sum())
        self.levels = tuple(float(v) for v in levels)
        self.pin += float(pinball_loss(q, y, levels, m)) * n
        self.n += n
        self.abs_y += float(torch.where(m, y, 0.0).abs().sum())
        for lo_i, lo in enumerate(self.levels):
            hi = round(1 - lo, 6)
            if lo < 0.5 and hi in self.levels:
                hi_i = self.levels.index(hi)
                key = f"coverage{round(100 * (hi - lo))}"
                self.inside[key] = self.inside.get(key, 0.0) + float(
                    interval_coverage(q[..., lo_i], q[..., hi_i], y, m)) * n

    def reduce(self, all_reduce_sum, levels) -> None:
        """Sum every rank's totals; `levels` are the model's quantile levels (a rank that saw no window has
        none of its own)."""
        self.levels = tuple(float(v) for v in levels)
        keys = [f"coverage{round(100 * (round(1 - lo, 6) - lo))}" for lo in self.levels
                if lo < 0.5 and round(1 - lo, 6) in self.levels]
        vec = torch.tensor([self.pin, self.n, self.abs_y] + [self.inside.get(k, 0.0) for k in keys],
                           dtype=torch.float64)
        vec = all_reduce_sum(vec).cpu().tolist()
        self.pin, self.n, self.abs_y = vec[:3]
        self.inside = dict(zip(keys, vec[3:]))

    def summary(self) -> dict[str, float]:
        if not self.n:
            return {}
        out = {"crps": 2 * self.pin / self.n, "crps_norm": 2 * self.pin / max(self.abs_y, 1e-12)}
        out.update({k: v / self.n for k, v in sorted(self.inside.items())})
        return out
