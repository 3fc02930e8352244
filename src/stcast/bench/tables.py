"""Result tables: the default table fitted to the console, every column (`--wide`, CSV, Markdown), the winner
per dataset."""

from __future__ import annotations

import sys

from stcast.task import Task


def table_columns(rows: list[dict], steps) -> list[str]:
    cols = ["dataset", "model"]
    for s in steps:
        cols += [c for c in (f"mae@{s}", f"rmse@{s}", f"mape@{s}") if any(c in r for r in rows)]
    cols += ["mae", "rmse", "mape"]
    if any("mre" in r and r.get("task") == Task.IMPUTE for r in rows):
        cols.append("mre")
    # multi-task rows (U-STS-LLM eq. 15): the reconstruction error on the inputs the test windows hide
    cols += [c for c in ("impute_mae", "impute_rmse", "hidden_mae") if any(c in r for r in rows)]
    # quantile models (FactoST): CRPS and the empirical coverage of the central 80 % / 98 % intervals
    cols += [c for c in ("crps", "crps_norm", "coverage80", "coverage98") if any(c in r for r in rows)]
    cols += ["trainable_params"] + (["head_params"] if any(r.get("head_params") for r in rows) else [])
    cols += ["total_params", "epochs"] + (["best_epoch"] if any(r.get("best_epoch") for r in rows) else [])
    cols += ["passes"] if any("passes" in r for r in rows) else []  # windows seen / training windows
    cols += ["s_per_epoch", "infer_ms_per_batch"]
    return cols


def _fmt(col: str, v) -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, float):
        if col.startswith(("mape", "coverage")) or col in ("mre", "crps_norm"):
            return f"{100 * v:.2f}%"
        return f"{v:.3f}" if abs(v) < 1e4 else f"{v:.3g}"
    return str(v)


def format_table(rows: list[dict], columns: list[str]) -> str:
    cells = [[_fmt(c, r.get(c)) for c in columns] for r in rows]
    width = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    line = "  ".join(c.rjust(w) for c, w in zip(columns, width))
    out = [line, "  ".join("-" * w for w in width)]
    out += ["  ".join(v.rjust(w) for v, w in zip(row, width)) for row in cells]
    return "\n".join(out)


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    out += ["| " + " | ".join(_fmt(c, r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(out)


def print_table(rows: list[dict], columns: list[str], file=None) -> None:
    """Every given column, aligned (the `--wide` view; the CSV and Markdown files always keep every column)."""
    print(format_table(rows, columns), file=file or sys.stdout)


# ------------------------------------------------------------------------------- the default, fitted table

# the columns a reader compares first, in order; and which go first when the console is too narrow
_COMPACT_NAMES = {"trainable_params": "params", "head_params": "head", "train_s": "train", "coverage80": "cov80",
                  "impute_mae": "imp_mae"}
_DROP_ORDER = ("rmse", "head_params", "train_s", "coverage80", "crps", "impute_mae", "trainable_params")


def compact_columns(rows: list[dict], steps) -> list[str]:
    """Model, MAE at the configured steps, pooled MAE and RMSE, CRPS and 80 % coverage when present, the
    reconstruction MAE of multi-task rows, trainable parameters (the interval head in its own column) and
    training time."""
    cols = ["model"] + [f"mae@{s}" for s in steps if any(f"mae@{s}" in r for r in rows)] + ["mae", "rmse"]
    cols += [c for c in ("crps", "coverage80", "impute_mae") if any(r.get(c) is not None for r in rows)]
    cols += ["trainable_params"] if any("trainable_params" in r for r in rows) else []
    cols += ["head_params"] if any(r.get("head_params") for r in rows) else []
    return cols + (["train_s"] if any("train_s" in r for r in rows) else [])


def _compact_cell(col: str, v) -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, float) and v != v:
        return "nan"  # nothing could be scored: said as such, never a blank
    if col in ("trainable_params", "head_params") and isinstance(v, int | float):
        v = int(v)
        return f"{v / 1e6:.1f}M" if v >= 1e6 else f"{v / 1e3:.0f}k" if v >= 1e4 else str(v)
    if col == "train_s" and isinstance(v, int | float):
        return f"{v:.0f}s" if v < 600 else f"{v / 60:.0f}m" if v < 36000 else f"{v / 3600:.1f}h"
    if col.startswith("coverage") and isinstance(v, float):
        return f"{100 * v:.1f}%"
    return _fmt(col, v)


def fit_table(rows: list[dict], steps, width: int) -> str:
    """The compact table in at most `width` characters a line: columns are left out (named in a last line) rather
    than any cell cut; several datasets get a block each."""
    cols = compact_columns(rows, steps)
    middle = [f"mae@{s}" for s in steps[1:-1]]  # the first and last configured steps are kept longest
    order = [c for c in middle + list(_DROP_ORDER) + [f"mae@{s}" for s in steps] if c in cols]
    datasets = list(dict.fromkeys(str(r.get("dataset", "")) for r in rows))
    dropped: list[str] = []
    while True:
        text = "\n".join(_block(rows, ds, cols, len(datasets) > 1) for ds in datasets)
        if max(map(len, text.splitlines())) <= width or not order:
            break
        dropped.append(order.pop(0))
        cols = [c for c in cols if c != dropped[-1]]
    if dropped:
        names = ", ".join(_COMPACT_NAMES.get(c, c) for c in dropped)
        note = f"(not shown at {width} columns: {names}; --wide shows every column)"
        text += "\n" + (note if len(note) <= width else f"(not shown: {names}; see --wide)")
    return text


def _block(rows, dataset: str, cols, titled: bool) -> str:
    mine = [r for r in rows if str(r.get("dataset", "")) == dataset]
    heads = [_COMPACT_NAMES.get(c, c) for c in cols]
    cells = [[_compact_cell(c, r.get(c)) for c in cols] for r in mine]
    w = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(heads)]
    just = [str.ljust if c == "model" else str.rjust for c in cols]
    lines = ["  ".join(j(h, n) for h, n, j in zip(heads, w, just)).rstrip(), "  ".join("-" * n for n in w)]
    lines += ["  ".join(j(v, n) for v, n, j in zip(row, w, just)).rstrip() for row in cells]
    return "\n".join(([dataset] if titled else []) + lines)


def console_width(file=None) -> int:
    """The terminal's width on a terminal; 100 columns in a pipe or a log."""
    import shutil

    file = file or sys.stdout
    if file.isatty():
        return max(40, shutil.get_terminal_size((100, 24)).columns)
    return 100


def print_results(rows: list[dict], steps, file=None, wide: bool = False) -> None:
    """A results table as a reader wants it: fitted to the console (every column with `wide`)."""
    file = file or sys.stdout
    if wide:
        print_table(rows, table_columns(rows, steps), file)
    else:
        print(fit_table(rows, list(steps), console_width(file)), file=file)


def print_report(rows: list[dict], steps, file=None, wide: bool = False) -> None:
    """The results table, then one line per dataset naming the winner."""
    print_results(rows, steps, file, wide)
    for line in winner_lines(rows):
        print(line, file=file or sys.stdout)


def ranked(rows: list[dict], dataset: str) -> list[dict]:
    """A dataset's rows with a pooled MAE, best first."""
    return sorted((r for r in rows if r["dataset"] == dataset and isinstance(r.get("mae"), float)
                   and r["mae"] == r["mae"]), key=lambda r: r["mae"])


def winner_lines(rows: list[dict]) -> list[str]:
    """One line per dataset: the row with the lowest pooled MAE, and how far below the last-value baseline (or
    the runner-up) it is."""
    out = []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        scored = ranked(rows, ds)
        if not scored:
            continue
        best = scored[0]
        ref = next((r for r in scored if r["model"] == "last-value" and r is not best), None)
        if ref is None and len(scored) > 1:
            ref = scored[1]
        vs = f", {100 * (1 - best['mae'] / ref['mae']):.1f} % below {ref['model']} ({ref['mae']:.3f})" if ref else ""
        out.append(f"best on {ds}: {best['model']} (pooled MAE {best['mae']:.3f}){vs}")
    return out
