"""UTP pretraining: the corpus excludes the evaluation datasets, KernelSynth draws what it says, the loop
runs, resumes and writes a loadable checkpoint with its recipe."""

import json

import numpy as np
import pytest
import torch

from stcast.errors import StcastError
from stcast.models.factost import UTPBackbone
from stcast.pretrain.corpus import (
    EVALUATION_DATASETS,
    PRETRAINING_DATASETS,
    Corpus,
    augment,
    cached_kernelsynth,
    real_series,
)
from stcast.pretrain.kernelsynth import kernelsynth
from stcast.pretrain.utp import UTPRun, portable_command, pretrain, wsd_lr


def test_corpus_never_contains_an_evaluation_dataset():
    assert not set(PRETRAINING_DATASETS) & set(EVALUATION_DATASETS)
    # every dataset a zero-shot figure is reported on (issue 31)
    assert {"los-loop", "metr-la", "etth2", "hangzhou-metro", "aqi36"} <= set(EVALUATION_DATASETS)
    with pytest.raises(StcastError, match="evaluation datasets"):
        real_series(("chickenpox", "los-loop"), log=lambda *a: None)


def test_kernelsynth_series_are_standardised_and_periodic_kernels_show_their_period():
    x, names = kernelsynth(40, 400, seed=1)
    assert x.shape == (40, 400) and np.isfinite(x).all()
    assert np.allclose(x.mean(1), 0, atol=1e-4) and np.allclose(x.std(1), 1, atol=1e-3)
    assert len(set(names)) > 10 and any("periodic" in n for n in names)
    again, _ = kernelsynth(40, 400, seed=1)
    assert np.array_equal(x, again)
    pure = [i for i, n in enumerate(names) if n == "periodic24"]
    for i in pure:  # a pure daily kernel at hourly steps: the series repeats every 24 steps
        assert np.corrcoef(x[i, :-24], x[i, 24:])[0, 1] > 0.9


def test_corpus_windows_end_inside_a_series():
    real = [np.arange(300, dtype=np.float32), np.arange(50, dtype=np.float32) + 1000]
    c = Corpus.build(64, 32, num_synthetic=0, real=real)
    w = c.sample(500, 16, 32, np.random.default_rng(0))
    assert w.shape == (500, 96)
    assert np.isfinite(w[:, -32:]).all()  # the target horizon is always real data
    assert np.isnan(w[:, :64]).any()  # windows on the short series start before it: masked context
    assert len(real_series(("chickenpox",), log=lambda *a: None)) == 20


def test_short_series_give_shorter_contexts_and_futures_and_the_corpus_records_what_it_used():
    """A series shorter than context + horizon is used with a shorter (unscored NaN-tailed) future; one under
    min_len is left out with a word and counted."""
    real = [np.arange(300, dtype=np.float32), np.arange(30, dtype=np.float32) + 1000, np.arange(10, dtype=np.float32)]
    said = []
    c = Corpus.build(64, 32, num_synthetic=0, real=real, sources=["a", "b", "b"], min_len=20, log=said.append)
    assert c.used == {"a": {"series": 1, "points": 300, "too_short": 0},
                      "b": {"series": 1, "points": 30, "too_short": 1}}
    assert any("b: 1 series shorter than 20" in s for s in said)
    w = c.sample(400, 16, 32, np.random.default_rng(0))
    short = w[np.nanmin(w, 1) >= 1000]  # windows on the 30-step series
    assert len(short)
    assert np.isfinite(short[:, 48:64]).all() and np.isnan(short[:, :48]).all()  # 16 steps of context
    assert np.isfinite(short[:, 64:78]).all() and np.isnan(short[:, 78:]).all()  # 14 real future steps, then NaN
    long = w[np.nanmax(w, 1) < 1000]
    assert np.isfinite(long[:, -32:]).all()  # a long series always fills the horizon


def test_wsd_schedule():
    lrs = [wsd_lr(s, 100, 1.0) for s in range(100)]
    assert lrs[0] < lrs[4] == 1.0 == lrs[50] and lrs[99] < 0.2


def test_pretrain_runs_resumes_and_writes_a_checkpoint_with_its_recipe(tmp_path):
    out = tmp_path / "utp.pt"
    small = {"variant": "minuscule", "max_context": 64, "min_context": 16, "max_horizon": 32}
    run = UTPRun(out=str(out), steps=6, batch_size=8, num_synthetic=20, datasets=("chickenpox",), save_every=3,
                 model=small)
    pretrain(run, log=lambda *a: None)
    model = UTPBackbone.load(out)
    recipe = json.loads(out.with_suffix(".json").read_text())
    assert model.extra["steps_done"] == 6 == recipe["steps_done"]
    assert recipe["corpus"]["real_datasets"] == ["chickenpox"]
    assert recipe["corpus"]["used"]["chickenpox"]["series"] == 20  # computed from the data actually sampled
    # the command is whatever ran this process (pytest here, with or without arguments), named `stcast`
    words = recipe["command"].split(" ")
    assert words[0] == "stcast" and not any(w.startswith("/") for w in words)
    assert not recipe["run"]["out"].startswith("/")
    assert recipe["hours"] >= 0 and recipe["run"]["augment"] is True
    first = {k: v.clone() for k, v in model.state_dict().items()}
    run.steps, run.resume = 9, True
    pretrain(run, log=lambda *a: None)
    resumed = UTPBackbone.load(out)
    assert resumed.extra["steps_done"] == 9
    assert any(not torch.equal(first[k], v) for k, v in resumed.state_dict().items())
    with pytest.raises(StcastError, match="different recipe"):
        pretrain(UTPRun(out=str(out), steps=9, batch_size=16, num_synthetic=20, datasets=("chickenpox",),
                        resume=True, model=small), log=lambda *a: None)


def test_tsmixup_mixes_level_normalised_windows_convexly_and_keeps_missing_steps_missing():
    rng = np.random.default_rng(0)
    w = np.stack([np.full(40, 10.0), np.full(40, 1000.0), np.linspace(1, 2, 40)]).astype(np.float32)
    w[2, :5] = np.nan  # a shorter context
    out = augment(np.repeat(w, 50, 0), 30, rng, p_mix=1.0, scale=1.0)
    # every mixed window is a convex mix of windows of mean |context| 1: constants stay in [min, max] of the parts
    finite = out[np.isfinite(out).all(1)]
    assert len(finite) and np.all(finite > 0.4) and np.all(finite < 1.6)
    unit_consts = out[:50]  # window 0 (constant 10) mixed with others: its own part is 1 in unit scale
    assert not np.allclose(unit_consts, 10.0)  # mixed, and no longer in its own units
    with_short = np.isnan(out[:, :5]).any(1)
    assert with_short[100:].all()  # a mix containing the short window keeps its missing prefix
    same = augment(w, 30, np.random.default_rng(1), p_mix=0.0, scale=1.0)
    np.testing.assert_array_equal(same, w)  # off: untouched
    scaled = augment(w[:2], 30, np.random.default_rng(2), p_mix=0.0, scale=10.0)
    ratio = scaled / w[:2]
    assert np.allclose(ratio, ratio[:, :1]) and np.all((ratio > 0.1 - 1e-6) & (ratio < 10 + 1e-6))
    assert not np.allclose(ratio[:, 0], 1.0)


def test_kernelsynth_chunks_are_cached_as_drawn_and_reused(tmp_path):
    said = []
    a = cached_kernelsynth(700, 64, 3, tmp_path, log=said.append)
    assert a.shape == (700, 64) and len(said) == 2  # two chunks drawn, each reported
    np.testing.assert_array_equal(a[:500], kernelsynth(500, 64, seed=3)[0])
    (tmp_path / "kernelsynth-L64-seed3-chunk1.npy").write_bytes(b"cut short")  # a chunk killed midway
    said.clear()
    b = cached_kernelsynth(700, 64, 3, tmp_path, log=said.append)
    np.testing.assert_array_equal(a, b)
    assert len(said) == 1  # only the broken chunk drawn again


def test_the_recorded_command_holds_no_machine_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cmd = portable_command(["/opt/venv/bin/stcast", "pretrain", "factost", "--out", str(tmp_path / "r" / "u.pt"),
                            "--data-dir", "/srv/data/shared"])
    assert cmd == "stcast pretrain factost --out r/u.pt --data-dir <...>/shared"
