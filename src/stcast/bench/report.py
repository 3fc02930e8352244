"""Results a user can read at a glance, from result CSVs: leaderboards, accuracy against training cost, what each
language model adds, and which model to use for what (`stcast report`, `stcast plot results`).

A result CSV is what `stcast benchmark` writes (one row per model: dataset, model, mae, ..., train_s, passes),
optionally with these columns:
    table     which comparison the row belongs to (default: the file's name); rows are ranked within one
    setting   full | few-shot | zero-shot | imputation: what the advice lines draw on (default: full)
    seed      rows of one (dataset, table, model) with different seeds are averaged (mean +- std)
    mae_std, seeds    a row that is already a mean over seeds
    backbone  pretrained | random | removed, with `method`: the language-model ablation of one method
    threads   CPU threads the row trained on (training CPU-minutes = train_s x threads / 60; default 1)
    budget    the training budget in words (e.g. "10 min, 1 thread")
    published the paper's figure for this model and protocol, as text with its source (e.g. "12.08 (GRIN paper)"):
              shown beside ours, never ranked
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from stcast.bench.plots import pyplot, save_figure
from stcast.errors import StcastError

SETTINGS = ("full", "few-shot", "zero-shot", "imputation")
BACKBONES = ("pretrained", "random", "removed")
_NUMERIC = ("mae", "rmse", "mape", "mae@3", "mae@6", "mae@12", "crps", "coverage80", "train_s", "passes", "epochs",
            "best_epoch", "mae_std", "seeds", "threads", "seed", "trainable_params")
_NON_NEGATIVE = tuple(c for c in _NUMERIC if c != "seed")  # errors, times and counts: none can be below 0


@dataclass
class Entry:
    """One model in one table: the mean over its seeds."""

    dataset: str
    table: str
    model: str
    setting: str
    mae: float
    mae_std: float = 0.0
    seeds: int = 1
    values: dict = field(default_factory=dict)  # the other columns (means where numeric)

    def get(self, key, default=None):
        return self.values.get(key, default)

    @property
    def cpu_minutes(self) -> float | None:
        t = self.get("train_s")
        return None if t is None else t * (self.get("threads") or 1) / 60


def _number(text):
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def read_results(paths, unranked: list[str] | None = None) -> list[Entry]:
    """Rows of result CSVs grouped by (dataset, table, model), seeds averaged; clear errors for a missing file,
    a CSV without rows or without dataset/model/mae columns, an unknown setting or backbone, a cell of a numeric
    column that is not a number, a negative count. A row that scored nothing (mae empty, nan or inf: a run that
    diverged) is not ranked; `unranked`, when given, receives one line per such row, so that nothing is dropped
    unsaid."""
    if not paths:
        raise StcastError("no result CSVs given (e.g. results/*/*.csv)")
    groups: dict[tuple, list[dict]] = {}
    for path in map(Path, paths):
        if not path.is_file():
            raise StcastError(f"result file {path} does not exist")
        try:
            with open(path, newline="") as fh:
                rows = list(csv.DictReader(fh))
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise StcastError(f"{path} is not a readable CSV ({e})") from e
        if not rows:
            raise StcastError(f"{path} holds no result rows (an empty file, or a header alone)")
        if not {"dataset", "model", "mae"} <= set(rows[0]):
            raise StcastError(f"{path}: a result CSV needs the columns dataset, model and mae (stcast benchmark "
                              "writes them)")
        for i, row in enumerate(rows, 2):
            row.setdefault("table", "")
            row["table"] = row["table"] or path.stem
            row["setting"] = row.get("setting") or "full"
            if row["setting"] not in SETTINGS:
                raise StcastError(f"{path} line {i}: setting {row['setting']!r}; use one of {', '.join(SETTINGS)}")
            if row.get("backbone") and row["backbone"] not in BACKBONES:
                raise StcastError(f"{path} line {i}: backbone {row['backbone']!r}; use one of {', '.join(BACKBONES)}")
            for col in _NUMERIC:
                cell = row.get(col)
                if _number(cell) is None and not _unscored(cell):
                    raise StcastError(f"{path} line {i}: {col} {cell!r} is not a number (a row that scored "
                                      "nothing leaves it empty or nan)")
                if col in _NON_NEGATIVE and (_number(cell) or 0) < 0:
                    raise StcastError(f"{path} line {i}: {col} {cell!r} is negative")
            if _number(row["mae"]) is None:  # a row that scored nothing: not ranked, but said
                if unranked is not None:
                    unranked.append(f"{path} line {i}: {row['model']} on {row['dataset']} ({row['table']}) has "
                                    f"mae {row['mae']!r}: scored nothing or diverged, not ranked")
                continue
            groups.setdefault((row["dataset"], row["table"], row["model"]), []).append(row)
    return [_entry(key, rows) for key, rows in groups.items()]


def _unscored(text) -> bool:
    """An empty, nan or inf cell: a metric the row did not score, or a run that diverged: not ranked."""
    return text is None or str(text).strip().lower().lstrip("+-") in ("", "nan", "inf", "infinity")


def files_as_glob(paths) -> str:
    """The result files as a user would type them: `dir/*.csv` for a folder given whole, `root/{a,b}/*.csv` for
    several whole folders under one root, file names otherwise (the page's header says how it was made)."""
    paths = [Path(p) for p in paths]
    folders = list(dict.fromkeys(p.parent for p in paths))
    whole = all({p for p in paths if p.parent == f} == set(f.glob("*.csv")) for f in folders)
    if len(paths) <= 3 or not whole:
        return " ".join(map(str, paths))
    if len(folders) == 1:
        return str(folders[0] / "*.csv")
    roots = {f.parent for f in folders}
    if len(roots) == 1 and all(f.name for f in folders):
        return f"{roots.pop() / ('{' + ','.join(f.name for f in folders) + '}')}/*.csv"
    return " ".join(f"{f}/*.csv" for f in folders)


def _entry(key, rows: list[dict]) -> Entry:
    dataset, table, model = key
    maes = [_number(r["mae"]) for r in rows]
    mean = sum(maes) / len(maes)
    if len(rows) == 1 and _number(rows[0].get("mae_std")) is not None:  # already a mean over seeds
        std, seeds = _number(rows[0]["mae_std"]), int(_number(rows[0].get("seeds")) or 1)
    else:
        std = math.sqrt(sum((m - mean) ** 2 for m in maes) / (len(maes) - 1)) if len(maes) > 1 else 0.0
        seeds = len(maes)
    values = {}
    for k in rows[0]:
        nums = [_number(r.get(k)) for r in rows]
        if k in _NUMERIC and all(v is not None for v in nums):
            values[k] = sum(nums) / len(nums)
        elif k not in _NUMERIC:
            values[k] = rows[0][k]
    return Entry(dataset, table, model, rows[0]["setting"], mean, std, seeds, values)


def tables(entries: list[Entry]) -> dict[tuple[str, str], list[Entry]]:
    """(dataset, table) -> its entries, best (lowest MAE) first; the datasets with the most rows first (the
    headline benchmark leads), tables in the order the CSVs give them."""
    out: dict[tuple[str, str], list[Entry]] = {}
    for e in entries:
        out.setdefault((e.dataset, e.table), []).append(e)
    weight = {}
    for e in entries:
        weight[e.dataset] = weight.get(e.dataset, 0) + 1
    order = sorted(out, key=lambda k: -weight[k[0]])  # stable: tables keep their order within a dataset
    return {k: sorted(out[k], key=lambda e: e.mae) for k in order}


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both cost and error (lower is better), by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front, best = [], math.inf
    for i in order:
        if points[i][1] < best:
            front.append(i)
            best = points[i][1]
    return front


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
        colors = ["tab:orange" if e.get("backbone") or _is_llm(e.model) else "tab:blue" for e in rows][::-1]
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
        ax.errorbar(x, y, yerr=e.mae_std or None, fmt="o", ms=5, color="tab:orange" if _is_llm(e.model) else
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


def backbone_groups(entries: list[Entry]) -> dict[tuple[str, str], dict[str, Entry]]:
    """(method, table) -> {backbone kind: entry}: the language-model ablation of one method within one table (the
    same windows, budget and seeds), for every pair that has at least two of the kinds. Rows of different tables are
    never set side by side: a pretrained row at two passes beside a random-init row trained to convergence would
    say nothing about the language model."""
    groups: dict[tuple[str, str], dict[str, Entry]] = {}
    for e in entries:
        if e.get("backbone") and e.get("method"):
            groups.setdefault((e.get("method"), e.table), {}).setdefault(e.get("backbone"), e)
    return {k: v for k, v in groups.items() if len(v) >= 2}


def _short(text: str, width: int = 24, lines: int = 3) -> str:
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
    ax.set_xticks(range(len(keys)), [f"{m}\n{_short(t)}" for m, t in keys], fontsize=7)
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

    def mean_passes(rows):
        p = [e.get("passes") for e in rows if e.get("passes") is not None]
        return sum(p) / len(p) if p else 0.0
    out = []
    for setting in ("full", "few-shot"):
        pick = [r for r in held if r[0].dataset == ds and r[0].setting == setting and len(r) > 1]
        if pick:
            out.append(max(pick, key=mean_passes))
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
        colors = ["tab:orange" if e.get("backbone") or _is_llm(e.model) else "tab:blue" for e in rows]
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
        ax.set_title(_short(f"{rows[0].dataset}: {rows[0].table}", 72, 3), fontsize=8)
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


LLM_METHODS = ("ust-sllm", "st-link", "st-vlm", "factost", "llm-ts-net", "u-llm-ts-net")


def _is_llm(model: str) -> bool:
    return model.startswith(LLM_METHODS)


# ------------------------------------------------------------------------------------------ the page


def _fmt_mae(e: Entry) -> str:
    return f"{e.mae:.3f} +- {e.mae_std:.3f}" if e.seeds > 1 else f"{e.mae:.3f}"


def _tables_of(entries: list[Entry], setting: str) -> list[list[Entry]]:
    return list(tables([e for e in entries if e.setting == setting]).values())


def _best(entries: list[Entry], setting: str) -> tuple[Entry, list[Entry]] | None:
    """The best entry of the largest table of a setting (the one with the most models), and that table."""
    weight = {}
    for e in entries:
        weight[e.dataset] = weight.get(e.dataset, 0) + 1
    groups = _tables_of(entries, setting)
    if not groups:
        return None
    rows = max(groups, key=lambda v: (len(v), weight[v[0].dataset]))
    return rows[0], rows


def _longest_trained(entries: list[Entry], setting: str) -> list[Entry] | None:
    """The table of a setting, of two models or more, whose rows trained the most passes (mean over the rows
    that report passes): the answer with the least budget in it, beside the broadest table's."""
    def mean_passes(rows):
        p = [e.get("passes") for e in rows if e.get("passes") is not None]
        return sum(p) / len(p) if p else 0.0
    groups = [v for v in _tables_of(entries, setting) if len(v) > 1]
    best = max(groups, key=mean_passes, default=None)
    return best if best is not None and mean_passes(best) > 0 else None


def _seeds(e: Entry) -> str:
    return f"{e.seeds} seeds" if e.seeds > 1 else "1 seed"


def welch_p(a: Entry, b: Entry) -> float | None:
    """Welch's two-sided t-test p-value of two rows' MAEs from their seed means and stds; None unless both rows
    have two seeds or more and a spread."""
    if a.seeds < 2 or b.seeds < 2 or not (a.mae_std > 0 or b.mae_std > 0):
        return None
    from scipy import stats

    p = stats.ttest_ind_from_stats(a.mae, a.mae_std, a.seeds, b.mae, b.mae_std, b.seeds, equal_var=False).pvalue
    return float(p) if math.isfinite(p) else None


def _welch_words(a: Entry, b: Entry) -> str:
    p = welch_p(a, b)
    return "" if p is None else f" (Welch's t-test over the seeds: p = {p:.2g})"


def lm_lines(entries: list[Entry]) -> list[str]:
    """One line per method and table with two or more of the pretrained / random / removed rows: each row's MAE and
    the pretrained row's difference to the others, with Welch's p where both sides have seeds."""
    out = []
    for (method, table), kinds in sorted(backbone_groups(entries).items()):
        rows = [(k, kinds[k]) for k in BACKBONES if k in kinds]
        shown = ", ".join(f"{k} {_fmt_mae(e)} ({_seeds(e)})" for k, e in rows)
        line = f"- **{method}** ({rows[0][1].dataset}, {table}): {shown}"
        pre = kinds.get("pretrained")
        for k in ("random", "removed"):
            if pre is not None and k in kinds:
                d = kinds[k].mae - pre.mae
                line += (f"; pretrained {'ahead of' if d > 0 else 'behind'} {k} by {abs(d):.3f}"
                         f"{_welch_words(pre, kinds[k])}")
        out.append(line + ".")
    return out


def _verdict(rows: list[Entry]) -> str:
    """'model (dataset, table: MAE m); <the other side's best> is x % behind', the other side being the best
    language-model method when a non-LLM model leads, the best other model when an LLM method leads."""
    best = rows[0]
    if _is_llm(best.model):
        other = next((e for e in rows if not _is_llm(e.model)), None)
        who = "the best model without a language model"
    else:
        other = next((e for e in rows if _is_llm(e.model)), None)
        who = "the best language-model method"
    gap = (f"; {who}, {other.model} ({_seeds(other)}), is {100 * (other.mae / best.mae - 1):.1f} % behind"
           f"{_welch_words(best, other)}" if other is not None else "")
    return f"{best.model} ({best.dataset}, {best.table}: MAE {_fmt_mae(best)}, {_seeds(best)}){gap}"


def advice(entries: list[Entry]) -> list[str]:
    """Five lines: which model to use with full data, little data, no data, for intervals, for imputation; each
    drawn from the rows (a setting without rows says so). Each trained setting's line also names the
    longest-trained table's answer where it is another table than the broadest one: a ranking at a short budget
    and one at convergence can disagree, and a reader needs both."""
    out = []
    for setting, what in (("full", "With all the data"), ("few-shot", "With little data"),
                          ("zero-shot", "With no data of the new deployment")):
        out.append(_advice_line(entries, setting, what))
    probs = [e for e in entries if e.get("crps") is not None and e.get("coverage80") is not None]
    calibrated = [e for e in probs if 0.75 <= e.get("coverage80") <= 0.85]
    if probs:
        pick = min(calibrated or probs, key=lambda e: e.get("crps"))
        out.append(f"- **Intervals:** {pick.model} ({pick.dataset}, {pick.table}: CRPS {pick.get('crps'):.3f}, 80 % "
                   f"interval covering {100 * pick.get('coverage80'):.1f} %); any model takes `--quantiles "
                   "0.1,0.5,0.9`.")
    else:
        out.append("- **Intervals:** no row reports CRPS yet.")
    out.append(_advice_line(entries, "imputation", "Imputation"))
    return out


def _advice_line(entries: list[Entry], setting: str, what: str) -> str:
    hit = _best(entries, setting)
    if hit is None:
        return f"- **{what}:** no result rows yet."
    line = f"- **{what}:** {_verdict(hit[1])}."
    longest = _longest_trained(entries, setting) if setting != "zero-shot" else None
    if longest is not None and (longest[0].dataset, longest[0].table) != (hit[0].dataset, hit[0].table):
        line += f" Trained longest: {_verdict(longest)}."
    return line


def leaderboard_markdown(rows: list[Entry]) -> str:
    stid = next((e for e in rows if e.model.split()[0] == "stid"), None)
    extra = [c for c in ("crps", "coverage80") if any(e.get(c) is not None for e in rows)]
    budgets = {e.get("budget") or "" for e in rows}
    cited = any(e.get("published") for e in rows)
    head = ["#", "model", "MAE"] + (["published"] if cited else []) + ["x STID"] + \
        (["budget"] if len(budgets) > 1 else []) + ["passes", "seeds"] + extra
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, e in enumerate(rows, 1):
        ratio = f"{e.mae / stid.mae:.3f}" if stid is not None else ""
        passes = e.get("passes")
        cells = [str(i), f"**{e.model}**" if i == 1 else e.model, _fmt_mae(e)] + \
            ([e.get("published") or ""] if cited else []) + [ratio]
        cells += [e.get("budget") or ""] if len(budgets) > 1 else []
        cells += ["" if passes is None else f"{passes:.2f}".rstrip("0").rstrip(".") if passes < 10 else f"{passes:.0f}",
                  str(e.seeds)]
        for c in extra:
            v = e.get(c)
            cells.append("" if v is None else f"{100 * v:.1f} %" if c == "coverage80" else f"{v:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(entries: list[Entry], out, figures: dict[str, Path], command: str,
                 unranked: list[str] = ()) -> Path:
    """docs/results.md: the advice, every leaderboard (by dataset, then table), the pictures, and the rows that
    scored nothing (not ranked, listed at the end)."""
    out = Path(out)
    grouped = tables(entries)
    datasets = list(dict.fromkeys(ds for ds, _ in grouped))
    lines = ["# Results", "",
             f"Generated by `{command}` from the result CSVs the repository keeps (`results/`); do not edit by hand.",
             "Each leaderboard ranks the rows of one comparison: the same windows, scaler and budget for every row.",
             "`x STID` is the ratio to STID in the same table; `seeds` > 1 rows are mean +- seed std.", "",
             "## Which model to use", "", *advice(entries), ""]
    lm = lm_lines(entries)
    if lm:
        lines += ["## What the language model adds", "",
                  "The same method with its backbone pretrained, randomly initialised, or removed, within one table "
                  "(same windows, budget and seeds); p is Welch's two-sided t-test on the per-seed MAEs (from their "
                  "mean, std and count), shown where both rows have two seeds or more.", "", *lm, ""]
    if figures:
        lines += ["## At a glance", ""]
        for name, path in figures.items():
            rel = Path(path).relative_to(out.parent) if Path(path).is_relative_to(out.parent) else path
            lines += [f"![{name}]({rel.as_posix() if hasattr(rel, 'as_posix') else rel})", ""]
    for ds in datasets:
        lines += [f"## {ds}", ""]
        for (d, table), rows in grouped.items():
            if d != ds:
                continue
            budgets = {e.get("budget") or "" for e in rows}
            source = rows[0].get("source") or ""
            about = ([f"Budget: {budgets.pop()}."] if len(budgets) == 1 and "" not in budgets else []) + (
                [f"Source: {source}."] if source else [])
            lines += [f"### {table}", "", *([" ".join(about), ""] if about else []), leaderboard_markdown(rows), ""]
    if unranked:
        lines += ["## Not ranked", "", *[f"- {u}" for u in unranked], ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines).rstrip() + "\n")
    return out
