"""Class 6: a run killed with SIGKILL at a random point and resumed ends bit-identical to an uninterrupted
run (same seed, same threads): weights, metrics, the CSV log (each epoch once) and no stray .tmp."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from stcast.engine.checkpoint import load_model

pytestmark = pytest.mark.slow
TIMING = ("train_s", "s_per_epoch", "infer_ms_per_batch")  # wall-clock columns: differ between any two runs


def _command(tmp_path, tag: str, resume: bool = False) -> list[str]:
    cfg = tmp_path / "cfg.yaml"
    # STID has dropout (the RNG state matters); a few short epochs keep the run at seconds
    cfg.write_text(yaml.safe_dump({"train": {"max_batches_per_epoch": 12, "patience": 99, "progress": False}}))
    cmd = [sys.executable, "-m", "stcast.cli", "--threads", "1", "train", "--model", "stid", "--dataset", "los-loop",
           "--epochs", "6", "--config", str(cfg), "--checkpoint", str(tmp_path / f"{tag}.ck"),
           "--log-csv", str(tmp_path / f"{tag}.csv"), "--out", str(tmp_path / f"{tag}.pt")]
    return cmd + (["--resume"] if resume else [])


def _table(stdout: str) -> list[str]:
    """The result row of the fitted table without its wall-clock column (train time); never empty."""
    rows = [ln.split()[:-1] for ln in stdout.splitlines() if ln.startswith("stid ")]
    assert len(rows) == 1 and len(rows[0]) >= 6, stdout
    return rows


def test_sigkill_then_resume_is_bit_identical(tmp_path):
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    t0 = time.time()
    full = subprocess.run(_command(tmp_path, "full"), capture_output=True, text=True, env=env, timeout=600)
    assert full.returncode == 0, full.stderr
    duration = time.time() - t0
    kill_after = random.uniform(0.45, 0.9) * duration  # somewhere inside training (start-up is ~40 %)
    proc = subprocess.Popen(_command(tmp_path, "cut"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    time.sleep(kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    epochs_done = len((tmp_path / "cut.csv").read_text().splitlines()) - 1 if (tmp_path / "cut.csv").exists() else 0
    resumed = subprocess.run(_command(tmp_path, "cut", resume=True), capture_output=True, text=True, env=env,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    note = f"killed after {kill_after:.1f}s of {duration:.1f}s, {epochs_done} epochs logged"
    assert _table(resumed.stdout) == _table(full.stdout), note
    a, b = load_model(tmp_path / "full.pt")[0].state_dict(), load_model(tmp_path / "cut.pt")[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), note
    log = (tmp_path / "cut.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log[1:]] == [str(e) for e in range(1, 7)], note
    assert not list(tmp_path.glob("*.tmp")), note


def test_resume_after_early_stopping_trains_no_further(tmp_path, los_small):
    from stcast.config import TrainConfig
    from stcast.engine.splits import prepare_windows
    from stcast.engine.trainer import Trainer
    from stcast.models.registry import build_model

    splits = prepare_windows(los_small, "forecast", 12, 12)
    ck = str(tmp_path / "ck.pt")
    torch.manual_seed(0)
    model = build_model("stid", splits.spec)
    cfg = dict(epochs=30, patience=2, lr=0.3, progress=False, checkpoint=ck)
    first = Trainer(model, TrainConfig(**cfg)).fit(splits.train, splits.val)
    assert len(first.history) < 30
    again = build_model("stid", splits.spec)
    (tmp_path / "ck.pt.tmp").write_bytes(b"half a checkpoint")  # what a kill during torch.save leaves
    second = Trainer(again, TrainConfig(**cfg, resume=True)).fit(splits.train, splits.val)
    assert not (tmp_path / "ck.pt.tmp").exists()
    assert len(second.history) == len(first.history)
    assert all(torch.equal(x, y) for x, y in zip(model.state_dict().values(), again.state_dict().values()))


def test_a_checkpoint_of_a_model_with_a_frozen_backbone_holds_only_what_training_changes(tmp_path, los_small):
    """U-STS-LLM's frozen LM blocks are rebuilt from their files (here: a seeded tiny config): the checkpoint keeps
    the trainable weights, buffers, optimiser and RNG only, and resuming from it is bit-identical."""
    from stcast.config import TrainConfig
    from stcast.engine.splits import prepare_windows
    from stcast.engine.trainer import Trainer
    from stcast.models.registry import build_model

    tiny = {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 10, "rope_theta": 10000.0}
    kw = {"backbone": "tiny", "backbone_config": tiny, "num_layers": 3, "trainable_top": 1, "groups": 4}
    splits = prepare_windows(los_small, "forecast", 12, 12)
    cfg = dict(epochs=3, patience=9, progress=False, max_batches_per_epoch=3, lr=1e-3)

    def fresh():
        torch.manual_seed(0)
        return build_model("ust-sllm", splits.spec, **kw)

    full = Trainer(fresh(), TrainConfig(**cfg)).fit(splits.train, splits.val).model
    ck = str(tmp_path / "ck.pt")
    Trainer(fresh(), TrainConfig(**{**cfg, "epochs": 1}, checkpoint=ck)).fit(splits.train, splits.val)
    saved = torch.load(ck, weights_only=True)
    frozen = {n for n, p in full.named_parameters() if not p.requires_grad}
    assert saved["slim"] and frozen and not frozen & set(saved["model"]) and not frozen & set(saved["best_model"])
    assert {n for n, p in full.named_parameters() if p.requires_grad} <= set(saved["model"])
    resumed = Trainer(fresh(), TrainConfig(**cfg, checkpoint=ck, resume=True)).fit(splits.train, splits.val).model
    a, b = full.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _bench(tmp_path, out: str, *extra: str) -> list[str]:
    cfg = tmp_path / "bench.yaml"
    if not cfg.exists():  # three rows; the second (STID, dropout: the RNG state matters) is the one killed
        cfg.write_text(yaml.safe_dump({
            "name": "three", "datasets": ["los-loop"], "models": ["dlinear", "stid", "stid-small"], "eval_stride": 4,
            "variants": {"stid-small": {"model": "stid", "embed_dim": 16}},
            "train": {"epochs": 5, "patience": 99, "batch_size": 16, "max_batches_per_epoch": 8, "seed": 0,
                      "progress": False}}))
    return [sys.executable, "-m", "stcast.cli", "--threads", "1", "benchmark", "--config", str(cfg), "--out-dir",
            str(tmp_path / out), *extra]


def _rows(path) -> list[dict]:
    import csv

    with open(path, newline="") as fh:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(fh)]


def test_a_benchmark_killed_in_its_second_row_and_resumed_writes_the_same_table(tmp_path):
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    full = subprocess.run(_bench(tmp_path, "full"), capture_output=True, text=True, env=env, timeout=900)
    assert full.returncode == 0, full.stderr
    proc = subprocess.Popen(_bench(tmp_path, "cut"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    # Kill at a random point of row 2's third epoch (of 5), whatever this machine's speed: row 2 writes its
    # checkpoint after every epoch (atomically: a new file each time), so two writes measure one epoch, and
    # a delay under one epoch from the second write lands before row 2 ends. A fixed delay did not: on a fast
    # machine row 2 finished inside it.
    ck = tmp_path / "cut" / "three.ckpt" / "los-loop--stid.pt"
    deadline = time.time() + 600
    writes: list[tuple[tuple[int, int], float]] = []  # ((inode, mtime) of each checkpoint seen, when seen)
    while len(writes) < 2 and proc.poll() is None and time.time() < deadline:
        try:
            st = ck.stat()
            if not writes or writes[-1][0] != (st.st_ino, st.st_mtime_ns):
                writes.append(((st.st_ino, st.st_mtime_ns), time.monotonic()))
        except FileNotFoundError:
            pass
        time.sleep(0.002)
    assert len(writes) == 2, f"row 2 wrote {len(writes)} checkpoint(s) before it ended: {proc.poll()=}"
    epoch = writes[1][1] - writes[0][1]
    time.sleep(random.uniform(0.0, 0.5) * epoch)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = _rows(tmp_path / "cut" / "three.csv")
    assert [r["model"] for r in first] == ["dlinear"], f"killed {epoch:.3f} s-epochs into row 2, not inside it"
    with open(tmp_path / "cut" / "three.csv") as fh:
        row1_time = fh.read().splitlines()[1]
    resumed = subprocess.run(_bench(tmp_path, "cut", "--resume"), capture_output=True, text=True, env=env,
                             timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    assert "dlinear: MAE" in resumed.stdout and "(finished earlier)" in resumed.stdout
    assert "los-loop stid: continues from its last epoch checkpoint" in resumed.stdout  # not re-run from scratch
    assert _rows(tmp_path / "cut" / "three.csv") == _rows(tmp_path / "full" / "three.csv")
    with open(tmp_path / "cut" / "three.csv") as fh:
        assert fh.read().splitlines()[1] == row1_time  # row 1 kept as written, not re-run
    assert not (tmp_path / "cut" / "three.ckpt").exists() and not list((tmp_path / "cut").glob("*.tmp"))
    changed = subprocess.run(_bench(tmp_path, "cut", "--resume", "--set", "train.lr=0.01"), capture_output=True,
                             text=True, env=env, timeout=300)
    assert changed.returncode == 2 and "train.lr: 0.002 -> 0.01" in changed.stderr


def test_partial_tables_merge_into_one(tmp_path, capsys):
    from stcast.cli import main

    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("dataset,model,mae\nmetr-la,stid,3.19\nmetr-la,ha,4.19\n")
    b.write_text("dataset,model,mae,passes\nmetr-la,ust-sllm,3.41,1.2\nmetr-la,stid,3.19,\n")
    assert main(["merge", str(a), str(b), "--out", str(tmp_path / "all.csv")]) == 0
    lines = (tmp_path / "all.csv").read_text().splitlines()
    assert lines[0] == "dataset,model,mae,passes" and len(lines) == 4
    b.write_text("dataset,model,mae\nmetr-la,stid,3.25\n")
    assert main(["merge", str(a), str(b), "--out", str(tmp_path / "all.csv")]) == 2
    assert "stid on metr-la appears in two parts with different figures" in capsys.readouterr().err


def test_parts_of_different_tables_do_not_merge(tmp_path, capsys):
    """Two benchmarks run with different settings (here the split) are two tables, whatever their rows say; so is
    a forecasting part beside an imputation part; and an MAE that is not a number is no row."""
    import json

    from stcast.bench.resume import fingerprint
    from stcast.cli import main
    from stcast.config import BenchConfig

    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("dataset,model,task,mae\nmetr-la,stid,forecast,3.19\n")
    b.write_text("dataset,model,task,mae\nmetr-la,dlinear,forecast,3.52\n")
    for part, models, name, split in ((a, ["stid"], "part-a", "7:1:2"), (b, ["dlinear"], "part-b", "7:1:2")):
        state = {"config": fingerprint(BenchConfig(models=models, name=name, split=split)), "rows": {}}
        part.with_name(part.stem + ".state.json").write_text(json.dumps(state))
    out = str(tmp_path / "all.csv")
    assert main(["merge", str(a), str(b), "--out", out]) == 0  # parts of one table: other rows, other names
    state = {"config": fingerprint(BenchConfig(models=["dlinear"], name="part-b", split="6:2:2")), "rows": {}}
    b.with_name("b.state.json").write_text(json.dumps(state))
    assert main(["merge", str(a), str(b), "--out", out]) == 2
    assert "were run with different settings (split: '7:1:2' vs '6:2:2')" in capsys.readouterr().err
    b.with_name("b.state.json").unlink()
    b.write_text("dataset,model,task,mae\nmetr-la,brits,impute,2.45\n")
    assert main(["merge", str(a), str(b), "--out", out]) == 2
    assert "line 2 is a row of task 'impute'" in capsys.readouterr().err
    b.write_text("dataset,model,task,mae\nmetr-la,dlinear,forecast,abc\n")
    assert main(["merge", str(a), str(b), "--out", out]) == 2
    assert "line 2: mae 'abc' is not a number" in capsys.readouterr().err


def test_a_resumed_run_keeps_its_wall_clock_budget(tmp_path, los_small):
    """`max_minutes` counts the training before a kill too: a resumed equal-time row gets no fresh budget."""
    from stcast.config import TrainConfig
    from stcast.engine.splits import prepare_windows
    from stcast.engine.trainer import Trainer
    from stcast.models.registry import build_model

    splits = prepare_windows(los_small, "forecast", 12, 12)
    ck = str(tmp_path / "ck.pt")
    cfg = dict(patience=99, progress=False, max_batches_per_epoch=2, checkpoint=ck)
    Trainer(build_model("dlinear", splits.spec), TrainConfig(epochs=1, **cfg)).fit(splits.train, splits.val)
    state = torch.load(ck, weights_only=True)
    assert 0 < state["train_seconds"] < 600
    state["train_seconds"] = 3600.0  # as if an hour had been spent before the kill
    torch.save(state, ck)
    again = Trainer(build_model("dlinear", splits.spec), TrainConfig(epochs=6, max_minutes=1, resume=True, **cfg))
    again.fit(splits.train, splits.val)
    assert len(again.history) == 2  # one more epoch, then the (already spent) budget ends it


def test_resume_refuses_a_changed_setting_but_not_one_added_to_stcast_since_at_its_default(tmp_path):
    import json

    from stcast.bench.resume import RunState
    from stcast.config import BenchConfig
    from stcast.errors import StcastError

    csv_path = tmp_path / "t.csv"
    cfg = BenchConfig(models=["last-value"], datasets=["los-loop"], train={"epochs": 1})
    RunState(csv_path, cfg, resume=False).finish("los-loop", "last-value", {"mae": 1.0},
                                                 cfg.train_config("last-value"))
    state = json.loads(csv_path.with_name("t.state.json").read_text())
    del state["config"]["context_len"]  # a run started before stcast had the setting
    csv_path.with_name("t.state.json").write_text(json.dumps(state))
    assert RunState(csv_path, cfg, resume=True).finished("los-loop", "last-value") == {"mae": 1.0}
    # the accepted resume recorded the config as it runs now (context_len spelled out at its default, None)
    with pytest.raises(StcastError, match="context_len: None -> 96"):
        RunState(csv_path, BenchConfig(models=["last-value"], datasets=["los-loop"], train={"epochs": 1},
                                       input_len=12, context_len=96), resume=True)
    with pytest.raises(StcastError, match="eval_stride"):
        RunState(csv_path, BenchConfig(models=["last-value"], datasets=["los-loop"], train={"epochs": 1},
                                       eval_stride=4), resume=True)


def test_resume_takes_rows_added_to_the_list_but_refuses_one_that_drops_a_finished_row(tmp_path):
    from stcast.bench.resume import RunState
    from stcast.config import BenchConfig
    from stcast.errors import StcastError

    csv_path = tmp_path / "t.csv"
    cfg = BenchConfig(models=["last-value", "ha"], datasets=["los-loop"], train={"epochs": 1})
    RunState(csv_path, cfg, resume=False).finish("los-loop", "last-value", {"mae": 1.0},
                                                 cfg.train_config("last-value"))
    grown = BenchConfig(models=["stid", "last-value", "dlinear"], datasets=["los-loop"], train={"epochs": 1})
    state = RunState(csv_path, grown, resume=True)
    assert state.finished("los-loop", "last-value") == {"mae": 1.0} and state.finished("los-loop", "stid") is None
    with pytest.raises(StcastError, match="finished rows are not in this run's models and datasets"
                                          r" \(los-loop last-value\)"):
        RunState(csv_path, BenchConfig(models=["ha"], datasets=["los-loop"], train={"epochs": 1}), resume=True)
    with pytest.raises(StcastError, match="los-loop last-value"):
        RunState(csv_path, BenchConfig(models=["last-value"], datasets=["metr-la"], train={"epochs": 1}), resume=True)
    with pytest.raises(StcastError, match="train.epochs: 1 -> 2"):  # a grown list still refuses a changed setting
        RunState(csv_path, BenchConfig(models=["last-value", "stid"], datasets=["los-loop"], train={"epochs": 2}),
                 resume=True)


def test_a_run_stopped_inside_its_first_row_resumes_and_a_resume_with_nothing_to_resume_starts(tmp_path):
    from stcast.bench.resume import RunState
    from stcast.config import BenchConfig
    from stcast.errors import StcastError

    csv_path = tmp_path / "t.csv"
    cfg = BenchConfig(models=["stid", "ha"], datasets=["los-loop"], train={"epochs": 1})
    fresh = RunState(csv_path, cfg, resume=True)  # nothing there yet: started, and said so
    assert "no earlier run of 't'" in fresh.note and "starting it" in fresh.note
    first = fresh.train_config(cfg.train_config("stid"), "los-loop", "stid")
    Path(first.checkpoint).parent.mkdir(parents=True, exist_ok=True)
    Path(first.checkpoint).write_bytes(b"an epoch checkpoint")  # killed in row 1: no row finished yet
    again = RunState(csv_path, cfg, resume=True)
    assert again.note == "" and again.train_config(cfg.train_config("stid"), "los-loop", "stid").resume
    with pytest.raises(StcastError, match="train.epochs: 1 -> 3"):  # its config was recorded at the start
        RunState(csv_path, BenchConfig(models=["stid", "ha"], datasets=["los-loop"], train={"epochs": 3}),
                 resume=True)
    with pytest.raises(StcastError, match="a row's epoch checkpoint, t.state.json.*--resume.*--overwrite"):
        RunState(csv_path, cfg, resume=False)  # a rerun that forgot --resume: the stopped row is kept
    assert Path(first.checkpoint).exists()
    RunState(csv_path, cfg, resume=False, overwrite=True)  # a fresh start, asked for, discards the checkpoint
    assert not Path(first.checkpoint).exists()


def test_a_rerun_without_resume_keeps_the_finished_rows(tmp_path, capsys):
    """The same command run again (no --resume) never drops an earlier run's rows: an error names them and the
    ways on; --overwrite starts over; --resume with --overwrite is a contradiction; the demo reruns at will."""
    from stcast.cli import main

    run = ["benchmark", "--models", "last-value,ha", "--datasets", "los-loop", "--set", "name=t",
           "--out-dir", str(tmp_path)]
    assert main(run) == 0
    table = (tmp_path / "t.csv").read_bytes()
    assert main(run) == 2
    err = capsys.readouterr().err
    assert "an earlier run of 't' is there (2 finished rows, t.state.json)" in err and "--overwrite" in err
    assert (tmp_path / "t.csv").read_bytes() == table
    assert main([*run, "--resume", "--overwrite"]) == 2
    assert "give one of them" in capsys.readouterr().err
    assert main([*run, "--overwrite"]) == 0 and main([*run, "--resume"]) == 0


def test_two_processes_never_write_one_table(tmp_path, capsys):
    """A second run of a table while the first is writing it would overwrite its rows: refused, naming the
    holder and the way out; a lock whose process is gone (a kill) is taken over; a finished run leaves none."""
    import socket
    import subprocess

    from stcast.cli import main

    run = ["benchmark", "--models", "last-value", "--datasets", "los-loop", "--set", "name=t", "--out-dir",
           str(tmp_path)]
    lock = tmp_path / "t.lock"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(f"{other.pid} {socket.gethostname()}")
        assert main(run) == 2
        err = capsys.readouterr().err
        assert f"'t' is being written by process {other.pid}" in err and "stcast merge" in err
        assert not (tmp_path / "t.csv").exists() and not (tmp_path / "t.state.json").exists()
    finally:
        other.kill()
        other.wait()
    assert main(run) == 0  # the holder is gone: its lock is taken over
    assert not lock.exists() and (tmp_path / "t.csv").exists()
