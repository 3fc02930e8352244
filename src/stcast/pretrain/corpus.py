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

from dataclasses import dataclass

import numpy as np

from stcast.errors import StcastError
from stcast.pretrain.kernelsynth import kernelsynth

EVALUATION_DATASETS = ("los-loop", "metr-la", "etth1", "etth2")
PRETRAINING_DATASETS = ("exchange-rate", "illness", "aqi36", "hangzhou-metro", "chickenpox", "pedalme",
                        "england-covid", "milan-sample")


def real_series(names=PRETRAINING_DATASETS, data_dir=None, log=print) -> list[np.ndarray]:
    """Every node and channel of each dataset as its own float32 series (NaN where missing)."""
    from stcast.data.registry import load_dataset

    bad = set(names) & set(EVALUATION_DATASETS)
    if bad:
        raise StcastError(f"{sorted(bad)} are FactoST evaluation datasets and must not be in the pretraining corpus")
    out = []
    for name in names:
        d = load_dataset(name, data_dir)
        v = np.where(d.observed(), np.asarray(d.values, dtype=np.float32), np.nan)  # (T, N, C)
        series = v.reshape(v.shape[0], -1).T
        out.extend(s for s in series if np.isfinite(s).sum() >= 16)
        log(f"  corpus: {name}: {series.shape[0]} series x {series.shape[1]} steps")
    return out


@dataclass
class Corpus:
    flat: np.ndarray  # all series end to end with NaN gaps
    ends: np.ndarray  # (S,) last index + 1 of each series in `flat`
    lengths: np.ndarray  # (S,)
    synthetic: np.ndarray  # (S,) bool
    window: int
    p_synthetic: float

    @classmethod
    def build(cls, context: int, horizon: int, num_synthetic: int = 1000, synthetic_len: int | None = None,
              real: list[np.ndarray] | None = None, p_synthetic: float = 0.5, seed: int = 0) -> Corpus:
        window = context + horizon
        if real:  # a series must hold a minimal context and a horizon (drops e.g. PedalMe's 35 weeks)
            real = [s for s in real if len(s) >= min(window, 2 * horizon)]
        synth, _ = kernelsynth(num_synthetic, synthetic_len or window, seed=seed) if num_synthetic else (
            np.zeros((0, window), np.float32), [])
        series = list(synth) + list(real or [])
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
        return cls(np.concatenate(parts), np.array(ends), lengths, syn, window, p)

    def sample(self, batch: int, min_context: int, horizon: int, rng: np.random.Generator) -> np.ndarray:
        """(batch, window) windows whose last `horizon` steps lie inside a series; NaN = missing/outside."""
        syn = rng.random(batch) < self.p_synthetic
        pick = np.empty(batch, dtype=np.int64)
        for flag in (True, False):
            pool = np.flatnonzero(self.synthetic == flag)
            k = int((syn == flag).sum())
            if k:
                w = self.lengths[pool].astype(np.float64)
                pick[syn == flag] = rng.choice(pool, size=k, p=w / w.sum())
        need = np.minimum(self.lengths[pick], min_context + horizon)
        lo = self.ends[pick] - self.lengths[pick] + need  # earliest window end
        end = lo + (rng.random(batch) * (self.ends[pick] - lo + 1)).astype(np.int64)
        idx = (end - self.window)[:, None] + np.arange(self.window)
        return self.flat[idx]
