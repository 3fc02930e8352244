"""Paired tests over test windows (bench/paired.py): the per-window errors a benchmark row keeps add up to its
table's MAE, the Diebold-Mariano test sees a real difference and not a null one, and it refuses to pair runs that
scored other entries."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from stcast.bench.paired import (
    WindowErrors,
    by_step_words,
    load_window_errors,
    newey_west_variance,
    paired_test,
    save_window_errors,
    step_table,
    window_errors,
)
from stcast.bench.runner import run_benchmark
from stcast.cli.bench import _winner_paired
from stcast.config import BenchConfig
from stcast.errors import StcastError
from stcast.metrics import MetricAccumulator


def _run(abs_sum, count=None, starts=None, **meta) -> WindowErrors:
    abs_sum = np.asarray(abs_sum, dtype=float)
    count = np.full(abs_sum.shape, 10, dtype=np.int64) if count is None else count
    starts = np.arange(len(abs_sum)) if starts is None else starts
    return WindowErrors({"model": "m", "dataset": "d", "task": "forecast", "steps_per_day": 48, **meta},
                        starts, abs_sum, count)


def test_window_errors_add_up_to_the_accumulators_figures():
    g = torch.Generator().manual_seed(0)
    pred, truth = torch.randn(30, 4, 5, 2, generator=g), torch.randn(30, 4, 5, 2, generator=g)
    mask = torch.rand(30, 4, 5, 2, generator=g) > 0.3
    truth[0, 0, 0, 0] = float("nan")  # a non-finite truth is not scored, as in the metrics
    abs_sum, count = window_errors(pred, truth, mask)
    acc = MetricAccumulator(4)
    acc.update(pred, truth, mask)
    assert abs_sum.shape == count.shape == (30, 4)
    assert abs_sum.sum() / count.sum() == pytest.approx(acc.summary(())["mae"], rel=1e-6)
    np.testing.assert_allclose(abs_sum.sum(0) / count.sum(0), acc.per_step()["mae"].numpy(), rtol=1e-6)


def test_the_mean_difference_is_the_difference_of_the_tables_maes():
    rng = np.random.default_rng(1)
    count = rng.integers(1, 20, size=(200, 3))
    a, b = _run(rng.random((200, 3)) * count, count), _run(rng.random((200, 3)) * count, count)
    r = paired_test([a], [b])
    assert r["mean_diff"] == pytest.approx(a.abs_sum.sum() / count.sum() - b.abs_sum.sum() / count.sum(), abs=1e-12)
    assert r["mae_a"] == pytest.approx(a.abs_sum.sum() / count.sum())
    step = paired_test([a], [b], step=2)
    assert step["mae_a"] == pytest.approx(a.abs_sum[:, 1].sum() / count[:, 1].sum())


def test_a_real_difference_is_found_and_a_null_one_is_not():
    rng = np.random.default_rng(2)
    base = rng.gamma(2.0, 5.0, size=(2000, 4))
    better = _run(base * 0.97)  # 3 % lower error on every window
    assert paired_test([better], [_run(base)])["dm_p"] < 1e-6
    null = [paired_test([_run(base + rng.normal(0, 1, base.shape).clip(-base, None))],
                        [_run(base + rng.normal(0, 1, base.shape).clip(-base, None))])["dm_p"] for _ in range(40)]
    assert np.mean(np.array(null) < 0.05) <= 0.15  # at the 5 % level, about 5 % of null comparisons reject
    same = paired_test([_run(base)], [_run(base)])
    assert same["dm_z"] == 0 and same["dm_p"] == 1


def test_the_long_run_variance_counts_neighbouring_windows():
    """Overlapping windows give persistent differences; ignoring that (lag 0) overstates the evidence."""
    rng = np.random.default_rng(3)
    d = np.zeros(5000)
    for t in range(1, len(d)):
        d[t] = 0.95 * d[t - 1] + rng.normal()
    assert newey_west_variance(d, 0) == pytest.approx(d.var())
    assert newey_west_variance(d, 100) > 10 * newey_west_variance(d, 0)
    a, b = _run(10 + d[:, None].clip(-9, None) + 0.05), _run(np.full((5000, 1), 10.0))
    assert paired_test([a], [b], lag=100)["dm_p"] > paired_test([a], [b], lag=0)["dm_p"]


def test_the_interval_of_the_difference_covers_the_true_one_when_errors_persist():
    """The 95 % interval printed beside the p-value: over persistent (AR 0.9) window differences with a known
    mean, the Newey-West interval covers it about 95 % of the time; the naive one (lag 0) far less often."""
    rng = np.random.default_rng(5)
    covered = {0: 0, 60: 0}
    for _ in range(120):
        e = rng.normal(size=1500)
        d = np.empty_like(e)
        d[0] = e[0]
        for t in range(1, len(e)):
            d[t] = 0.9 * d[t - 1] + e[t]
        # 10 entries per window: absolute-error sums 3 apart are a true MAE difference of 0.3
        a, b = _run(200 + 3 + d[:, None]), _run(np.full((1500, 1), 200.0))
        for lag in covered:
            lo, hi = paired_test([a], [b], lag=lag)["ci95"]
            covered[lag] += lo <= 0.3 <= hi
    assert covered[60] / 120 >= 0.85 and covered[0] / 120 <= 0.6


def test_runs_on_other_windows_or_entries_are_not_paired():
    a = _run(np.ones((50, 2)))
    with pytest.raises(StcastError, match="other test windows"):
        paired_test([a], [_run(np.ones((50, 2)), starts=np.arange(50) * 4)])
    with pytest.raises(StcastError, match="other test windows"):
        paired_test([a], [_run(np.ones((40, 2)))])
    other = np.full((50, 2), 10)
    other[3, 1] = 9
    with pytest.raises(StcastError, match="other scored entries in 1 windows"):
        paired_test([a], [_run(np.ones((50, 2)), count=other)])
    with pytest.raises(StcastError, match="other datasets"):
        paired_test([a], [_run(np.ones((50, 2)), dataset="pems-bay")])
    with pytest.raises(StcastError, match="the first side"):  # seeds of one side must pair too
        paired_test([a, _run(np.ones((40, 2)))], [a])
    with pytest.raises(StcastError, match="--step 3: the runs have steps 1 to 2"):
        paired_test([a], [a], step=3)


def test_seeds_of_one_side_are_averaged_window_by_window():
    rng = np.random.default_rng(4)
    s0, s1, b = (_run(rng.random((100, 2)) * 10) for _ in range(3))
    r = paired_test([s0, s1], [b])
    assert r["runs_a"] == 2
    assert r["mae_a"] == pytest.approx((s0.abs_sum + s1.abs_sum).sum() / 2 / s0.count.sum())


def test_files_are_read_without_unpickling_and_checked(tmp_path):
    preds = {"pred": torch.ones(6, 3, 4, 1), "truth": torch.zeros(6, 3, 4, 1), "mask": torch.ones(6, 3, 4, 1),
             "starts": np.arange(6)}
    path = save_window_errors(tmp_path / "a.npz", preds, {"model": "stid", "dataset": "d", "task": "forecast"})
    got = load_window_errors(path)
    assert got.name == "stid" and got.abs_sum.shape == (6, 3) and got.count.sum() == 72
    assert not list(tmp_path.glob("*.tmp*"))
    bad = tmp_path / "evil.npz"
    np.savez(bad, starts=np.arange(2), abs_sum=np.ones((2, 1)), count=np.ones((2, 1), dtype=int),
             meta=np.array([{"x": 1}], dtype=object))  # an object array: unpickling it could run code
    with pytest.raises(StcastError, match="not a readable per-window error file"):
        load_window_errors(bad)
    (tmp_path / "p.npz").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(StcastError, match="not a readable"):
        load_window_errors(tmp_path / "p.npz")
    with pytest.raises(StcastError, match="no such file"):
        load_window_errors(tmp_path / "none.npz")
    np.savez(tmp_path / "k.npz", starts=np.arange(2))
    with pytest.raises(StcastError, match="no abs_sum, count, meta"):
        load_window_errors(tmp_path / "k.npz")
    np.savez(tmp_path / "n.npz", starts=np.arange(2), abs_sum=np.array([[1.0], [np.nan]]),
             count=np.ones((2, 1), dtype=int), meta=np.array(json.dumps({})))
    with pytest.raises(StcastError, match="non-finite"):
        load_window_errors(tmp_path / "n.npz")
    np.savez(tmp_path / "s.npz", starts=np.arange(3), abs_sum=np.ones((2, 1)), count=np.ones((2, 1), dtype=int),
             meta=np.array(json.dumps({})))
    with pytest.raises(StcastError, match="mismatched shapes"):
        load_window_errors(tmp_path / "s.npz")
    for meta, what in (({"steps_per_day": "x"}, "steps_per_day 'x'"), ({"steps_per_day": -5}, "steps_per_day -5"),
                       ({"steps_per_day": [1]}, "steps_per_day"), ({"dataset": 3}, "dataset 3")):
        np.savez(tmp_path / "m.npz", starts=np.arange(2), abs_sum=np.ones((2, 1)), count=np.ones((2, 1), dtype=int),
                 meta=np.array(json.dumps(meta)))  # an edited meta: a named error, never a traceback later
        with pytest.raises(StcastError, match=what):
            load_window_errors(tmp_path / "m.npz")


def test_a_benchmark_keeps_each_rows_window_errors_and_compare_reads_them(tmp_path):
    cfg = BenchConfig.from_dict({"name": "t", "models": ["last-value", "dlinear"], "datasets": ["los-loop"],
                                 "train": {"epochs": 1, "max_batches_per_epoch": 3, "progress": False}})
    rows = run_benchmark(cfg, log=lambda *a: None, rows_csv=tmp_path / "t.csv").rows()
    files = {r["model"]: tmp_path / "t.windows" / f"los-loop--{r['model']}.npz" for r in rows}
    for r in rows:  # the file's errors are the row's MAE
        e = load_window_errors(files[r["model"]])
        assert e.abs_sum.sum() / e.count.sum() == pytest.approx(r["mae"], rel=1e-6)
        assert len(e.starts) == r["test_windows"] and e.meta["steps_per_day"] == 288
    best, second = sorted(rows, key=lambda r: r["mae"])
    lines = _winner_paired(rows, tmp_path / "t.csv", [3, 12])  # the line `stcast benchmark` prints under the winner
    assert len(lines) == 1 and f"{best['model']} against the runner-up {second['model']}" in lines[0]
    assert "; by step: " in lines[0] and " at 3 (p " in lines[0] and " at 12 (p " in lines[0]
    assert _winner_paired(rows, tmp_path / "elsewhere.csv") == []  # no per-window errors kept: no line
    out = subprocess.run([sys.executable, "-m", "stcast.cli", "compare", str(files["dlinear"]), "--against",
                          str(files["last-value"]), "--step", "12", "--steps", "3,12"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "Diebold-Mariano" in out.stdout and "dlinear" in out.stdout and "step 12" in out.stdout
    assert "\n| 3 | " in out.stdout and "\n| 12 | " in out.stdout  # the per-step table
    bad = subprocess.run([sys.executable, "-m", "stcast.cli", "compare", str(files["dlinear"]), "--against",
                          str(tmp_path / "t.csv")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("stcast: error:") and "Traceback" not in bad.stderr
    cli = [sys.executable, "-m", "stcast.cli"]
    model = tmp_path / "lv.pt"  # a saved model's errors from `evaluate --errors-out` pair with the benchmark's
    assert subprocess.run(cli + ["train", "--model", "last-value", "--dataset", "los-loop", "--out", str(model)],
                          capture_output=True).returncode == 0
    ev = subprocess.run(cli + ["evaluate", "--model-file", str(model), "--errors-out", str(tmp_path / "lv.npz")],
                        capture_output=True, text=True)
    assert ev.returncode == 0, ev.stderr
    same = paired_test([load_window_errors(tmp_path / "lv.npz")], [load_window_errors(files["last-value"])])
    assert same["mean_diff"] == 0 and same["dm_p"] == 1
    clash = subprocess.run(cli + ["evaluate", "--model-file", str(model), "--errors-out", str(model)],
                           capture_output=True, text=True)
    assert clash.returncode == 2 and "overwrite your input" in clash.stderr
    csv_out = subprocess.run(cli + ["evaluate", "--model-file", str(model), "--errors-out", str(tmp_path / "e.csv")],
                             capture_output=True, text=True)
    assert csv_out.returncode == 2 and "written as .npz" in csv_out.stderr and not (tmp_path / "e.csv").exists()
    script = Path(__file__).parents[2] / "scripts" / "seed_table.py"  # the seed table shows the paired view too
    seeds = subprocess.run([sys.executable, str(script), str(tmp_path / "t.csv"), "--compare", "dlinear,last-value"],
                           capture_output=True, text=True)
    assert seeds.returncode == 0, seeds.stderr
    assert "paired over" in seeds.stdout and "Diebold-Mariano" in seeds.stdout
    (tmp_path / "u.csv").write_text((tmp_path / "t.csv").read_text())  # a table whose runs kept no errors
    seeds = subprocess.run([sys.executable, str(script), str(tmp_path / "u.csv"), "--compare", "dlinear,last-value"],
                           capture_output=True, text=True)
    assert "not every run kept its per-window errors" in seeds.stdout
    run_benchmark(cfg, log=lambda *a: None, rows_csv=tmp_path / "t.csv", overwrite=True)  # a rerun replaces them
    assert sorted(p.name for p in (tmp_path / "t.windows").iterdir()) == sorted(p.name for p in files.values())


def test_merged_parts_keep_their_rows_window_errors(tmp_path, capsys):
    """`stcast merge` of a table run in two processes copies each row's per-window errors, so the merged table
    pairs as its parts did (the winner line, `stcast compare` on `<out>.windows/`)."""
    from stcast.cli import main

    for part, model in (("a", "last-value"), ("b", "ha")):
        cfg = BenchConfig.from_dict({"name": part, "models": [model], "datasets": ["los-loop"]})
        run_benchmark(cfg, log=lambda *a: None, rows_csv=tmp_path / f"{part}.csv")
    out = tmp_path / "all.csv"
    assert main(["merge", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--out", str(out)]) == 0
    assert "per-window errors of 2 rows in" in capsys.readouterr().out
    merged = {p.name: p.read_bytes() for p in (tmp_path / "all.windows").iterdir()}
    assert merged == {"los-loop--last-value.npz": (tmp_path / "a.windows" / "los-loop--last-value.npz").read_bytes(),
                      "los-loop--ha.npz": (tmp_path / "b.windows" / "los-loop--ha.npz").read_bytes()}
    import csv

    with open(out, newline="") as fh:
        rows = [{**r, "mae": float(r["mae"])} for r in csv.DictReader(fh)]
    assert len(_winner_paired(rows, out)) == 1  # the merged table's winner line pairs its two rows
    (tmp_path / "b.windows" / "los-loop--ha.npz").unlink()  # merged again from a part that kept no errors
    assert main(["merge", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--out", str(out)]) == 0
    assert [p.name for p in (tmp_path / "all.windows").iterdir()] == ["los-loop--last-value.npz"]  # no stale file
    assert _winner_paired(rows, out) == []
    assert main(["merge", str(tmp_path / "a.csv"), "--out", str(tmp_path / "a.csv")]) == 2  # never onto a part


def test_the_step_table_is_the_paired_test_at_each_step():
    rng = np.random.default_rng(3)
    base = rng.gamma(2.0, 5.0, (480, 4))
    a = _run(base * np.array([0.9, 1.0, 1.0, 1.1]) + rng.normal(0, 0.5, base.shape).clip(0))  # ahead early, behind late
    b = _run(base)
    lines = step_table([a], [b], [1, 4]).splitlines()
    assert lines[0].startswith("| step | m | m |") and len(lines) == 4
    for line, k in zip(lines[2:], (1, 4)):
        r = paired_test([a], [b], step=k)
        cells = [c.strip() for c in line.strip("|").split("|")]
        lo, hi = r["ci95"]
        assert cells[:6] == [str(k), f"{r['mae_a']:.4f}", f"{r['mae_b']:.4f}", f"{r['ratio']:.4f}",
                             f"{r['mean_diff']:+.4f} ({lo:+.4f} to {hi:+.4f})", f"{r['dm_z']:+.2f}"]
        assert cells[7] == f"{r['days_a_ahead']} of {r['days']}"
    assert float(lines[2].split("|")[4]) < 1 < float(lines[3].split("|")[4])  # the sign flips between the steps
    assert len(step_table([a], [b], None).splitlines()) == 2 + 4  # every step
    with pytest.raises(StcastError, match="--steps 5: the runs have steps 1 to 4"):
        step_table([a], [b], [1, 5])
    # the benchmark's winner line in words: a pooled tie can hide opposite, significant per-step differences
    assert by_step_words([a], [b], [1, 4, 9]).startswith("by step: ahead at 1 (p < 1e-4), behind at 4 (p < 1e-4)")
    assert by_step_words([b], [b], [2]) == "by step: level at 2 (p = 1)" and by_step_words([a], [b], [9]) == ""
