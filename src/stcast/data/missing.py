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


# GRIN's METR-LA / PEMS-BAY imputation masks (Cini et al. 2022, section 5 and its `sample_mask`): drawn once over
# the whole series, fixed for every run. point: 25 % of the entries at random; block: a failure starts at each
# (step, sensor) with probability 0.15 % and lasts 1-4 hours (one length per sensor, as the reference draws it),
# plus 5 % of the entries at random.
GRIN_PROTOCOLS = {"grin-point": {"p_fault": 0.0, "p_noise": 0.25, "min_len": 1, "max_len": 1},
                  "grin-block": {"p_fault": 0.0015, "p_noise": 0.05, "min_len": 12, "max_len": 48}}
GRIN_SEED = 9101112  # ours: the reference's draw is not reproduced bit for bit, only its distribution


def grin_eval_mask(observed: np.ndarray, protocol: str, steps_per_hour: int = 12, seed: int = GRIN_SEED) -> np.ndarray:
    """observed (T, N, C) bool -> the entries the protocol hides and scores (observed ones only), seeded."""
    if protocol not in GRIN_PROTOCOLS:
        raise StcastError(f"unknown protocol {protocol!r}; known: aqi36, {', '.join(GRIN_PROTOCOLS)}")
    cfg = GRIN_PROTOCOLS[protocol]
    rng = np.random.default_rng(seed)
    T, N = observed.shape[:2]
    hit = rng.random((T, N)) < cfg["p_fault"]
    if cfg["max_len"] > 1:  # extend each failure start over its sensor's fault length (difference array, no loops)
        scale = steps_per_hour / 12  # the lengths are 1-4 hours; 12-48 steps at GRIN's 5-minute data
        lo, hi = max(1, round(cfg["min_len"] * scale)), max(1, round(cfg["max_len"] * scale))
        length = lo + rng.integers(0, hi - lo + 1, size=N) if hi > lo else np.full(N, lo)
        diff = np.zeros((T + 1, N), dtype=np.int64)
        t, n = np.nonzero(hit)
        np.add.at(diff, (t, n), 1)
        np.add.at(diff, (np.minimum(t + length[n], T), n), -1)
        hit = np.cumsum(diff[:T], axis=0) > 0
    hit = hit | (rng.random((T, N)) < cfg["p_noise"])
    return hit[:, :, None] & np.asarray(observed, dtype=bool)


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
