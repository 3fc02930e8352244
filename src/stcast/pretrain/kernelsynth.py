"""KernelSynth (Ansari et al., Chronos 2024, Alg. 1): series drawn from Gaussian processes whose kernel is a
random sum/product of 1-5 kernels from a bank (linear, RBF, periodic, rational quadratic, white noise).

Periodic kernels use the periods a spatio-temporal user meets (daily and weekly cycles at 5-min, 10-min,
15-min, 30-min and hourly steps, weekly and yearly at daily/weekly steps), measured in steps, so a series of
length T sampled on the step grid 0..T-1 carries those cycles. Samples are z-scored; numpy only.
"""

from __future__ import annotations

import numpy as np

PERIODS = (288, 2016, 144, 1008, 96, 672, 48, 336, 24, 168, 7, 30, 52, 12, 4)


def _kernel_bank(t: np.ndarray, rng: np.random.Generator):
    """One random kernel matrix (T, T) from the bank, and its name."""
    T = len(t)
    d = np.abs(t[:, None] - t[None, :])
    kind = rng.integers(5)
    if kind == 0:  # linear (DotProduct on [0, 1]) with offset sigma_0
        s = t / max(T - 1, 1)
        return np.outer(s, s) + rng.choice([0.0, 0.1, 1.0]), "linear"
    if kind == 1:  # RBF with a length scale in steps
        ls = rng.choice([0.02, 0.1, 0.5]) * T
        return np.exp(-0.5 * (d / ls) ** 2), "rbf"
    if kind == 2:  # periodic (ExpSineSquared) at a daily / weekly / yearly period
        p = float(rng.choice([q for q in PERIODS if q < T / 2] or [T / 4]))
        ls = rng.choice([0.5, 1.0, 2.0])
        return np.exp(-2 * np.sin(np.pi * d / p) ** 2 / ls**2), f"periodic{p:g}"
    if kind == 3:  # rational quadratic
        a, ls = rng.choice([0.1, 1.0, 10.0]), rng.choice([0.05, 0.2]) * T
        return (1 + d**2 / (2 * a * ls**2)) ** (-a), "rq"
    return np.eye(T) * rng.choice([0.01, 0.1, 1.0]), "white"


def kernelsynth(num_series: int, length: int, seed: int = 0, max_kernels: int = 5) -> tuple[np.ndarray, list[str]]:
    """(num_series, length) float32 series and the kernel recipe of each (e.g. 'rbf*periodic24+white')."""
    rng = np.random.default_rng(seed)
    t = np.arange(length, dtype=np.float64)
    out = np.empty((num_series, length), dtype=np.float32)
    names = []
    for i in range(num_series):  # generation, not a training hot path: each series needs its own Cholesky
        K, name = _kernel_bank(t, rng)
        for _ in range(rng.integers(1, max_kernels + 1) - 1):
            K2, n2 = _kernel_bank(t, rng)
            if rng.random() < 0.5:
                K, name = K + K2, f"{name}+{n2}"
            else:
                K, name = K * K2, f"({name})*{n2}"
        L = np.linalg.cholesky(K + 1e-5 * np.eye(length) * max(np.trace(K) / length, 1e-3))
        y = L @ rng.standard_normal(length)
        out[i] = (y - y.mean()) / (y.std() + 1e-8)
        names.append(name)
    return out, names
