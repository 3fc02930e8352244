"""Training on Lightning Fabric across processes: sharding, exact metric reduction, rank-0 writes, GPU path."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from stcast.config import TrainConfig
from stcast.data.windows import shard
from stcast.engine.checkpoint import load_model
from stcast.engine.scoring import evaluate
from stcast.engine.splits import prepare_windows
from stcast.engine.trainer import Trainer
from stcast.errors import StcastError
from stcast.metrics import MetricAccumulator, ProbabilisticAccumulator
from stcast.models.registry import build_model


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_take_disjoint_shares_that_make_up_each_global_batch(splits, world):
    one = [b.start.numpy() for b in splits.train.batches(32, shuffle=True, seed=7)]
    per_rank = [[b.start.numpy() for b in splits.train.batches(32, shuffle=True, seed=7, rank=r, world=world,
                                                               even=True)] for r in range(world)]
    steps = {len(p) for p in per_rank}
    assert len(steps) == 1  # every rank takes the same number of steps (DDP would hang otherwise)
    for k in range(steps.pop()):
        parts = [p[k] for p in per_rank]
        union = np.concatenate(parts)
        assert len(np.unique(union)) == len(union)  # disjoint
        assert sorted(union) == sorted(one[k])  # together: the one-process batch
    assert np.array_equal(shard(np.arange(10), 1, 3), [1, 4, 7])


def test_a_last_batch_smaller_than_the_process_count_is_dropped_on_every_rank(splits):
    n = len(splits.train)
    batch = n - 1  # the last global batch holds a single window
    for rank in range(2):
        got = list(splits.train.batches(batch, rank=rank, world=2, even=True))
        assert len(got) == 1
    assert len(list(splits.train.batches(batch, rank=0, world=2))) == 2  # scoring keeps it (rank 0 scores it)


def test_reduced_sums_equal_one_pass_over_all_windows(splits):
    torch.manual_seed(0)
    model = build_model("stid", splits.spec).eval()
    whole = evaluate(model, splits.test, 64)
    accs = [MetricAccumulator(12) for _ in range(2)]
    for rank, acc in enumerate(accs):
        for b in splits.test.batches(64, rank=rank, world=2):
            with torch.no_grad():
                acc.update(splits.test.scaler.inverse(model(b).point), b.y, b.y_mask)
    total = torch.stack([torch.stack([a.abs, a.sq, a.ape, a.n, a.n_ape, a.abs_y]) for a in accs]).sum(0)
    accs[0].reduce(lambda t: total)
    got = accs[0].summary()
    for k in ("mae", "rmse", "mape", "mae@3", "mae@12", "count"):
        assert got[k] == pytest.approx(whole[k], rel=1e-6), k
    prob = ProbabilisticAccumulator()
    prob.reduce(lambda t: t * 2, (0.1, 0.5, 0.9))  # nothing seen here, another rank saw windows
    assert set(prob.inside) == {"coverage80"}


def test_global_batch_must_divide_over_processes():
    from stcast.engine.distributed import check_global_batch

    check_global_batch(32, 2)
    with pytest.raises(StcastError, match="divide evenly over 3"):
        check_global_batch(32, 3)


def test_placement_settings_are_checked():
    for bad in ({"accelerator": "tpu"}, {"devices": 0}, {"devices": True}, {"strategy": "deepspeed"},
                {"precision": "64"}, {"num_nodes": 0}, {"logger": "wandb"}):
        with pytest.raises(StcastError, match=next(iter(bad))):
            TrainConfig(**bad)
    assert TrainConfig(precision=32, devices="auto").precision == 32


def _train_cli(tmp_path, tag, devices: int, batch: int = 32,
               dropout: bool = False) -> tuple[subprocess.CompletedProcess, str]:
    out = tmp_path / f"{tag}.pt"
    cmd = [sys.executable, "-m", "stcast.cli", "train", "--model", "stid", "--dataset", "los-loop",
           "--epochs", "2", "--batch-size", str(batch), "--seed", "3", "--accelerator", "cpu",
           "--devices", str(devices), "--strategy", "ddp" if devices > 1 else "auto",
           *([] if dropout else ["--set", "model_kw.dropout=0"]), "--set", "train.max_batches_per_epoch=12",
           "--out", str(out), "--log-csv", str(tmp_path / f"{tag}.csv")]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return res, str(out)


@pytest.mark.slow
def test_two_processes_train_and_score_like_one_at_the_same_global_batch(tmp_path, los):
    """The same STID training (dropout off: each rank draws its own dropout masks) with 2 gloo processes at
    16 windows each and with 1 process at 32: the same weights, the same validation curve, the same test
    metrics; only rank 0 prints and writes."""
    one, one_pt = _train_cli(tmp_path, "one", 1)
    two, two_pt = _train_cli(tmp_path, "two", 2)
    assert two.stdout.count("model written to") == 1  # rank 1 printed nothing
    assert "error" not in two.stderr  # and wrote nothing (two writers of one file would race)
    m1, _, _ = load_model(one_pt)
    m2, _, _ = load_model(two_pt)
    # Adam divides by sqrt(v): rows whose gradient is ~0 (rare calendar slots) move by float-rounding-sized
    # gradient differences, up to ~1e-4 here; everything else agrees to ~1e-5
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-3), k
    curves = [[float(r["val_mae"]) for r in csv.DictReader(open(tmp_path / f"{t}.csv"))] for t in ("one", "two")]
    # the same float rounding in another order (all-reduced halves, not one 32-window sum) moved the second
    # validation MAE by 1.2e-4 (3.3e-5 of it); a wrong global batch (one process at 16) moves it by 3.7e-2
    assert len(curves[0]) == 2 and curves[0] == pytest.approx(curves[1], rel=1e-4)
    sp = prepare_windows(los, "forecast", 12, 12)
    r1, r2 = evaluate(m1, sp.test, 64), evaluate(m2, sp.test, 64)
    for k in ("mae", "rmse", "mae@3", "mae@12"):  # test MAE: 2.0e-4 apart (4.6e-5 of it) from the same rounding
        assert r1[k] == pytest.approx(r2[k], rel=1e-4), k
    # the table rank 0 printed (sharded test windows, reduced sums) is one process's scoring of that model
    assert _printed(two.stdout, "mae") == pytest.approx(r2["mae"], abs=1e-3)
    assert _printed(one.stdout, "mae") == pytest.approx(r1["mae"], abs=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_mixed_path_trains(splits):
    torch.manual_seed(0)
    model = build_model("stid", splits.spec)
    cfg = TrainConfig(epochs=1, max_batches_per_epoch=5, progress=False, accelerator="cuda",
                      precision="bf16-mixed")
    tr = Trainer(model, cfg).fit(splits.train, splits.val)
    assert next(model.parameters()).device.type == "cuda"
    assert np.isfinite(tr.history[0]["val_mae"])
    m = evaluate(model, splits.test, 64, tr.device, fabric=tr.fabric, module=tr.module)
    assert np.isfinite(m["mae"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_evaluation_equals_the_cpu_one(splits):
    torch.manual_seed(0)
    model = build_model("stid", splits.spec)
    Trainer(model, TrainConfig(epochs=1, max_batches_per_epoch=5, progress=False)).fit(splits.train, splits.val)
    on_cpu = evaluate(model, splits.test, 64, "cpu")
    on_gpu = evaluate(model.cuda(), splits.test, 64, "cuda")
    for k in ("mae", "rmse", "mape", "mae@3", "mae@12", "count"):
        assert on_gpu[k] == pytest.approx(on_cpu[k], rel=1e-4), k


@pytest.mark.slow
def test_with_dropout_two_processes_train_a_different_sample_of_the_same_run(tmp_path):
    """What README states for STID's default dropout: each rank draws its own masks, so the weights differ from
    one process's, while the test MAE stays within 2 % of it."""
    one, one_pt = _train_cli(tmp_path, "d1", 1, dropout=True)
    two, two_pt = _train_cli(tmp_path, "d2", 2, dropout=True)
    a, b = load_model(one_pt)[0].state_dict(), load_model(two_pt)[0].state_dict()
    assert any(not torch.allclose(a[k].float(), b[k].float(), atol=1e-3) for k in a)  # not the same numbers
    m1, m2 = _printed(one.stdout, "mae"), _printed(two.stdout, "mae")
    assert abs(m2 / m1 - 1) < 0.02, (m1, m2)


def _printed(stdout: str, column: str) -> float:
    """A figure from the results table `stcast train` prints (header, rule, one row)."""
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        if column in line.split():
            return float(lines[i + 2].split()[line.split().index(column)])
    raise AssertionError(f"no {column} column in:\n{stdout}")


def test_several_nodes_without_a_launcher_is_a_clear_error_not_a_wait(splits, monkeypatch):
    for var in ("MASTER_ADDR", "NODE_RANK", "SLURM_JOB_ID", "TORCHELASTIC_RUN_ID", "LT_CLI_USED", "GROUP_RANK"):
        monkeypatch.delenv(var, raising=False)
    model = build_model("dlinear", splits.spec)
    with pytest.raises(StcastError, match=r"--num-nodes 2 runs one process group over 2 machines: .*launcher"):
        Trainer(model, TrainConfig(num_nodes=2, progress=False))
