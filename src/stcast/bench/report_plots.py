"""The result pictures of `stcast report` and `stcast plot results`: leaderboards, accuracy against training cost,
what each language model adds, and every model against STID, from the entries `stcast.bench.report` reads."""

from __future__ import annotations

from pathlib import Path

from stcast.bench.plots import pyplot, save_figure
from stcast.bench.report import BACKBONES, Entry, backbone_groups, is_llm, median_passes, pareto_front, tables
from stcast.errors import StcastError


def plot_leaderboards(entries: list[Entry], path, max_panels: int = 4) -> Path:
    groups = [(k, v) for k, v in tables(entries).items() if len(v) >= 3][:max_panels]
    if not groups:
        raise StcastError("no table with three or more models to draw a leaderboard from")
    plt = pyplot()
    fig, axes = plt.subplots(len(groups), 1, figsize=(9, 1.2 + 0.33 * sum(len(v) for _, v in groups)),
                             squeeze=False, gridspec_kw={"height_ratios": [len(v) for _, v in groups]})
    for ax, ((ds, table), rows) in zip(axes[:, 0], groups):
        names = [e.model for e in rows][::-1]
        maes = [e.mae for e in rows][::-1]
        errs = [e.mae_std for e in rows][::-1]
        colors = ["tab:orange" if e.get("backbone") or is_llm(e.model) else "tab:blue" for e in rows][::-1]
        ax.barh(names, maes, xerr=errs, color=colors, alpha=0.85)
        ax.set_xlim(min(maes) * 0.9, max(maes) * 1.03)
        for y, m in enumerate(maes):
            ax.text(m, y, f" {m:.3f}", va="center", fontsize=7)
        ax.set_title(f"{ds}: {table}", fontsize=9)
        ax.tick_params(labelsize=7)
    fig.suptitle("test MAE, lower is better (orange: language-model methods)", fontsize=10)
    return save_figure(fig, path)


def plot_cost(entries: list[Entry], path) -> Path:
    """Accuracy against training CPU-minutes on the dataset with the most costed full-data rows: each model at its
    best costed row (any table), with the Pareto front of what a CPU-minute buys."""
    costed = [e for e in entries if e.cpu_minutes is not None and e.cpu_minutes > 0 and e.setting == "full"]
    if not costed:
        raise StcastError("no full-data row records train_s: nothing to draw against training cost")
    counts: dict[str, int] = {}
    for e in costed:
        counts[e.dataset] = counts.get(e.dataset, 0) + 1
    ds = max(counts, key=counts.get)
    best: dict[str, Entry] = {}
    for e in costed:
        if e.dataset == ds and (e.model not in best or e.mae < best[e.model].mae):
            best[e.model] = e
    rows = sorted(best.values(), key=lambda e: e.mae)
    pts = [(e.cpu_minutes, e.mae) for e in rows]
    front = set(pareto_front(pts))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    for i, (e, (x, y)) in enumerate(zip(rows, pts)):
        ax.errorbar(x, y, yerr=e.mae_std or None, fmt="o", ms=5, color="tab:orange" if is_llm(e.model) else
                    "tab:blue", mec="k" if i in front else "none")
        ax.annotate(e.model, (x, y), fontsize=7, xytext=(4, 2), textcoords="offset points")
    fx, fy = zip(*sorted(pts[i] for i in front))
    ax.step(fx, fy, where="post", color="gray", lw=1, ls="--", label="Pareto front (nothing cheaper is better)")
    ax.set_xscale("log")
    ax.set_xlabel("training CPU-minutes (log; the model's best row in any table)")
    ax.set_ylabel("test MAE")
    ax.set_title(f"{ds}: accuracy against training cost (orange: language-model methods)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def short(text: str, width: int = 24, lines: int = 3) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)[:lines])


def plot_backbones(entries: list[Entry], path) -> Path:
    """Per language-model method and table: pretrained / random-init / removed backbone, with seed error bars."""
    groups = backbone_groups(entries)
    if not groups:
        raise StcastError("no table has a method with two or more of the pretrained / random / removed rows "
                          "(backbone and method columns): nothing to draw of what the language model adds")
    keys = sorted(groups, key=lambda k: k[0])  # a method's tables side by side, in the order the CSVs give them
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(2.0 + 1.7 * len(keys), 5.0))
    width = 0.26
    for j, kind in enumerate(BACKBONES):
        xs, ys, es = [], [], []
        for i, key in enumerate(keys):
            if kind in groups[key]:
                xs.append(i + (j - 1) * width)
                ys.append(groups[key][kind].mae)
                es.append(groups[key][kind].mae_std)
        ax.bar(xs, ys, width, yerr=es, capsize=3, label=kind)
    shown = [e for g in groups.values() for e in g.values()]
    lo = min(e.mae - e.mae_std for e in shown)
    hi = max(e.mae + e.mae_std for e in shown)
    ax.set_ylim(lo - 0.15 * (hi - lo) - 0.01, hi + 0.1 * (hi - lo) + 0.01)
    ax.set_xticks(range(len(keys)), [f"{m}\n{short(t)}" for m, t in keys], fontsize=7)
    ax.set_ylabel("test MAE (mean +- seed std)")
    datasets = ", ".join(dict.fromkeys(e.dataset for e in shown))
    ax.set_title(f"what the language model adds ({datasets}; bars compared only within one table)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, path)


def reference_tables(entries: list[Entry], reference: str = "stid") -> list[list[Entry]]:
    """The tables to read against `reference`: on the dataset with the most rows in tables that hold it, for each
    trained setting (all data, then few-shot), the table that holds it and trained the most passes (the answer
    with the least budget in it)."""
    held = [rows for rows in tables(entries).values() if any(e.model == reference for e in rows)]
    if not held:
        return []
    weight: dict[str, int] = {}
    for rows in held:
        weight[rows[0].dataset] = weight.get(rows[0].dataset, 0) + len(rows)
    ds = max(weight, key=weight.get)

    out = []
    for setting in ("full", "few-shot"):
        pick = [r for r in held if r[0].dataset == ds and r[0].setting == setting and len(r) > 1]
        if pick:
            out.append(max(pick, key=median_passes))
    return out


def plot_reference(entries: list[Entry], path, reference: str = "stid") -> Path:
    """Every model as a multiple of `reference` in the same table (mean +- seed std, both scaled by the reference's
    mean), one panel per table of `reference_tables`: does anything beat it, and by more than its seed spread?"""
    groups = reference_tables(entries, reference)
    if not groups:
        raise StcastError(f"no table holds {reference} beside another model: nothing to draw against it")
    plt = pyplot()
    fig, axes = plt.subplots(1, len(groups), figsize=(5.6 * len(groups), 1.4 + 0.32 * max(map(len, groups))),
                             squeeze=False)
    for ax, rows in zip(axes[0], groups):
        ref = next(e for e in rows if e.model == reference)
        rows = sorted(rows, key=lambda e: e.mae, reverse=True)
        ratio = [e.mae / ref.mae for e in rows]
        err = [e.mae_std / ref.mae for e in rows]
        colors = ["tab:orange" if e.get("backbone") or is_llm(e.model) else "tab:blue" for e in rows]
        hatch = ["//" if e.get("backbone") in ("random", "removed") else "" for e in rows]
        ys = range(len(rows))
        ax.barh(ys, [r - 1 for r in ratio], left=1, xerr=err, color=colors, hatch=hatch, alpha=0.85, capsize=2)
        ax.axvline(1, color="k", lw=1)
        ax.set_yticks(list(ys), [f"{e.model} ({e.seeds} seeds)" if e.seeds > 1 else e.model for e in rows],
                     fontsize=7)
        for y, (r, d) in enumerate(zip(ratio, err)):
            ax.text(max(r + d, 1) + 0.004, y, f"{r:.3f}", va="center", fontsize=6.5)
        lo, hi = min(ratio + [1.0]), max(ratio + [1.0])
        ax.set_xlim(lo - max(err) - 0.01 - 0.05 * (hi - lo), hi + max(err) + 0.03 + 0.1 * (hi - lo))
        ax.set_xlabel(f"test MAE / {reference}'s ({ref.mae:.3f}); left of 1 beats it", fontsize=8)
        ax.set_title(short(f"{rows[0].dataset}: {rows[0].table}", 72, 3), fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle(f"against {reference} (orange: language-model methods; hatched: their backbone random or removed;"
                 " bars: seed std)", fontsize=9)
    return save_figure(fig, path)


def plot_results(entries: list[Entry], path) -> Path:
    """The three result pictures side by side in one PNG (those the rows allow)."""
    import tempfile

    from matplotlib.image import imread

    drawn = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, fn in (("reference", plot_reference), ("leaderboard", plot_leaderboards), ("cost", plot_cost),
                         ("backbones", plot_backbones)):
            try:
                drawn.append(imread(fn(entries, Path(tmp) / f"{name}.png")))
            except StcastError:
                continue
        if not drawn:
            raise StcastError("the result CSVs hold nothing to draw (they need dataset, model and mae columns)")
        plt = pyplot()
        fig, axes = plt.subplots(1, len(drawn), figsize=(7 * len(drawn), 7), squeeze=False)
        for ax, img in zip(axes[0], drawn):
            ax.imshow(img)
            ax.axis("off")
        return save_figure(fig, path)
