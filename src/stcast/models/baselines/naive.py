"""Statistical baselines: last value, seasonal naive, historical average, mean and interpolation imputers."""

from __future__ import annotations

import numpy as np
import torch

from stcast.models.base import Prediction, ProblemSpec, STModel
from stcast.task import Task


class _Statistical(STModel):
    """No trainable weights: a dummy parameter keeps optimisers and devices happy."""

    trainable = False

    def __init__(self, spec: ProblemSpec):
        super().__init__(spec)
        self._device_anchor = torch.nn.Parameter(torch.zeros(()), requires_grad=False)


class LastValue(_Statistical):
    """Repeat the last observed input value of each node (the 'copy last' baseline)."""

    name = "last-value"

    def forward(self, batch) -> Prediction:
        obs = batch.x_mask
        L = obs.shape[1]
        idx = torch.where(obs, torch.arange(L, device=obs.device).view(1, L, 1, 1), -1).amax(1)  # (B, N, C)
        last = batch.x.gather(1, idx.clamp(min=0).unsqueeze(1)).squeeze(1)
        last = torch.where(idx >= 0, last, 0.0)  # a node never observed falls back to the mean (0 scaled)
        return Prediction(last.unsqueeze(1).expand(-1, self.out_len, -1, -1).contiguous())


class SeasonalNaive(_Statistical):
    """y[t] = value one season earlier (default one day), read from the series itself."""

    name = "seasonal-naive"
    reads_input_window = False  # one season earlier, from the series

    def __init__(self, spec: ProblemSpec, season: int | None = None):
        super().__init__(spec)
        self.season = season or spec.steps_per_day
        if self.season < spec.horizon:
            from stcast.errors import StcastError

            raise StcastError(f"seasonal-naive needs season >= horizon ({self.season} < {spec.horizon}): the default "
                              f"season is one day ({spec.steps_per_day} step{'s' * (spec.steps_per_day != 1)} here); "
                              "set model_kw.seasonal-naive.season to the series' period in steps (e.g. 52 for "
                              "weekly data with a yearly cycle), or a shorter --horizon")
        self._data = self._scaler = None

    def fit_statistics(self, train_windows) -> None:
        self.attach(train_windows.data, train_windows.scaler)

    def attach(self, data, scaler) -> None:
        self._data, self._scaler = data, scaler
        if data.num_steps <= self.season:  # no target has a value one season earlier: it is last value throughout
            import warnings

            warnings.warn(f"seasonal-naive: {data.meta.name} has {data.num_steps} steps, not more than one season "
                          f"({self.season} steps): every forecast falls back to the last value (set "
                          "model_kw.seasonal-naive.season to a shorter period)", stacklevel=2)

    def forward(self, batch) -> Prediction:
        starts = batch.start.cpu().numpy()
        idx = starts[:, None] + self.spec.input_len + np.arange(self.out_len) - self.season  # (B, H)
        ok = idx >= 0
        vals = np.asarray(self._data.values[np.clip(idx, 0, None)], dtype=np.float32)
        obs = np.asarray(self._data.observed(np.clip(idx, 0, None)))
        out = torch.from_numpy(self._scaler.transform(vals))
        keep = torch.from_numpy(obs & ok[:, :, None, None])
        fallback = LastValue.forward(self, batch).point.cpu()  # too early in the series or missing
        return Prediction(torch.where(keep, out, fallback).to(batch.x.device))


class HistoricalAverage(_Statistical):
    """Mean of the training data per time-of-week slot, node and channel (scaled space); slots never
    seen in training fall back to the time-of-day mean, then to the node mean."""

    name = "ha"
    reads_input_window = False  # the training mean of the target's time-of-week slot
    tasks = (Task.FORECAST, Task.IMPUTE)

    def __init__(self, spec: ProblemSpec, period: str = "week"):
        super().__init__(spec)
        self.period = period
        S = spec.steps_per_day
        self.register_buffer("week", torch.zeros(7 * S, spec.num_nodes, spec.num_channels))
        self.register_buffer("day", torch.zeros(S, spec.num_nodes, spec.num_channels))

    def fit_statistics(self, train_windows) -> None:
        data, scaler = train_windows.data, train_windows.scaler
        steps = train_windows.fit_steps
        tod, dow = data.calendar()
        v = torch.from_numpy(scaler.transform(np.asarray(data.values[steps], dtype=np.float32)))
        m = torch.from_numpy(np.asarray(data.observed(steps))).float()
        v = v * m
        S = self.spec.steps_per_day
        node_mean = v.sum(0) / m.sum(0).clamp(min=1)

        def slot_means(slot, n_slots, fallback):
            idx = torch.from_numpy(slot[steps])
            s = torch.zeros(n_slots, *v.shape[1:]).index_add_(0, idx, v)
            c = torch.zeros(n_slots, *v.shape[1:]).index_add_(0, idx, m)
            return torch.where(c > 0, s / c.clamp(min=1), fallback)

        self.day.copy_(slot_means(tod, S, node_mean.expand(S, -1, -1)))
        week_fallback = self.day.repeat(7, 1, 1)
        self.week.copy_(slot_means(dow * S + tod, 7 * S, week_fallback))

    def forward(self, batch) -> Prediction:
        tod, dow = (batch.tod_y, batch.dow_y) if self.spec.task is Task.FORECAST else (batch.tod_x, batch.dow_x)
        if self.period == "week":
            point = self.week[dow * self.spec.steps_per_day + tod]
        else:
            point = self.day[tod]
        if self.spec.task is Task.IMPUTE:  # keep what is observed
            point = torch.where(batch.x_mask, batch.x, point)
        return Prediction(point)


class MeanImputer(_Statistical):
    """Fill hidden entries with each node's training mean."""

    name = "mean-impute"
    tasks = (Task.IMPUTE,)

    def __init__(self, spec: ProblemSpec):
        super().__init__(spec)
        self.register_buffer("mean", torch.zeros(spec.num_nodes, spec.num_channels))

    def fit_statistics(self, train_windows) -> None:
        data, steps = train_windows.data, train_windows.fit_steps
        v = train_windows.scaler.transform(np.asarray(data.values[steps], dtype=np.float32))
        m = np.asarray(data.observed(steps))
        self.mean.copy_(torch.from_numpy((np.where(m, v, 0).sum(0) / np.maximum(m.sum(0), 1)).astype(np.float32)))

    def forward(self, batch) -> Prediction:
        return Prediction(torch.where(batch.x_mask, batch.x, self.mean.expand_as(batch.x)))


def interpolate_time(x: torch.Tensor, mask: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """Linear interpolation along axis 1 between observed entries; nearest value at the edges;
    `fallback` (broadcastable) where a series has no observation. Fully vectorised."""
    L = x.shape[1]
    t = torch.arange(L, device=x.device).view(1, L, *([1] * (x.dim() - 2))).expand_as(x)
    prev = torch.where(mask, t, -1).cummax(1).values
    nxt = torch.where(mask, t, L).flip(1).cummin(1).values.flip(1)
    has_prev, has_next = prev >= 0, nxt < L
    xp = x.gather(1, prev.clamp(min=0))
    xn = x.gather(1, nxt.clamp(max=L - 1))
    w = (t - prev).float() / (nxt - prev).clamp(min=1).float()
    both = xp + w * (xn - xp)
    out = torch.where(has_prev & has_next, both, torch.where(has_prev, xp, torch.where(has_next, xn, fallback)))
    return torch.where(mask, x, out)


class LinearInterpolation(MeanImputer):
    """Linear interpolation in time within the window (nearest at the edges; node mean if empty)."""

    name = "interpolate"

    def forward(self, batch) -> Prediction:
        return Prediction(interpolate_time(batch.x, batch.x_mask, self.mean.expand_as(batch.x)))
