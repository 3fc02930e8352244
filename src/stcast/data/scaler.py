"""The z-score scaler: per channel, fitted on observed training values only."""

from __future__ import annotations

import numpy as np
import torch

from stcast.data.core import SpatioTemporalData
from stcast.errors import StcastError


class StandardScaler:
    """z-score per channel, fitted on observed training values only (missing entries ignored)."""

    def __init__(self, mean: np.ndarray | None = None, std: np.ndarray | None = None):
        self.mean, self.std = mean, std

    def fit(self, data: SpatioTemporalData, end_step: int | None = None, chunk: int = 4096,
            steps: np.ndarray | None = None) -> StandardScaler:
        """Fit on steps [0, end_step), or on the steps listed in `steps` (sorted indices: the training
        months of a protocol whose training steps are not one prefix, e.g. AQI-36)."""
        C = data.num_channels
        s, ss, n = np.zeros(C), np.zeros(C), np.zeros(C)
        if steps is None:
            steps = slice(0, data.num_steps if end_step is None else end_step)
        index = np.arange(data.num_steps)[steps]
        for a in range(0, len(index), chunk):  # chunked so a memmap is never loaded whole
            part = index[a:a + chunk]
            sel = slice(int(part[0]), int(part[-1]) + 1) if part[-1] - part[0] + 1 == len(part) else part
            v = np.asarray(data.values[sel], dtype=np.float64)
            m = data.observed(sel)
            v = np.where(m, v, 0.0)
            s += v.sum((0, 1))
            ss += (v * v).sum((0, 1))
            n += m.sum((0, 1))
        if (n == 0).any():
            raise StcastError(f"{data.meta.name}: a channel has no observed training values")
        self.mean = (s / n).astype(np.float32)
        var = np.maximum(ss / n - (s / n) ** 2, 0.0)
        self.std = np.where(var > 1e-12, np.sqrt(var), 1.0).astype(np.float32)
        return self

    def transform(self, x):
        mean, std = self._as(x)
        return (x - mean) / std

    def inverse(self, x):
        mean, std = self._as(x)
        return x * std + mean

    def _as(self, x):
        if isinstance(x, torch.Tensor):
            return (torch.as_tensor(self.mean, device=x.device), torch.as_tensor(self.std, device=x.device))
        return self.mean, self.std

    def state_dict(self) -> dict:
        return {"mean": torch.as_tensor(self.mean), "std": torch.as_tensor(self.std)}

    @classmethod
    def from_state_dict(cls, state) -> StandardScaler:
        return cls(state["mean"].numpy(), state["std"].numpy())
