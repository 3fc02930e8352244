"""Missingness for imputation: seeded point (MCAR) and block masks, and the AQI-36 protocol split."""

from __future__ import annotations

import numpy as np
import torch

from stcast.data.core import SpatioTemporalData
from stcast.data.windows import starts_within
from stcast.errors import StcastError


class PointMissing:
    """Hide each observed entry independently with a rate drawn per window from U(r_min, r_max)."""

    def __init__(self, r_min: float = 0.7, r_max: float = 0.8):
        if not 0 <= r_min <= r_max < 1:
            raise StcastError(f"missing rates must satisfy 0 <= r_min <= r_max < 1; got {r_min}, {r_max}")
        self.r_min, self.r_max = r_min, r_max

    def __call__(self, observed: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        B = observed.shape[0]
        rate = self.r_min + (self.r_max - self.r_min) * torch.rand(B, generator=gen)
        u = torch.rand(observed.shape, generator=gen)
        return u < rate.view(B, *([1] * (observed.dim() - 1)))


class BlockMissing:
    """Contiguous outages per node: each (window, node) fails with probability `p_fail` for a run of
    `min_len..max_len` steps, plus sparse point noise at rate `p_point` (the GRIN 'block' setting)."""

    def __init__(self, p_fail: float = 0.15, min_len: int = 12, max_len: int = 48, p_point: float = 0.05):
        if min_len < 1 or max_len < min_len:
            raise StcastError(f"block lengths must satisfy 1 <= min_len <= max_len; got {min_len}, {max_len}")
        self.p_fail, self.min_len, self.max_len, self.p_point = p_fail, min_len, max_len, p_point

    def __call__(self, observed: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        B, L, N = observed.shape[:3]
        fail = torch.rand(B, 1, N, generator=gen) < self.p_fail
        length = torch.randint(self.min_len, self.max_len + 1, (B, 1, N), generator=gen).clamp(max=L)
        begin = (torch.rand(B, 1, N, generator=gen) * (L - length + 1)).long()
        t = torch.arange(L).view(1, L, 1)
        block = fail & (t >= begin) & (t < begin + length)  # (B, L, N)
        hidden = block.unsqueeze(-1).expand(observed.shape).clone()
        hidden |= torch.rand(observed.shape, generator=gen) < self.p_point
        return hidden


def make_missing(kind: str, **kw):
    if kind == "point":
        return PointMissing(**kw)
    if kind == "block":
        return BlockMissing(**kw)
    raise StcastError(f"unknown missingness {kind!r}; use 'point' or 'block'")


def aqi36_split(data: SpatioTemporalData, window: int = 36) -> dict[str, np.ndarray]:
    """GRIN/CSDI protocol: test months 3, 6, 9, 12 (non-overlapping windows); validation = the last 10%
    of the month before each test month; training = every other step."""
    labels = aqi36_labels(data)
    return {"train": starts_within(labels, 0, window), "val": starts_within(labels, 1, window),
            "test": starts_within(labels, 2, window, stride=window)}


def aqi36_labels(data: SpatioTemporalData) -> np.ndarray:
    """Per step: 0 training, 1 validation, 2 test (the GRIN/CSDI months). Anything fitted (scaler,
    historical means, graphs) may only read the steps labelled 0."""
    ts = data.timestamps.astype("datetime64[M]")
    month = (ts.astype(np.int64) % 12) + 1
    labels = np.zeros(len(ts), dtype=np.int8)  # 0 train, 1 val, 2 test
    labels[np.isin(month, [3, 6, 9, 12])] = 2
    for m in (2, 5, 8, 11):
        idx = np.flatnonzero(month == m)
        if len(idx):
            labels[idx[int(len(idx) * 0.9):]] = 1
    return labels
