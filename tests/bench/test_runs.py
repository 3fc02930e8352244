"""`stcast runs` (bench/runs.py): the board of long benchmark tables reads what `--resume` keeps: finished rows,
the row in progress from its epoch checkpoint, rows to run, and whether a live process writes the table."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from stcast.bench.runner import run_benchmark
from stcast.bench.runs import board, survey
from stcast.config import BenchConfig, TrainConfig
from stcast.data.registry import load_dataset
from stcast.engine.experiment import Experiment


def test_the_board_shows_done_running_and_to_run_rows_and_who_writes(tmp_path):
    cfg = BenchConfig.from_dict({"name": "t", "models": ["last-value"], "datasets": ["los-loop"]})
    run_benchmark(cfg, log=lambda *a: None, rows_csv=tmp_path / "t.csv")
    state = json.loads((tmp_path / "t.state.json").read_text())  # the table grew: two more rows listed
    state["config"]["models"] = ["last-value", "dlinear", "ha"]
    (tmp_path / "t.state.json").write_text(json.dumps(state))
    ck = tmp_path / "t.ckpt" / "los-loop--dlinear.pt"  # dlinear stopped after 2 of its epochs: a real checkpoint
    Experiment("dlinear", load_dataset("los-loop"),
               train=TrainConfig(epochs=2, max_batches_per_epoch=2, patience=7, checkpoint=str(ck),
                                 progress=False)).run(collect=False)
    [t] = survey([tmp_path])
    assert t.wanted == ["los-loop last-value", "los-loop dlinear", "los-loop ha"]
    assert list(t.finished) == ["los-loop last-value"] and t.to_run == ["los-loop ha"]
    [r] = t.running
    assert (r.label, r.epochs_done, r.max_epochs, r.patience) == ("los-loop dlinear", 2, 2, 7)
    text = board([t])
    assert "1 of 3 rows done; stopped: continue with --resume" in text
    assert "in progress: los-loop dlinear: 2 epochs of <= 2 done, best validation MAE" in text
    assert "(patience 7)" in text and "to run: los-loop ha" in text
    assert "done: los-loop last-value: MAE" in board([t], rows=True) and "done:" not in text

    (tmp_path / "t.lock").write_text(f"{os.getpid()} {socket.gethostname()}")  # a live writer
    assert f"being written by process {os.getpid()}" in board(survey([tmp_path]))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "t.lock").write_text(f"{dead.stdout.strip()} {socket.gethostname()}")  # a killed run's lock
    assert "stopped: continue with --resume" in board(survey([tmp_path]))


def test_a_model_that_cannot_run_the_task_is_no_row_and_broken_files_are_shown_not_fatal(tmp_path):
    from stcast.bench.resume import fingerprint

    config = fingerprint(BenchConfig(models=["interpolate", "stid"], datasets=["los-loop"], task="impute"))
    (tmp_path / "imp.state.json").write_text(json.dumps({"config": config, "rows": {}}))
    [t] = survey([tmp_path])
    assert t.wanted == ["los-loop interpolate"]  # the runner skips STID on an imputation table
    (tmp_path / "imp.ckpt").mkdir()
    (tmp_path / "imp.ckpt" / "los-loop--interpolate.pt").write_bytes(b"not a checkpoint")
    assert "in progress: los-loop interpolate: its epoch checkpoint could not be read" in board(survey([tmp_path]))
    (tmp_path / "odd.state.json").write_text(json.dumps({"config": {"models": "stid", "datasets": ["x"]}, "rows": {}}))
    assert "odd  [" in board(survey([tmp_path])) and "not lists of names" in board(survey([tmp_path]))
    (tmp_path / "odd.state.json").unlink()
    (tmp_path / "bad.state.json").write_text("{")
    text = board(survey([tmp_path]))
    assert "bad  [" in text and "not a run state stcast can read" in text
    cli = [sys.executable, "-m", "stcast.cli", "runs"]
    out = subprocess.run(cli + [str(tmp_path / "missing")], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.startswith("stcast: error: runs:") and "is not a folder" in out.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    out = subprocess.run(cli + [str(empty)], capture_output=True, text=True)
    assert out.returncode == 0 and "no benchmark runs here" in out.stdout
