import csv

import pytest
import torch

from stcast.config import TrainConfig
from stcast.engine.checkpoint import load_model, save_model
from stcast.engine.experiment import Experiment
from stcast.engine.scoring import evaluate
from stcast.engine.trainer import Trainer
from stcast.errors import StcastError
from stcast.models.registry import build_model


def test_early_stopping_restores_the_best_epoch(splits, tmp_path):
    torch.manual_seed(0)
    model = build_model("stid", splits.spec)
    # a learning rate so high that validation gets worse after the first epochs
    cfg = TrainConfig(epochs=12, patience=1, lr=0.3, progress=False, log_csv=str(tmp_path / "log.csv"))
    tr = Trainer(model, cfg).fit(splits.train, splits.val)
    vals = [r["val_mae"] for r in tr.history]
    assert len(vals) < 12  # stopped early
    assert evaluate(model, splits.val, 64)["mae"] == pytest.approx(min(vals), rel=1e-5)
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert len(rows) == len(vals) and float(rows[0]["val_mae"]) == pytest.approx(vals[0])
    # the reported best epoch is the one whose weights were restored (a converged table reports it per row)
    assert tr.best_epoch == vals.index(min(vals)) + 1 and tr.best_epoch < len(vals)


def test_resume_continues_where_it_stopped(splits, tmp_path):
    ck = str(tmp_path / "ck.pt")
    torch.manual_seed(0)
    full = build_model("dlinear", splits.spec)
    Trainer(full, TrainConfig(epochs=4, patience=99, progress=False)).fit(splits.train, splits.val)
    torch.manual_seed(0)
    part = build_model("dlinear", splits.spec)
    Trainer(part, TrainConfig(epochs=2, patience=99, progress=False, checkpoint=ck)).fit(splits.train, splits.val)
    before = torch.load(ck, weights_only=True)["train_seconds"]
    torch.manual_seed(0)
    resumed = build_model("dlinear", splits.spec)
    tr = Trainer(resumed, TrainConfig(epochs=4, patience=99, progress=False, checkpoint=ck, resume=True))
    tr.fit(splits.train, splits.val)
    assert [r["epoch"] for r in tr.history] == [1, 2, 3, 4]
    assert before > 0 and tr.resumed_seconds == before  # a resumed row's train_s counts the time before the stop
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5)
    state = torch.load(ck, weights_only=True)  # the checkpoint loads without unpickling objects
    assert state["epoch"] == 3


def test_a_wall_clock_budget_cuts_an_epoch_only_when_asked(splits):
    steps = []

    def run(**kw):
        torch.manual_seed(0)
        model = build_model("dlinear", splits.spec)
        model.register_forward_hook(lambda m, a, out: steps.append(m.training))
        steps.clear()
        tr = Trainer(model, TrainConfig(epochs=3, batch_size=4, max_minutes=1e-6, progress=False, **kw))
        tr.fit(splits.train, splits.val)
        return sum(steps), len(tr.history)

    per_epoch = -(-len(splits.train) // 4)
    assert per_epoch > 5
    assert run() == (per_epoch, 1)  # checked at the epoch's end: one whole epoch, then the budget stops it
    assert run(cut_epoch=True) == (5, 1)  # checked every 5 steps: the epoch ends part-way, is validated, stops


def test_non_finite_loss_is_reported(splits):
    model = build_model("dlinear", splits.spec)
    with torch.no_grad():
        model.seasonal.weight.fill_(float("nan"))
    with pytest.raises(StcastError, match="loss became nan"):
        Trainer(model, TrainConfig(epochs=1, progress=False)).fit(splits.train, splits.val)


def test_cuda_request_without_gpu_is_named(splits):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the error path cannot be exercised")
    with pytest.raises(StcastError, match="no CUDA GPU"):
        Trainer(build_model("dlinear", splits.spec), TrainConfig(accelerator="cuda"))


def test_model_file_round_trip_and_bad_files(splits, tmp_path):
    model = build_model("stid", splits.spec, embed_dim=16)
    Trainer(model, TrainConfig(epochs=1, progress=False)).fit(splits.train, splits.val)
    path = save_model(tmp_path / "m.pt", model, {"embed_dim": 16}, splits.scaler, "los-loop", "forecast")
    loaded, scaler, info = load_model(path)
    b = splits.test.gather(splits.test.starts[:3])
    model.eval()
    assert torch.allclose(loaded(b).point, model(b).point)
    assert info["model"] == "stid" and scaler.mean == pytest.approx(splits.scaler.mean)
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(StcastError, match="not a readable stcast model file"):
        load_model(tmp_path / "junk.pt")
    torch.save({"a": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(StcastError, match="not an stcast model file"):
        load_model(tmp_path / "other.pt")
    with pytest.raises(StcastError, match="does not exist"):
        load_model(tmp_path / "missing.pt")


def test_experiment_reports_timings_and_params(los_small):
    res = Experiment("stid", los_small, train=TrainConfig(epochs=1, progress=False)).run(collect=True)
    row = res.row()
    assert row["trainable_params"] > 0 and row["s_per_epoch"] >= 0 and "mae@12" in row
    assert res.predictions["pred"].shape == res.predictions["truth"].shape
    assert row["passes"] == pytest.approx(1.0, abs=1e-3)  # one epoch = one pass over the training windows
    cut = Experiment("stid", los_small, train=TrainConfig(epochs=2, batch_size=8, max_batches_per_epoch=3,
                                                          progress=False)).run().row()
    assert cut["passes"] == pytest.approx(round(2 * 3 * 8 / len(exp_train(los_small)), 3))  # what a budget bought


def test_tensorboard_logger_writes_event_files_beside_the_csv_log(splits, tmp_path):
    pytest.importorskip("tensorboardX", reason="TensorBoard logging needs tensorboard or tensorboardX")
    model = build_model("dlinear", splits.spec)
    cfg = TrainConfig(epochs=2, progress=False, logger="tensorboard", tb_dir=str(tmp_path / "runs"),
                      log_csv=str(tmp_path / "log.csv"))
    Trainer(model, cfg).fit(splits.train, splits.val)
    events = list((tmp_path / "runs").rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    assert len(list(csv.DictReader(open(tmp_path / "log.csv")))) == 2


def exp_train(data):
    from stcast.engine.splits import prepare_windows

    return prepare_windows(data, "forecast", 12, 12).train


def test_plateau_schedule_matches_torch_reduce_lr_on_plateau():
    """lr_schedule 'plateau' (ST-VLM's recipe) cuts the rate exactly where torch's ReduceLROnPlateau does, from
    the validation history alone (so a resumed run needs no scheduler state)."""
    import numpy as np

    from stcast.engine.trainer import lr_factor

    rng = np.random.default_rng(0)
    vals = list(np.r_[np.linspace(5, 3, 8), 3 + 0.05 * rng.random(30), np.linspace(2.9, 2.5, 5), np.full(20, 2.6)])
    cfg = TrainConfig(epochs=len(vals) + 1, lr=1.0, lr_schedule="plateau", plateau_patience=4, lr_gamma=0.5)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=4)
    for epoch, v in enumerate(vals):
        sched.step(v)
        assert lr_factor(cfg, epoch + 1, vals[:epoch + 1]) == pytest.approx(opt.param_groups[0]["lr"]), epoch
    assert opt.param_groups[0]["lr"] < 0.2  # the sequence does plateau several times
    assert lr_factor(TrainConfig(lr_schedule="constant"), 40, vals) == 1.0
