"""Forecast plots (matplotlib, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


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
    task = res[0].task
    last = p0["input_len"] + H - 1 if task != "impute" else H - 1  # step index of the plotted position
    t_idx = np.clip(p0["starts"][:k] + last, 0, data.num_steps - 1)
    times = data.timestamps[t_idx]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 4.5), gridspec_kw={"width_ratios": [2.2, 1]})
    ax1.plot(times, truth[:k, -1, node, 0].numpy(), color="black", lw=1.6, label="truth")
    for r in res:
        ax1.plot(times, r.predictions["pred"][:k, -1, node, 0].numpy(), lw=0.9, label=r.model)
    unit = data.meta.units or ""
    what = f"step {H} ahead" if task == "forecast" else f"imputed, window position {H}"
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
    ax2.set_xlabel("horizon step" if task == "forecast" else "window position")
    ax2.set_ylabel(f"MAE ({unit})" if unit else "MAE")
    ax2.set_title("MAE per step (test)")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

