"""Result tables: columns for a set of rows, aligned text, Markdown, rich on a terminal, the winner per dataset."""

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
    cols += ["trainable_params", "total_params", "epochs"]
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
    """A results table: drawn with rich on an interactive terminal, plain aligned text otherwise (logs, pipes
    and scripts that read it keep one header line, a rule and one line per row)."""
    file = file or sys.stdout
    if not file.isatty():
        print(format_table(rows, columns), file=file)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    for c in columns:
        table.add_column(c, justify="left" if c in ("dataset", "model", "task") else "right")
    for r in rows:
        table.add_row(*[_fmt(c, r.get(c)) for c in columns])
    Console(file=file).print(table)


def print_report(rows: list[dict], steps, file=None) -> None:
    """The results table, then one line per dataset naming the winner."""
    print_table(rows, table_columns(rows, steps), file)
    for line in winner_lines(rows):
        print(line, file=file or sys.stdout)


def winner_lines(rows: list[dict]) -> list[str]:
    """One line per dataset: the row with the lowest pooled MAE, and how far below the last-value baseline (or
    the runner-up) it is."""
    out = []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        scored = [r for r in rows if r["dataset"] == ds and isinstance(r.get("mae"), float) and r["mae"] == r["mae"]]
        if not scored:
            continue
        best = min(scored, key=lambda r: r["mae"])
        ref = next((r for r in scored if r["model"] == "last-value" and r is not best), None)
        if ref is None and len(scored) > 1:
            ref = sorted(scored, key=lambda r: r["mae"])[1]
        vs = f", {100 * (1 - best['mae'] / ref['mae']):.1f} % below {ref['model']} ({ref['mae']:.3f})" if ref else ""
        out.append(f"best on {ds}: {best['model']} (pooled MAE {best['mae']:.3f}){vs}")
    return out
