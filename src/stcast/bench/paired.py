"""Paired tests over test windows: is model A's lower MAE more than the luck of which windows were scored?

A table's MAE difference between two models is one number; seeds (Welch's test in bench/report.py) measure how
much it moves with training randomness, not with the test windows. Both models are scored on the same windows, so
the per-window errors pair up. Each benchmark row (and `stcast evaluate --errors-out`) keeps them in a small `.npz`:
per test window and output step the sum of absolute errors and the count of scored entries, in original units.

`paired_test` reads two sides (one or more runs each, e.g. three seeds: their per-window errors are averaged) and
gives
- the Diebold-Mariano test (Diebold & Mariano 1995) on the per-window loss differences, with a Newey-West (Bartlett)
  long-run variance: windows overlap (12-step targets one step apart) and traffic errors persist for hours, so
  neighbouring differences are not independent. The default lag is one day of windows (at most a quarter of the
  windows);
- the same differences averaged per day (blocks of a day's steps) and a paired t-test over days, the cruder
  test that needs no lag;
- on how many days A was ahead.
Each window's loss is its absolute-error sum over the mean count per window, so the mean of the differences is
exactly the difference of the two pooled MAEs in the tables.
"""

from __future__ import annotations

import json
import math
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stcast.engine.environment import environments_note
from stcast.errors import StcastError

_KEYS = ("starts", "abs_sum", "count", "meta")


@dataclass
class WindowErrors:
    meta: dict  # model, dataset, task, steps_per_day, mae (the table's), ...
    starts: np.ndarray  # (W,) the first input step of each scored window
    abs_sum: np.ndarray  # (W, H) sum of |prediction - truth| over the scored entries of each window and step
    count: np.ndarray  # (W, H) how many entries were scored

    @property
    def name(self) -> str:
        return str(self.meta.get("model", "?"))


def window_errors(pred: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per window and step: the sum of absolute errors over the scored entries and their count (what
    `MetricAccumulator` sums over windows: the pooled MAE is abs_sum.sum() / count.sum())."""
    valid = mask.bool() & torch.isfinite(truth)
    err = torch.where(valid, (pred.double() - truth.double()).abs(), 0.0)
    dims = tuple(range(2, pred.dim()))  # (W, H, N, C): sum over sensors and channels
    return err.sum(dims).numpy(), valid.sum(dims).numpy().astype(np.int64)


def windows_dir(rows_csv) -> Path:
    """The folder of a benchmark table's per-window errors: `<name>.windows/` beside `<name>.csv`."""
    return Path(rows_csv).with_name(Path(rows_csv).stem + ".windows")


def window_errors_path(rows_csv, dataset: str, label: str) -> Path:
    """Where a benchmark table's row keeps its per-window errors: `<name>.windows/<dataset>--<row>.npz`."""
    safe = lambda text: re.sub(r"[^A-Za-z0-9._-]+", "_", text)  # noqa: E731 - as the row checkpoints are named
    return windows_dir(rows_csv) / f"{safe(dataset)}--{safe(label)}.npz"


def save_window_errors(path, predictions: dict, meta: dict) -> Path:
    """`predictions` as a benchmark row or `evaluate` collects them (pred, truth, mask, starts)."""
    abs_sum, count = window_errors(predictions["pred"], predictions["truth"], predictions["mask"])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    # float32 sums (7 digits: the MAE to ~1e-7) and int32 counts halve the file; sums are added in float64 on reading
    np.savez_compressed(tmp, starts=np.asarray(predictions["starts"], dtype=np.int64),
                        abs_sum=abs_sum.astype(np.float32), count=count.astype(np.int32),
                        meta=np.array(json.dumps(meta, default=str)))
    tmp.replace(path)
    return path


def load_window_errors(path) -> WindowErrors:
    """A file `save_window_errors` wrote, read without unpickling anything; anything else is a named error."""
    path = Path(path)
    if not path.is_file():
        raise StcastError(f"{path}: no such file (per-window errors are written beside a benchmark's CSV, in "
                          "<name>.windows/, or by `stcast evaluate --errors-out`)")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in _KEYS if k not in z.files]
            if missing:
                raise StcastError(f"{path}: not a per-window error file (no {', '.join(missing)})")
            starts, abs_sum, count, meta = (z[k] for k in _KEYS)
        meta = json.loads(str(meta))
    except StcastError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise StcastError(f"{path}: not a readable per-window error file ({str(e).splitlines()[0][:160]})") from e
    if not isinstance(meta, dict):
        raise StcastError(f"{path}: its meta is not a mapping")
    spd = meta.get("steps_per_day")
    if spd is not None and (isinstance(spd, bool) or not isinstance(spd, int) or spd < 0):
        raise StcastError(f"{path}: its meta's steps_per_day {spd!r} is not a whole number of steps >= 0")
    for key in ("model", "dataset", "task"):
        if not isinstance(meta.get(key, ""), str):
            raise StcastError(f"{path}: its meta's {key} {meta[key]!r} is not a name")
    if starts.ndim != 1 or abs_sum.ndim != 2 or abs_sum.shape != count.shape or len(starts) != len(abs_sum):
        raise StcastError(f"{path}: arrays of mismatched shapes (starts {starts.shape}, abs_sum {abs_sum.shape}, "
                          f"count {count.shape})")
    if not np.issubdtype(abs_sum.dtype, np.floating) or not np.issubdtype(count.dtype, np.integer) \
            or not np.issubdtype(starts.dtype, np.integer):
        raise StcastError(f"{path}: arrays of the wrong types ({abs_sum.dtype}, {count.dtype}, {starts.dtype})")
    if not np.isfinite(abs_sum).all() or (abs_sum < 0).any() or (count < 0).any():
        raise StcastError(f"{path}: negative or non-finite errors or counts")
    return WindowErrors(meta, starts, abs_sum.astype(np.float64), count.astype(np.int64))


def _side(runs: list[WindowErrors], step: int | None, label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One side's per-window absolute-error sums (averaged over its runs), counts and starts."""
    first = runs[0]
    for r in runs[1:]:
        _same_windows(first, r, f"{label}: {first.name} and {r.name}")
    h = first.abs_sum.shape[1]
    if step is not None and not 1 <= step <= h:
        raise StcastError(f"--step {step}: the runs have steps 1 to {h}")
    cols = slice(None) if step is None else slice(step - 1, step)
    abs_sum = np.mean([r.abs_sum[:, cols].sum(1) for r in runs], axis=0)
    return abs_sum, first.count[:, cols].sum(1), first.starts


def _same_windows(a: WindowErrors, b: WindowErrors, what: str) -> None:
    """Pairs only make sense on the same scored entries: same windows, same counts per window and step."""
    for key in ("dataset", "task"):
        if a.meta.get(key) != b.meta.get(key):
            raise StcastError(f"{what}: other {key}s ({a.meta.get(key)!r} and {b.meta.get(key)!r})")
    if a.abs_sum.shape != b.abs_sum.shape or not np.array_equal(a.starts, b.starts):
        raise StcastError(f"{what}: other test windows ({len(a.starts)} and {len(b.starts)} windows"
                          f"{', other starts' if len(a.starts) == len(b.starts) else ''}); pair runs of one "
                          "protocol (split, window, eval_stride)")
    if not np.array_equal(a.count, b.count):
        n = int((a.count != b.count).any(1).sum())
        raise StcastError(f"{what}: other scored entries in {n} windows (another missing-data mask or null value)")


def newey_west_variance(d: np.ndarray, lag: int) -> float:
    """The long-run variance of the mean's numerator: gamma_0 + 2 sum_k (1 - k / (lag + 1)) gamma_k."""
    x = d - d.mean()
    t = len(x)
    var = float(x @ x) / t
    for k in range(1, min(lag, t - 1) + 1):
        var += 2.0 * (1.0 - k / (lag + 1)) * float(x[k:] @ x[:-k]) / t
    return var


def paired_test(a: list[WindowErrors], b: list[WindowErrors], step: int | None = None,
                lag: int | None = None) -> dict:
    """A against B on the windows both scored (module docstring). `step` tests one output step (1-based), else
    all steps pooled; `lag` is the Newey-West lag in windows (default: one day of windows)."""
    from scipy import stats

    if not a or not b:
        raise StcastError("compare: each side needs at least one per-window error file")
    abs_a, count, starts = _side(a, step, "the first side")
    abs_b, _, _ = _side(b, step, "--against")
    _same_windows(a[0], b[0], f"{a[0].name} and {b[0].name}")
    keep = count > 0
    if keep.sum() < 2:
        raise StcastError(f"compare: {int(keep.sum())} window(s) with scored entries; a paired test needs two or more")
    abs_a, abs_b, count, starts = abs_a[keep], abs_b[keep], count[keep], starts[keep]
    per_window = count.mean()
    d = (abs_a - abs_b) / per_window  # mean(d) = MAE_a - MAE_b exactly (pooled over every scored entry)
    t = len(d)
    spd = int(a[0].meta.get("steps_per_day") or 0)
    stride = int(np.median(np.diff(starts))) if t > 1 else 1
    if lag is None:  # a day of windows, at most a quarter of them (a short test set); no calendar: Newey-West's rule
        lag = max(1, min(spd // max(stride, 1), t // 4)) if spd else int(4 * (t / 100) ** (2 / 9))
    if lag < 0:
        raise StcastError(f"--lag {lag}: must be >= 0")
    var = newey_west_variance(d, lag)
    mean = float(d.mean())
    se = math.sqrt(var / t) if var > 0 else 0.0
    if var > 0:
        z = mean / se
        p = float(2 * stats.norm.sf(abs(z)))
    else:  # identical errors everywhere (or a constant difference): no variation to test against
        z, p = (0.0, 1.0) if mean == 0 else (math.copysign(math.inf, mean), 0.0)
    out = {"model_a": _names(a), "model_b": _names(b), "runs_a": len(a),
           "runs_b": len(b), "dataset": a[0].meta.get("dataset"), "step": step, "windows": t,
           "mae_a": float(abs_a.sum() / count.sum()), "mae_b": float(abs_b.sum() / count.sum()),
           "mean_diff": mean, "lag": lag, "dm_z": z, "dm_p": p,
           # the 95 % interval of the MAE difference, from the same Newey-West standard error (a figure to cite
           # beside the p-value: how large the lead may be, not only whether it is there)
           "ci95": (mean - 1.959964 * se, mean + 1.959964 * se)}
    out["ratio"] = out["mae_a"] / out["mae_b"] if out["mae_b"] > 0 else math.nan
    # runs from different environments: part of the difference may be the environment's (engine/environment.py)
    out["environment_note"] = environments_note([r.meta.get("environment") for r in a + b], "the compared runs")
    if spd:
        day = (starts - starts[0]) // spd
        days = np.unique(day)
        per_day = np.array([d[day == k].mean() for k in days])
        out.update(days=len(days), days_a_ahead=int((per_day < 0).sum()))
        if len(days) >= 2 and per_day.std() > 0:
            res = stats.ttest_1samp(per_day, 0.0)
            out.update(day_t=float(res.statistic), day_p=float(res.pvalue))
    return out


def step_table(a: list[WindowErrors], b: list[WindowErrors], steps: list[int] | None,
               lag: int | None = None) -> str:
    """The paired test at each output step, as a Markdown table to paste beside a results table (steps 3 / 6 / 12
    are the field's columns); `steps` None: every step."""
    h = a[0].abs_sum.shape[1]
    steps = list(range(1, h + 1)) if steps is None else steps
    outside = [k for k in steps if not 1 <= k <= h]
    if outside:
        raise StcastError(f"--steps {','.join(map(str, outside))}: the runs have steps 1 to {h}")
    first = paired_test(a, b, step=steps[0], lag=lag)
    lines = [f"| step | {first['model_a']} | {first['model_b']} | ratio | difference (95 % interval) | DM z | DM p | "
             "days ahead | t over days p |", "|---|---|---|---|---|---|---|---|---|"]
    for k in steps:
        r = first if k == steps[0] else paired_test(a, b, step=k, lag=lag)
        days = f"{r['days_a_ahead']} of {r['days']}" if "days" in r else "-"
        lo, hi = r["ci95"]
        lines.append(f"| {k} | {r['mae_a']:.4f} | {r['mae_b']:.4f} | {r['ratio']:.4f} | {r['mean_diff']:+.4f} "
                     f"({lo:+.4f} to {hi:+.4f}) | {r['dm_z']:+.2f} | "
                     f"{_p_cell(r['dm_p'])} | {days} | {_p_cell(r['day_p']) if 'day_p' in r else '-'} |")
    return "\n".join(lines)


def by_step_words(a: list[WindowErrors], b: list[WindowErrors], steps, level: float = 0.05) -> str:
    """`by step: ahead at 3 (p < 1e-4), behind at 6 (p = 0.0077), level at 12 (p = 0.19)`: A against B at each
    output step (Diebold-Mariano; 'level' when p >= `level`). A pooled tie can hide two opposite, significant
    per-step differences (docs/benchmarks.md: LLM-TS Net without text against STID on the full METR-LA); steps
    beyond the runs' horizon are left out, and '' when none is left."""
    h = a[0].abs_sum.shape[1]
    words = []
    for k in [k for k in steps if 1 <= k <= h]:
        try:
            r = paired_test(a, b, step=k)
        except StcastError:  # e.g. a step with under two scored windows: that step untested, the rest said
            continue
        side = "level" if r["dm_p"] >= level else ("ahead" if r["mean_diff"] < 0 else "behind")
        words.append(f"{side} at {k} (p {p_words(r['dm_p'])})")
    return f"by step: {', '.join(words)}" if words else ""


def summary(a: list[WindowErrors], b: list[WindowErrors], steps=()) -> list[str]:
    """A against B in one line (and the environment note, when there is one), as the benchmark's winner line and
    `scripts/seed_table.py` print it: the difference with its 95 % interval, the days ahead, the Diebold-Mariano
    p-value and the same test at each of `steps` in words."""
    r = paired_test(a, b)
    lo, hi = r["ci95"]
    seeds = " (runs averaged per window)" if max(r["runs_a"], r["runs_b"]) > 1 else ""
    days = f", ahead on {r['days_a_ahead']} of {r['days']} test days" if "days" in r else ""
    per_step = by_step_words(a, b, steps)
    line = (f"paired over {r['windows']:,} test windows{seeds}: difference {r['mean_diff']:+.4f} (95 % interval "
            f"{lo:+.4f} to {hi:+.4f}){days}, Diebold-Mariano p {p_words(r['dm_p'])}"
            + (f"; {per_step}" if per_step else ""))
    return [line] + ([r["environment_note"]] if r["environment_note"] else [])


def _p_cell(p: float) -> str:
    return p_words(p).removeprefix("= ")


def _names(runs: list[WindowErrors]) -> str:
    """A side's label: its model's name once (seeds of one model), else the names joined by '+'."""
    return "+".join(dict.fromkeys(r.name for r in runs))


def describe(r: dict) -> str:
    """The test's result in words, as `stcast compare` prints it."""
    what = "all steps pooled" if r["step"] is None else f"step {r['step']}"
    runs = lambda n: f" ({n} runs averaged)" if n > 1 else ""  # noqa: E731
    lines = [f"{r['model_a']}{runs(r['runs_a'])}: MAE {r['mae_a']:.4f}   {r['model_b']}{runs(r['runs_b'])}: MAE "
             f"{r['mae_b']:.4f}   ratio {r['ratio']:.4f}   ({r['dataset']}, {what}, {r['windows']:,} test windows)",
             f"mean difference {r['mean_diff']:+.4f} (95 % interval {r['ci95'][0]:+.4f} to {r['ci95'][1]:+.4f}); "
             f"Diebold-Mariano (Newey-West, lag {r['lag']} windows): z = {r['dm_z']:+.2f}, p {p_words(r['dm_p'])}"]
    if "days" in r:
        day = f"over {r['days']} days: {r['model_a']} ahead on {r['days_a_ahead']}"
        if "day_t" in r:
            day += f"; paired t over days: t = {r['day_t']:+.2f}, p {p_words(r['day_p'])}"
        lines.append(day)
    lines.append("(test windows only: the spread over training seeds is another question, Welch's test over seeds)")
    if r.get("environment_note"):
        lines.append(r["environment_note"])
    return "\n".join(lines)


def p_words(p: float) -> str:
    """`= 0.017` or `< 1e-4`: a p-value as printed after `p `."""
    return f"= {p:.2g}" if p >= 1e-4 else "< 1e-4"
