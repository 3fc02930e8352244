"""The offline UTP pretraining corpus: KernelSynth series plus the real univariate series in ../shared/data,
node-wise, never a dataset used to evaluate FactoST.

`EVALUATION_DATASETS` are excluded (FactoST's benchmarks: Los-loop, which is a METR-LA week, and ETTh2; ETTh1
is excluded too, being the sibling station of ETTh2 over the same period). `PRETRAINING_DATASETS` is the
explicit list of real datasets used; a test checks the two never meet.

Sampling is vectorised: all series are laid end to end in one flat array with NaN gaps of a window's length
between them, so a batch of windows is one fancy-index gather; a window reaching past its series' start
reads NaN, i.e. a shorter (masked) context.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stcast.errors import StcastError
from stcast.pretrain.kernelsynth import kernelsynth

EVALUATION_DATASETS = ("los-loop", "metr-la", "etth1", "etth2")
PRETRAINING_DATASETS = ("exchange-rate", "illness", "aqi36", "hangzhou-metro", "chickenpox", "pedalme",
                        "england-covid", "milan-sample")


def real_series(names=PRETRAINING_DATASETS, data_dir=None, log=print, with_sources: bool = False):
    """Every node and channel of each dataset as its own float32 series (NaN where missing); with
    `with_sources`, also the dataset name of each series (what the checkpoint's recipe records)."""
    from stcast.data.registry import load_dataset

    bad = set(names) & set(EVALUATION_DATASETS)
    if bad:
        raise StcastError(f"{sorted(bad)} are FactoST evaluation datasets and must not be in the pretraining corpus")
    out, sources = [], []
    for name in names:
        d = load_dataset(name, data_dir)
        v = np.where(d.observed(), np.asarray(d.values, dtype=np.float32), np.nan)  # (T, N, C)
        series = v.reshape(v.shape[0], -1).T
        kept = [s for s in series if np.isfinite(s).sum() >= 16]
        out.extend(kept)
        sources.extend([name] * len(kept))
        log(f"  corpus: {name}: {series.shape[0]} series x {series.shape[1]} steps"
            + (f" ({series.shape[0] - len(kept)} with under 16 observed steps left out)" if len(kept) < len(series)
               else ""))
    return (out, sources) if with_sources else out


@dataclass
class Corpus:
    flat: np.ndarray  # all series end to end with NaN gaps
    ends: np.ndarray  # (S,) last index + 1 of each series in `flat`
    lengths: np.ndarray  # (S,)
    synthetic: np.ndarray  # (S,) bool
    window: int
    p_synthetic: float
    used: dict = field(default_factory=dict)  # per real dataset: series and points used, series too short

    @classmethod
    def build(cls, context: int, horizon: int, num_synthetic: int = 1000, synthetic_len: int | None = None,
              real: list[np.ndarray] | None = None, p_synthetic: float = 0.5, seed: int = 0,
              sources: list[str] | None = None, min_len: int = 48, log=None) -> Corpus:
        """`min_len`: the shortest real series used (a minimal context plus one patch of future); a shorter one
        is left out and counted in `used`. A series shorter than context + horizon gives windows with a
        shorter context and a shorter (NaN-padded, unscored) future: `sample`."""
        window = context + horizon
        real = list(real or [])
        sources = list(sources) if sources is not None else ["real"] * len(real)
        if len(sources) != len(real):
            raise StcastError(f"{len(sources)} source names for {len(real)} real series")
        used: dict = {}
        kept = []
        for s, name in zip(real, sources):
            u = used.setdefault(name, {"series": 0, "points": 0, "too_short": 0})
            if len(s) >= min_len:
                kept.append(s)
                u["series"] += 1
                u["points"] += int(len(s))
            else:
                u["too_short"] += 1
        for name, u in used.items():
            if u["too_short"] and log is not None:
                log(f"  corpus: {name}: {u['too_short']} series shorter than {min_len} steps left out")
        synth, _ = kernelsynth(num_synthetic, synthetic_len or window, seed=seed) if num_synthetic else (
            np.zeros((0, window), np.float32), [])
        series = list(synth) + kept
        if not series:
            raise StcastError("empty pretraining corpus")
        gap = np.full(window, np.nan, dtype=np.float32)
        parts, ends, pos = [gap], [], window
        for s in series:
            parts += [np.asarray(s, np.float32), gap]
            pos += len(s)
            ends.append(pos)
            pos += window
        lengths = np.array([len(s) for s in series])
        syn = np.zeros(len(series), bool)
        syn[:len(synth)] = True
        p = p_synthetic if len(synth) and len(series) > len(synth) else float(len(synth) > 0)
        return cls(np.concatenate(parts), np.array(ends), lengths, syn, window, p, used)

    def sample(self, batch: int, min_context: int, horizon: int, rng: np.random.Generator) -> np.ndarray:
        """(batch, window) windows; NaN = missing/outside. The context ends at a split point c with at least
        `min_context` steps of the series before it and h = min(horizon, length - min_context) after it, so a
        long series always fills the horizon with real data and a short one gives a shorter future (its tail
        NaN, unscored) instead of being dropped."""
        syn = rng.random(batch) < self.p_synthetic
        pick = np.empty(batch, dtype=np.int64)
        for flag in (True, False):
            pool = np.flatnonzero(self.synthetic == flag)
            k = int((syn == flag).sum())
            if k:
                w = self.lengths[pool].astype(np.float64)
                pick[syn == flag] = rng.choice(pool, size=k, p=w / w.sum())
        lengths, ends = self.lengths[pick], self.ends[pick]
        lead = np.minimum(min_context, lengths - 1)
        h = np.clip(lengths - lead, 1, horizon)
        c_lo, c_hi = ends - lengths + lead, ends - h  # the split point's range
        c = c_lo + (rng.random(batch) * (c_hi - c_lo + 1)).astype(np.int64)
        context = self.window - horizon
        idx = (c - context)[:, None] + np.arange(self.window)
        return self.flat[idx]
