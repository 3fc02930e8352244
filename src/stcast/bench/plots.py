"""Forecast plots (matplotlib, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stcast.task import Task


def pyplot():
    """matplotlib's pyplot on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path) -> Path:
    """Lay out, write (the folder made if needed) and close a figure; the path written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


def plot_report(report, path, node: int | None = None, max_points: int = 576) -> Path:
    """Two panels for the first dataset: (a) truth vs each model at the last horizon step over the test
    windows for one node, (b) MAE per horizon step per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ds = report.config.datasets[0]
    data = report.data[ds]
    res = [r for r in report.results if r.dataset == data.meta.name and r.predictions]  # a table's name is its stem
    if not res:
        raise ValueError(f"no predictions of {ds} to plot")
    truth = res[0].predictions["truth"]  # (W, H, N, C)
    W, H = truth.shape[:2]
    if node is None:  # the node with the most variation: a readable curve
        node = int(truth[:, -1, :, 0].std(0).argmax())
    k = min(W, max_points)
    p0 = res[0].predictions
    task = Task.parse(res[0].task)
    last = p0["input_len"] + H - 1 if task is not Task.IMPUTE else H - 1  # step index of the plotted position
    t_idx = np.clip(p0["starts"][:k] + last, 0, data.num_steps - 1)
    times = data.timestamps[t_idx]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 4.5), gridspec_kw={"width_ratios": [2.2, 1]})
    ax1.plot(times, truth[:k, -1, node, 0].numpy(), color="black", lw=1.6, label="truth")
    banded = [r for r in res if "band" in r.predictions]
    best = min(banded, key=lambda r: r.metrics.get("mae", float("inf"))) if banded else None
    for r in res:
        line, = ax1.plot(times, r.predictions["pred"][:k, -1, node, 0].numpy(), lw=0.9, label=r.model)
        if r is best:  # the best model's predicted 10-90 % interval (one band keeps the plot readable)
            lo, hi = r.predictions["band_levels"]
            band = r.predictions["band"][:k, -1, node, 0].numpy()
            ax1.fill_between(times, band[:, 0], band[:, 1], color=line.get_color(), alpha=0.18, lw=0,
                             label=f"{r.model} {lo:g}-{hi:g}")
    unit = data.meta.units or ""
    what = f"step {H} ahead" if task is Task.FORECAST else f"imputed, window position {H}"
    ax1.set_title(f"{ds}, node {data.node_ids[node] if data.node_ids else node}: {what}")
    ax1.set_ylabel(unit)
    ax1.legend(fontsize=8, ncol=2)
    fig.autofmt_xdate()
    for r in res:
        pred, tr = r.predictions["pred"], r.predictions["truth"]
        err = (pred - tr).abs()
        m = r.predictions["mask"].float()
        per_step = (err * m).sum((0, 2, 3)) / m.sum((0, 2, 3)).clamp(min=1)
        ax2.plot(np.arange(1, H + 1), per_step.numpy(), marker="o", ms=3, label=r.model)
    ax2.set_xlabel("horizon step" if task is Task.FORECAST else "window position")
    ax2.set_ylabel(f"MAE ({unit})" if unit else "MAE")
    ax2.set_title("MAE per step (test)")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path



def plot_correlation(data, nodes, start: int, input_len: int = 12, channels=("dtw", "xcorr", "fft"),
                     max_lag: int = 3, path="correlation.png", scaler=None) -> Path:
    """ST-VLM's correlation image (the paper's Fig. 4 case study): one panel per channel for the chosen sensors
    over the window [start, start + input_len), plus their series. The window is z-scored with `scaler` (a
    model's own) or with its own statistics, and missing entries enter as the mean, as the model sees them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from stcast.errors import StcastError
    from stcast.nn.correlation import correlation_image

    nodes = np.asarray(nodes, dtype=int)
    if len(nodes) < 2 or nodes.min() < 0 or nodes.max() >= data.num_nodes:
        raise StcastError(f"--nodes: give at least two sensor indices in [0, {data.num_nodes - 1}]")
    if not 0 <= start <= data.num_steps - input_len:
        raise StcastError(f"--start {start}: a {input_len}-step window must lie inside the {data.num_steps} steps")
    sl = slice(start, start + input_len)
    raw = np.asarray(data.values[sl][:, nodes], dtype=np.float32)  # (L, n, C)
    obs = np.asarray(data.observed(sl))[:, nodes]
    if scaler is not None:
        z = (raw - scaler.mean) / scaler.std
    else:
        mean, std = np.nanmean(np.where(obs, raw, np.nan)), np.nanstd(np.where(obs, raw, np.nan)) or 1.0
        z = (raw - mean) / std
    z = np.where(obs, z, 0.0)
    img = correlation_image(torch.from_numpy(z).permute(1, 0, 2)[None].float(), tuple(channels), max_lag)[0]
    names = {"dtw": "DTW distance (eq. 1)", "xcorr": f"lagged cross-correlation, |lag| <= {max_lag} (eq. 2)",
             "fft": "FFT-amplitude Pearson"}
    labels = [str(data.node_ids[i]) if data.node_ids else str(i) for i in nodes]
    fig, axes = plt.subplots(1, len(channels) + 1, figsize=(4.6 * (len(channels) + 1), 4.2))
    for ax, ch, m in zip(axes, channels, img):
        im = ax.imshow(m.numpy(), cmap="viridis")
        ax.set_title(names[ch] + "\n(standardised)", fontsize=9)
        ticks = np.arange(len(nodes))
        ax.set_xticks(ticks, labels, rotation=90, fontsize=6)
        ax.set_yticks(ticks, labels, fontsize=6)
        fig.colorbar(im, ax=ax, fraction=0.046)
    times = data.timestamps[sl]
    for j in range(len(nodes)):
        axes[-1].plot(times, np.where(obs[:, j, 0], raw[:, j, 0], np.nan), lw=0.8)
    axes[-1].set_title(f"{data.meta.name}: the window from step {start}", fontsize=9)
    fig.autofmt_xdate()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
