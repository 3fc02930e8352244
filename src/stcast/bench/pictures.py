"""Pictures of where a saved model succeeds and fails, from its test split: a sensor's forecasts with their band,
an imputation (observed, hidden truth, imputed, band), and its errors per sensor (on a map where the data has
coordinates) and by time of day x horizon step.

Every picture reads the predictions `engine.scoring` scores (the same windows, scaler and masks as the metrics).
Data that is never negative (speeds, counts, PM2.5) gets its drawn forecasts and bands clipped at 0, said in the
title; the error picture stays unclipped, as the printed metrics are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from stcast.bench.plots import pyplot, save_figure
from stcast.data.core import SpatioTemporalData
from stcast.errors import StcastError


def _node_label(data: SpatioTemporalData, node: int) -> str:
    return f"sensor {node}" + (f" ({data.node_ids[node]})" if data.node_ids else "")


def _check_node(node: int | None, data: SpatioTemporalData, truth: torch.Tensor) -> int:
    if node is None:  # the sensor whose truth varies most over the test split: a readable curve
        m = truth[..., 0]
        return int(m.reshape(-1, m.shape[-1]).std(0).argmax())
    if not 0 <= node < data.num_nodes:
        raise StcastError(f"--node {node}: {data.meta.name} has sensors 0..{data.num_nodes - 1}")
    return node


def clip_if_never_negative(data: SpatioTemporalData, *arrays):
    """(clipped arrays, note): the arrays clipped at 0 when the data is never negative, and a note saying so."""
    if not data.never_negative():
        return arrays, ""
    return tuple(None if a is None else a.clamp(min=0) for a in arrays), " (clipped at 0: the data is never negative)"


def plot_forecast(data: SpatioTemporalData, scored: dict, path, node: int | None = None, step: int | None = None,
                  days: float = 2.0, title: str = "") -> Path:
    """Top: the `step`-ahead forecast of one sensor along the first `days` of the test split, with its band and
    the truth. Bottom: the full horizon from one origin (the one with the largest error there), after its input."""
    pred, truth, mask, starts = scored["pred"], scored["truth"], scored["mask"], scored["starts"]
    band = scored.get("band")
    W, H = pred.shape[:2]
    step = H if step is None else step
    if not 1 <= step <= H:
        raise StcastError(f"--step {step}: the model forecasts steps 1..{H}")
    node = _check_node(node, data, truth)
    (pred, band), note = clip_if_never_negative(data, pred, band)
    L = int(scored["input_len"])
    k = max(1, min(W, int(days * data.meta.steps_per_day)))
    t = data.timestamps[np.clip(starts[:k] + L + step - 1, 0, data.num_steps - 1)]
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, 7))
    y = np.where(mask[:k, step - 1, node, 0].numpy(), truth[:k, step - 1, node, 0].numpy(), np.nan)
    ax1.plot(t, y, color="black", lw=1.4, label="truth")
    ax1.plot(t, pred[:k, step - 1, node, 0].numpy(), lw=1.0, label=f"forecast, {step} step(s) ahead")
    if band is not None:
        lo, hi = scored["band_levels"]
        ax1.fill_between(t, band[:k, step - 1, node, 0, 0].numpy(), band[:k, step - 1, node, 0, 1].numpy(),
                         alpha=0.25, lw=0, label=f"{lo:g}-{hi:g} band")
    ax1.set_title(f"{title}{data.meta.name}, {_node_label(data, node)}: the test split{note}", fontsize=10)
    ax1.set_ylabel(data.meta.units or "value")
    ax1.legend(fontsize=8)
    err = ((pred - truth).abs() * mask)[:, step - 1, node, 0]
    w = int(err.argmax())
    s = int(starts[w])
    hist = np.arange(s, s + L)
    obs = np.asarray(data.observed(hist))[:, node, 0]
    ax2.plot(data.timestamps[hist], np.where(obs, np.asarray(data.values[hist])[:, node, 0], np.nan),
             color="gray", lw=1.2, label="input")
    fut = data.timestamps[np.clip(np.arange(s + L, s + L + H), 0, data.num_steps - 1)]
    ax2.plot(fut, np.where(mask[w, :, node, 0].numpy(), truth[w, :, node, 0].numpy(), np.nan), color="black",
             marker="o", ms=3, lw=1.2, label="truth")
    ax2.plot(fut, pred[w, :, node, 0].numpy(), marker="o", ms=3, lw=1.0, label="forecast")
    if band is not None:
        ax2.fill_between(fut, band[w, :, node, 0, 0].numpy(), band[w, :, node, 0, 1].numpy(), alpha=0.25, lw=0)
    ax2.set_title(f"the origin with the largest {step}-step error ({str(data.timestamps[s + L - 1])[:16]})",
                  fontsize=10)
    ax2.legend(fontsize=8)
    fig.autofmt_xdate()
    return save_figure(fig, path)


def plot_imputation(data: SpatioTemporalData, scored: dict, path, node: int | None = None, windows: int = 8,
                    title: str = "") -> Path:
    """One sensor across consecutive non-overlapping test windows: the observed inputs, the truth of the entries
    the windows hide, the imputed values there and their band."""
    pred, truth, mask, starts = scored["pred"], scored["truth"], scored["mask"], scored["starts"]
    band = scored.get("band")
    L = pred.shape[1]
    node = _check_node(node, data, truth)
    (pred, band), note = clip_if_never_negative(data, pred, band)
    picked, last = [], -L
    for i, s in enumerate(starts):  # consecutive windows that do not overlap
        if s >= last + L:
            picked.append(i)
            last = s
        if len(picked) == windows:
            break
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(12, 4.5))
    for j, i in enumerate(picked):
        steps = np.arange(starts[i], starts[i] + L)
        t = data.timestamps[steps]
        hidden = mask[i, :, node, 0].numpy()
        observed = np.asarray(data.observed(steps))[:, node, 0] & ~hidden
        y = truth[i, :, node, 0].numpy()
        lab = j == 0
        ax.plot(t, np.where(observed, y, np.nan), color="black", lw=1.2, label="observed" if lab else None)
        ax.plot(t[hidden], y[hidden], "x", color="crimson", ms=6, label="hidden truth" if lab else None)
        ax.plot(t[hidden], pred[i, :, node, 0].numpy()[hidden], "o", color="tab:blue", ms=4, mfc="none",
                label="imputed" if lab else None)
        if band is not None and hidden.any():
            lo_hi = band[i, :, node, 0].numpy()[hidden]
            ax.vlines(t[hidden], lo_hi[:, 0], lo_hi[:, 1], color="tab:blue", alpha=0.35, lw=3,
                      label=f"{scored['band_levels'][0]:g}-{scored['band_levels'][1]:g} band" if lab else None)
    if not picked or not mask[picked][:, :, node].any():
        raise StcastError(f"{_node_label(data, node)} has no hidden, observed entry in these test windows: "
                          "choose another --node")
    ax.set_title(f"{title}{data.meta.name}, {_node_label(data, node)}: {len(picked)} test windows{note}", fontsize=10)
    ax.set_ylabel(data.meta.units or "value")
    ax.legend(fontsize=8, ncol=4)
    fig.autofmt_xdate()
    return save_figure(fig, path)


def plot_errors(data: SpatioTemporalData, scored: dict, path, title: str = "") -> Path:
    """Left: the test MAE of each sensor, on a map where the data has coordinates (e.g. METR-LA's sensor
    locations), else by sensor index. Right: the MAE by hour of day (of the target) x horizon step. Unclipped, as
    the metrics `stcast evaluate` prints are."""
    pred, truth, mask, starts = scored["pred"], scored["truth"], scored["mask"].float(), scored["starts"]
    err = (pred - truth).abs() * mask  # (W, H, N, C)
    per_node = (err.sum((0, 1, 3)) / mask.sum((0, 1, 3)).clamp(min=1)).numpy()
    per_node[mask.sum((0, 1, 3)).numpy() == 0] = np.nan
    W, H = pred.shape[:2]
    L = int(scored["input_len"])
    target = np.clip(np.asarray(starts)[:, None] + L + np.arange(H), 0, data.num_steps - 1)  # (W, H)
    tod, _ = data.calendar()
    hour = (tod[target] * data.meta.step_minutes) // 60  # (W, H) hour of day of each target
    by_hour = np.full((24, H), np.nan)
    e, m = err.sum((2, 3)).numpy(), mask.sum((2, 3)).numpy()  # (W, H)
    for h in range(24):
        sel = hour == h
        num, den = (e * sel).sum(0), (m * sel).sum(0)
        by_hour[h] = np.where(den > 0, num / np.maximum(den, 1), np.nan)
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [1.2, 1]})
    unit = f" ({data.meta.units})" if data.meta.units else ""
    if data.coords is not None:
        lat, lon = data.coords[:, 0], data.coords[:, 1]
        sc = ax1.scatter(lon, lat, c=per_node, cmap="magma_r", s=28, edgecolors="k", linewidths=0.3)
        ax1.set_xlabel("longitude")
        ax1.set_ylabel("latitude")
        ax1.set_aspect("equal", adjustable="datalim")
        fig.colorbar(sc, ax=ax1, label=f"MAE{unit}")
        worst = np.nanargmax(per_node)
        ax1.annotate(_node_label(data, int(worst)), (lon[worst], lat[worst]), fontsize=7)
        ax1.set_title(f"{title}test MAE per sensor (map)", fontsize=10)
    else:
        ax1.bar(np.arange(len(per_node)), per_node, width=1.0)
        ax1.set_xlabel("sensor index")
        ax1.set_ylabel(f"MAE{unit}")
        ax1.set_title(f"{title}test MAE per sensor (no coordinates in {data.meta.name})", fontsize=10)
    im = ax2.imshow(by_hour, aspect="auto", origin="lower", cmap="magma_r",
                    extent=(0.5, H + 0.5, -0.5, 23.5))
    ax2.set_xlabel("horizon step")
    ax2.set_ylabel("hour of day (target)")
    ax2.set_title("test MAE by hour of day x horizon step", fontsize=10)
    fig.colorbar(im, ax=ax2, label=f"MAE{unit}")
    return save_figure(fig, path)
