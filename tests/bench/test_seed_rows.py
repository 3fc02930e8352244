"""scripts/seed_rows.py: per-seed benchmark runs folded into the curated rows `stcast report` reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from stcast.bench import report

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "seed_rows.py"


def _run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=120)


def test_seeds_fold_into_one_row_per_variant_that_the_report_ranks(tmp_path):
    for seed, (a, b) in enumerate([(3.0, 3.6), (3.2, 3.4)]):
        frame = pd.DataFrame({"dataset": "metr-la", "model": ["stid-10%", "ust-sllm-10%-random"], "mae": [a, b],
                              "epochs": [10, 8], "passes": [10, 8], "train_s": [60, 600]})
        if seed == 0:  # the pretrained row in one run only: it still joins its method's ablation
            frame = pd.concat([frame, frame.iloc[[1]].assign(model="ust-sllm-10%", mae=3.3)])
        frame.to_csv(tmp_path / f"s{seed}.csv", index=False)
    out = tmp_path / "cur.csv"
    done = _run(tmp_path / "s0.csv", tmp_path / "s1.csv", "--out", out)
    assert done.returncode == 0, done.stderr
    rows = pd.read_csv(out).set_index("model")
    assert rows.loc["stid", "mae"] == 3.1 and rows.loc["stid", "seeds"] == 2 and pd.isna(rows.loc["stid", "backbone"])
    random = rows.loc["ust-sllm (random)"]
    assert random["method"] == "ust-sllm" and random["backbone"] == "random" and random["mae"] == 3.5
    pretrained = rows.loc["ust-sllm"]
    assert pretrained["method"] == "ust-sllm" and pretrained["backbone"] == "pretrained" and pretrained["seeds"] == 1
    entries = {e.model: e for e in report.read_results([out])}
    assert abs(entries["stid"].mae_std - 0.1414) < 1e-3 and entries["stid"].seeds == 2  # the report keeps the seed std
    groups = report.backbone_groups(list(entries.values()))
    assert set(groups) == {("ust-sllm", "few-shot 10 % trained to convergence (patience 5, at most 50 passes), 1 "
                                        "thread")} and set(groups[next(iter(groups))]) == {"pretrained", "random"}


def test_a_value_that_is_not_a_number_or_a_missing_file_is_named(tmp_path):
    (tmp_path / "bad.csv").write_text("dataset,model,mae\nmetr-la,stid,3.1 MAE\n")
    done = _run(tmp_path / "bad.csv", "--out", tmp_path / "o.csv")
    assert done.returncode == 2 and "stcast: error: column mae: '3.1 MAE' is not a number" in done.stderr
    done = _run(tmp_path / "none.csv", "--out", tmp_path / "o.csv")
    assert done.returncode == 2 and "none.csv" in done.stderr and not (tmp_path / "o.csv").exists()


def test_drop_leaves_out_one_models_rows_of_one_run_only(tmp_path):
    pd.DataFrame({"dataset": "aqi36", "model": ["brits", "saits"], "mae": [14.0, 18.0]}).to_csv(tmp_path / "old.csv",
                                                                                              index=False)
    pd.DataFrame({"dataset": "aqi36", "model": ["brits"], "mae": [13.0]}).to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "cur.csv"
    done = _run(tmp_path / "old.csv", tmp_path / "new.csv", "--out", out, "--drop", f"brits={tmp_path / 'old.csv'}")
    assert done.returncode == 0, done.stderr
    rows = pd.read_csv(out).set_index("model")
    assert rows.loc["brits", "mae"] == 13.0 and rows.loc["brits", "seeds"] == 1 and rows.loc["saits", "mae"] == 18.0
    for bad, said in ((f"grin={tmp_path / 'old.csv'}", "has no row of model 'grin'"),
                      (f"brits={tmp_path / 'other.csv'}", "PATH one of the CSVs given"), ("brits", "MODEL=PATH")):
        done = _run(tmp_path / "old.csv", "--out", tmp_path / "o.csv", "--drop", bad)
        assert done.returncode == 2 and "stcast: error: --drop" in done.stderr and said in done.stderr, done.stderr
