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


LLM_METHODS = ("ust-sllm", "st-link", "st-vlm", "factost", "llm-ts-net", "u-llm-ts-net")


def is_llm(model: str) -> bool:
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


def median_passes(rows: list[Entry]) -> float:
    """How long a table's rows trained: the median of their passes (a mean let a few cheap rows that made many
    passes in an equal-time budget outweigh a converged table of slow models)."""
    import statistics

    p = [e.get("passes") for e in rows if e.get("passes") is not None]
    return float(statistics.median(p)) if p else 0.0


def _longest_trained(entries: list[Entry], setting: str) -> list[Entry] | None:
    """The table of a setting, of two models or more, whose rows trained the most passes (median over the rows
    that report passes): the answer with the least budget in it, beside the broadest table's."""
    groups = [v for v in _tables_of(entries, setting) if len(v) > 1]
    best = max(groups, key=median_passes, default=None)
    return best if best is not None and median_passes(best) > 0 else None


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
    def lm(e: Entry) -> bool:  # a language-model method's row with its LM (not the ablation that removes it)
        return is_llm(e.model) and e.get("backbone") != "removed"
    best = rows[0]
    if lm(best):
        other = next((e for e in rows if not lm(e)), None)
        who = "the best model without a language model"
    else:
        other = next((e for e in rows if lm(e)), None)
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
