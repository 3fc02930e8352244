"""The offline UTP pretraining corpus: KernelSynth series plus the real univariate series in ../shared/data,
node-wise, never a dataset used to evaluate FactoST.

`EVALUATION_DATASETS` are excluded: every dataset stcast reports FactoST zero-shot on (METR-LA, Los-loop, which is a
METR-LA week, Hangzhou metro, AQI-36, ETTh2; ETTh1 too, being the sibling station of ETTh2 over the same period).
The first shipped checkpoint (2026-11) read AQI-36 and Hangzhou metro; its zero-shot figures on those two are not
zero-shot (docs say so). `PRETRAINING_DATASETS` is the explicit list of real datasets used; a test checks the two
never meet.

Augmentations (`augment`, issue 31), as the foundation models that pretrain on few real series do: TSMixup
(Chronos, Ansari et al. 2024): a share of the windows is replaced by a convex mix (Dirichlet weights) of 2-3
windows, each divided by its context's mean |value| first, so that no series dominates by its units; random
scaling multiplies a window by a log-uniform factor (the instance normalisation makes the model invariant to it
in theory; it keeps the min-std filter and the projection honest at every scale).

Sampling is vectorised: all series are laid end to end in one flat array with NaN gaps of a window's length
between them, so a batch of windows is one fancy-index gather; a window reaching past its series' start
reads NaN, i.e. a shorter (masked) context.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stcast.errors import StcastError
from stcast.pretrain.kernelsynth import kernelsynth

SYNTH_CHUNK = 500  # KernelSynth series per cached file


def cached_kernelsynth(num: int, length: int, seed: int, cache_dir, log=print) -> np.ndarray:
    """`num` KernelSynth series of `length` steps, drawn in chunks of SYNTH_CHUNK (chunk i seeded (seed, i); chunk 0
    with `seed` itself) and each chunk saved in `cache_dir` as it is done, so a long draw shows progress, survives
    a restart and is shared by runs with the same (length, seed). Plain .npy, read without pickle."""
    from pathlib import Path

    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    parts, n_chunks = [], -(-num // SYNTH_CHUNK)
    for i in range(n_chunks):
        k = min(SYNTH_CHUNK, num - i * SYNTH_CHUNK)
        path = cache / f"kernelsynth-L{length}-seed{seed}-chunk{i}.npy"
        arr = None
        if path.is_file():
            try:
                arr = np.load(path, allow_pickle=False)
            except (ValueError, OSError):  # a chunk cut short by a kill: drawn again
                arr = None
        if arr is None or arr.shape[0] < k or arr.shape[1] != length:
            arr, _ = kernelsynth(SYNTH_CHUNK, length, seed=seed if i == 0 else [seed, i])
            tmp = path.with_name(path.stem + ".tmp.npy")
            np.save(tmp, arr)
            tmp.replace(path)
            log(f"  KernelSynth: {min((i + 1) * SYNTH_CHUNK, num):,}/{num:,} series of {length} steps drawn")
        parts.append(arr[:k])
    return np.concatenate(parts) if parts else np.zeros((0, length), np.float32)

EVALUATION_DATASETS = ("los-loop", "metr-la", "etth1", "etth2", "hangzhou-metro", "aqi36")
PRETRAINING_DATASETS = ("exchange-rate", "illness", "nycbike1", "chickenpox", "pedalme", "england-covid",
                        "milan-sample")


def augment(windows: np.ndarray, context: int, rng: np.random.Generator, p_mix: float = 0.5, max_mix: int = 3,
            scale: float = 10.0) -> np.ndarray:
    """TSMixup and random scaling of a batch of (B, window) windows (NaN = missing), vectorised; see the module
    docstring. A mixed window is NaN wherever one of its parts is (its context is the shortest of theirs)."""
    B = len(windows)
    out = windows.copy()
    if p_mix > 0 and B > 1:
        ctx = np.abs(windows[:, :context])
        seen = np.isfinite(ctx)
        level = np.where(seen, ctx, 0).sum(1) / np.maximum(seen.sum(1), 1)
        level = np.where(level > 1e-8, level, 1.0)[:, None]
        unit = windows / level
        mixed = rng.random(B) < p_mix
        k = rng.integers(2, max_mix + 1, size=B)  # parts per mixed window
        partners = rng.integers(0, B, size=(B, max_mix))
        used = np.arange(max_mix)[None, :] < k[:, None]
        # a mix always contains its own window; unused slots point at it too (weight 0, no foreign NaN)
        partners = np.where(used, partners, np.arange(B)[:, None])
        partners[:, 0] = np.arange(B)
        w = np.where(used, rng.dirichlet(np.full(max_mix, 1.5), size=B), 0.0)
        w = w / w.sum(1, keepdims=True)
        mix = np.einsum("bk,bkt->bt", w, unit[partners])  # NaN in any part stays NaN
        out = np.where(mixed[:, None], mix, windows).astype(windows.dtype)
    if scale > 1:
        out = out * np.exp(rng.uniform(-np.log(scale), np.log(scale), size=(B, 1))).astype(windows.dtype)
    return out


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
              sources: list[str] | None = None, min_len: int = 48, log=None,
              synthetic: np.ndarray | None = None) -> Corpus:
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
        if synthetic is not None:  # drawn beforehand (pretrain's cached, chunked KernelSynth)
            synth = synthetic
        else:
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
