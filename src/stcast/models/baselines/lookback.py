"""Zero-shot anchors that read nothing but each window's own lookback (issue 31): the historical average of the
available history, and per-series statistical models from statsforecast (AutoETS, AutoTheta, MSTL) fitted on each
sensor's lookback alone. Nothing is learned across series or from the training part, as zero-shot requires (the
data's z-scoring, shared by every row of a table, is the only statistic of the training part they see).

Give them a long lookback with `context_len` (engine/splits.py): the scored targets stay the protocol's.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from stcast.errors import StcastError
from stcast.models.base import Prediction, ProblemSpec
from stcast.models.baselines.naive import LastValue, _Statistical, interpolate_time


class LookbackAverage(_Statistical):
    """The mean of the lookback's steps in the target's time-of-day slot (`period: day`) or time-of-week slot
    (`week`), per node and channel, observed entries only; a target slot the lookback never saw gets the last
    observed value. With 12 steps of lookback this is the last value; with a week of it, the daily profile."""

    name = "lookback-average"

    def __init__(self, spec: ProblemSpec, period: str = "day"):
        super().__init__(spec)
        if period not in ("day", "week"):
            raise StcastError(f"lookback-average period={period!r}: use 'day' or 'week'")
        self.period = period

    def forward(self, batch) -> Prediction:
        S = self.spec.steps_per_day
        slot_x, slot_y = batch.tod_x, batch.tod_y
        if self.period == "week":
            slot_x, slot_y = batch.dow_x * S + slot_x, batch.dow_y * S + slot_y
        same = (slot_x[:, :, None] == slot_y[:, None, :]).to(batch.x.dtype)  # (B, L, H)
        m = batch.x_mask.to(batch.x.dtype)
        total = torch.einsum("blh,blnc->bhnc", same, batch.x * m)
        count = torch.einsum("blh,blnc->bhnc", same, m)
        fallback = LastValue.forward(self, batch).point
        return Prediction(torch.where(count > 0, total / count.clamp(min=1), fallback))


STATS_METHODS = ("auto-ets", "auto-theta", "mstl")


class StatsForecastModel(_Statistical):
    """One statsforecast model per series (node, channel) and window, fitted on that window's lookback only,
    forecasting the horizon with its 80 % interval (quantiles 0.1 / 0.5 / 0.9; the median is the point forecast).

    - `auto-ets`: AutoETS, non-seasonal (statsforecast's AutoETS refits without a season beyond 24 steps, at 100x
      the time: a season of 288 five-minute steps is out of its reach).
    - `auto-theta`: AutoTheta with the daily season (`season`, default one day) when the lookback holds two of
      them, else non-seasonal.
    - `mstl`: MSTL (daily season, AutoETS on the trend) when the lookback holds two seasons, else AutoETS.
    Missing lookback entries are filled by linear interpolation along time first (the models take no gaps); a
    series with no observation at all gets its scaled mean (0). Cost: one fit per series and window (about
    0.03 s / 0.07 s / 0.18 s for 576 steps on one core), so score these on a strided test set (`eval_stride`).
    """

    name = "statsforecast"
    native_quantiles = True  # the models' own intervals

    def __init__(self, spec: ProblemSpec, method: str = "auto-theta", season: int | None = None):
        super().__init__(spec)
        if method not in STATS_METHODS:
            raise StcastError(f"statsforecast method={method!r}; known: {', '.join(STATS_METHODS)}")
        self.season = season if season is not None else spec.steps_per_day
        if isinstance(self.season, bool) or not isinstance(self.season, int) or self.season < 1:
            raise StcastError(f"statsforecast season={season!r} must be an integer >= 1 (steps)")
        try:
            import statsforecast  # noqa: F401
        except ImportError as e:
            raise StcastError("the statsforecast anchors need the statsforecast package: pip install "
                              "'stcast[stats]' (or statsforecast)") from e
        self.method = method
        self.quantile_levels = (0.1, 0.5, 0.9)

    def _model(self, length: int):
        from statsforecast.models import MSTL, AutoETS, AutoTheta

        seasonal = length >= 2 * self.season and self.season > 1
        if self.method == "auto-ets" or (self.method == "mstl" and not seasonal):
            return AutoETS(season_length=1)
        if self.method == "auto-theta":
            return AutoTheta(season_length=self.season if seasonal else 1)
        return MSTL(season_length=self.season, trend_forecaster=AutoETS(model="ZZN"))

    def forward(self, batch) -> Prediction:
        B, L, N, C = batch.x.shape
        H = self.out_len
        filled = interpolate_time(batch.x, batch.x_mask, torch.zeros(()))
        series = filled.permute(0, 2, 3, 1).reshape(-1, L).double().cpu().numpy()
        seen = batch.x_mask.permute(0, 2, 3, 1).reshape(-1, L).any(1).cpu().numpy()
        out = np.zeros((len(series), H, 3))
        model = self._model(L)
        failed = np.zeros(len(series), bool)
        for i in np.flatnonzero(seen):  # one fit per series: the method itself (nothing is shared across series)
            try:
                f = model.forecast(y=series[i], h=H, level=[80])
                out[i] = np.stack([f["lo-80"], f["mean"], f["hi-80"]], -1)
            except (ValueError, ZeroDivisionError, np.linalg.LinAlgError, FloatingPointError):
                failed[i] = True  # a degenerate lookback (e.g. constant) the model cannot fit
        failed |= ~np.isfinite(out).all(axis=(1, 2))  # or a fit that returned NaN / inf
        if failed.any():  # those series get the last value, and the user is told how many
            out[failed] = series[failed, -1:, None]
            warnings.warn(f"statsforecast {self.method}: {int(failed.sum())} of {int(seen.sum())} fits failed or "
                          "returned non-finite values; those series repeat their last value", stacklevel=2)
        q = torch.from_numpy(out).float().view(B, N, C, H, 3).permute(0, 3, 1, 2, 4).sort(-1).values
        return Prediction(q[..., 1].contiguous().to(batch.x.device), quantiles=q.to(batch.x.device),
                          levels=self.quantile_levels)
