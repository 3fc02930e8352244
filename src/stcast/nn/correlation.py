"""ST-VLM's spatial-to-image mapping: three node-by-node relation matrices of one input window (ST-VLM eqs. 1-2
and the frequency-domain correlation), stacked as a 3-channel N x N image.

- ``dtw``: the dynamic-time-warping distance between every pair of node series (eq. 1; the element distance is
  the Euclidean norm over channels). Computed by anti-diagonals: every cell (i, j) with i + j = s depends only on
  the diagonals s-1 and s-2, so one vectorised step per diagonal (2L - 1 steps) serves all pairs at once; only
  pairs a < b are computed (DTW is symmetric), in chunks that bound memory.
- ``xcorr``: the normalised time-lagged cross-correlation R_xy(tau) of eq. 2 for every lag |tau| <= max_lag;
  the profile becomes one value per pair, the coefficient at the lag of largest |R| (sign kept: a strong
  negative lead-lag relation stays negative). Positive tau: the second series lags the first.
- ``fft``: the Pearson correlation of the FFT amplitude spectra of the two series (the zero-frequency bin
  included, as the paper defines it: on a 12-step window the series' level weighs heavily).
With several channels, xcorr and fft are averaged over channels. A constant series has no defined correlation:
its entries are 0. Every channel of the image is standardised per window (mean 0, std 1 over the N x N cells:
the paper's "normalized" image).
"""

from __future__ import annotations

import torch

from stcast.errors import StcastError

CHANNELS = ("dtw", "xcorr", "fft")


def dtw_pairs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """DTW distance of each pair: a, b (P, L, C) -> (P,) (eq. 1: C(i, j) = D(i, j) + min of the three
    predecessors). Anti-diagonal s holds the cells i + j = s, stored by row i; its three predecessors are rows
    i-1 and i of diagonal s-1 and row i-1 of diagonal s-2, so each diagonal is three slices and a minimum.
    Pairs run along the last axis (contiguous slices) and three buffers rotate: no allocation per diagonal."""
    P, L = a.shape[:2]
    if a.shape[-1] == 1:
        cost = (a[:, :, None, 0] - b[:, None, :, 0]).abs()  # (P, L, L): D(i, j), 0-based
    else:
        cost = torch.linalg.vector_norm(a[:, :, None] - b[:, None, :], dim=-1)
    rows = torch.arange(L + 1, device=cost.device)  # 1-based row i of the accumulated matrix; row 0 is padding
    cols = torch.arange(2, 2 * L + 1, device=cost.device)[:, None] - rows  # (2L - 1, L + 1): column per row
    invalid = ~((rows >= 1) & (cols >= 1) & (cols <= L))
    skew = cost[:, (rows - 1).clamp(0, L - 1).expand_as(cols), (cols - 1).clamp(0, L - 1)]  # (P, 2L-1, L+1)
    skew = skew.permute(1, 2, 0).contiguous()  # (2L - 1, L + 1, P)
    inf = float("inf")
    prev2 = cost.new_full((L + 1, P), inf)  # diagonal s = 0: C(0, 0) = 0
    prev2[0] = 0.0
    prev1 = cost.new_full((L + 1, P), inf)  # diagonal s = 1: border cells only
    cur, best = cost.new_empty((L + 1, P)), cost.new_empty((L, P))
    for k in range(2 * L - 1):  # diagonal s = k + 2
        torch.minimum(prev1[:-1], prev1[1:], out=best)
        torch.minimum(best, prev2[:-1], out=best)
        torch.add(skew[k, 1:], best, out=cur[1:])
        cur[0] = inf
        cur.masked_fill_(invalid[k][:, None], inf)
        prev2, prev1, cur = prev1, cur, prev2
    return prev1[L].clone()


def pairwise_dtw(series: torch.Tensor, max_cells: int = 2 ** 24) -> torch.Tensor:
    """series (B, N, L, C) -> (B, N, N) DTW distances, symmetric, 0 on the diagonal."""
    B, N, L, C = series.shape
    a_idx, b_idx = torch.triu_indices(N, N, offset=1, device=series.device)
    out = series.new_zeros(B, N, N)
    per_chunk = max(1, max_cells // ((L + 1) ** 2 * max(1, B)))
    for start in range(0, len(a_idx), per_chunk):
        ia, ib = a_idx[start:start + per_chunk], b_idx[start:start + per_chunk]
        d = dtw_pairs(series[:, ia].reshape(-1, L, C), series[:, ib].reshape(-1, L, C)).view(B, -1)
        out[:, ia, ib] = d
        out[:, ib, ia] = d
    return out


def lagged_xcorr(series: torch.Tensor, max_lag: int) -> torch.Tensor:
    """series (B, N, L, C) -> (B, N, N): eq. 2 at each |tau| <= max_lag, the coefficient of largest magnitude."""
    B, N, L, C = series.shape
    if not 0 <= max_lag < L:
        raise StcastError(f"time-lagged cross-correlation needs max_lag < the window length: max_lag={max_lag}, "
                          f"window {L} steps (shorten max_lag or lengthen the input)")
    x = series.permute(0, 3, 1, 2)  # (B, C, N, L)
    xc = x - x.mean(-1, keepdim=True)
    energy = xc.pow(2).sum(-1)  # (B, C, N)
    denom = (energy[..., :, None] * energy[..., None, :]).sqrt()  # (B, C, N, N)
    profile = []
    for tau in range(-max_lag, max_lag + 1):  # R_xy(tau) = sum_i xc_i yc_{i + tau} / denom
        if tau >= 0:
            num = xc[..., : L - tau] @ xc[..., tau:].transpose(-1, -2)
        else:
            num = xc[..., -tau:] @ xc[..., : L + tau].transpose(-1, -2)
        profile.append(torch.where(denom > 1e-12, num / denom.clamp(min=1e-12), 0.0))
    prof = torch.stack(profile, -1)  # (B, C, N, N, 2 max_lag + 1)
    pick = prof.abs().argmax(-1, keepdim=True)
    return prof.gather(-1, pick).squeeze(-1).mean(1)


def fft_pearson(series: torch.Tensor) -> torch.Tensor:
    """series (B, N, L, C) -> (B, N, N): Pearson correlation of the amplitude spectra |FFT(x)|."""
    amp = torch.fft.rfft(series.permute(0, 3, 1, 2), dim=-1).abs()  # (B, C, N, F)
    ac = amp - amp.mean(-1, keepdim=True)
    norm = ac.pow(2).sum(-1).sqrt()  # (B, C, N)
    denom = norm[..., :, None] * norm[..., None, :]
    r = torch.where(denom > 1e-12, (ac @ ac.transpose(-1, -2)) / denom.clamp(min=1e-12), 0.0)
    return r.mean(1)


def standardise(img: torch.Tensor) -> torch.Tensor:
    """Each (sample, channel) matrix (the last two axes) to mean 0 and std 1 over its cells (a constant matrix,
    or a single cell, becomes 0)."""
    flat = img.flatten(-2)
    if flat.shape[-1] < 2:  # one cell (a single node) is constant; torch's sample std of one value is NaN
        return torch.zeros_like(img)
    mean, std = flat.mean(-1, keepdim=True), flat.std(-1, keepdim=True)
    return ((flat - mean) / std.clamp(min=1e-6)).view_as(img)


def correlation_image(series: torch.Tensor, channels=CHANNELS, max_lag: int = 3) -> torch.Tensor:
    """series (B, N, L, C) -> image (B, len(channels), N, N), channels in the order asked, each standardised."""
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown or not channels:
        raise StcastError(f"unknown correlation channels {unknown or channels}; choose from {', '.join(CHANNELS)}")
    make = {"dtw": lambda: pairwise_dtw(series), "xcorr": lambda: lagged_xcorr(series, max_lag),
            "fft": lambda: fft_pearson(series)}
    with torch.no_grad():
        return standardise(torch.stack([make[c]() for c in channels], 1).float())
