"""Calendar rows never seen in training are never used blindly at inference (nn/calendar.py)."""

from __future__ import annotations

import warnings

import pytest
import torch

from stcast.config import TrainConfig
from stcast.engine.splits import prepare_windows
from stcast.engine.trainer import Trainer
from stcast.models.registry import build_model
from stcast.nn.calendar import CalendarEmbedding, day_of_week


def test_unseen_rows_become_the_mean_of_the_seen_rows_with_a_warning():
    emb = day_of_week(4)
    emb.train()
    emb(torch.tensor([[0, 1], [1, 2]]))  # Mon, Tue, Wed seen
    assert emb.seen.tolist() == [True, True, True, False, False, False, False]
    emb.eval()
    with pytest.warns(UserWarning, match="day of week Sat, Sun never occurred"):
        out = emb(torch.tensor([[1, 5, 6]]))
    mean = emb.weight[:3].mean(0)
    assert torch.equal(out[0, 0], emb.weight[1]) and torch.allclose(out[0, 1], mean) and torch.allclose(out[0, 2], mean)
    with pytest.warns(UserWarning, match=r"day of week Thu never occurred") as caught:  # only the row not yet named
        emb(torch.tensor([[3, 5, 6]]))
    assert len(caught) == 1 and "Sat" not in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        emb(torch.tensor([[5, 6, 3]]))  # every unseen row already named: silent, still the mean row


def test_an_untrained_table_is_used_as_it_is():
    emb = CalendarEmbedding(5, 3, "slot")
    emb.eval()
    assert torch.equal(emb(torch.arange(5)), emb.weight)


def test_old_state_dicts_without_seen_load_as_all_trained():
    emb = day_of_week(2)
    sd = {"weight": torch.randn(7, 2)}
    emb.load_state_dict(sd)
    assert emb.seen.all()


SMALL_LM = {"pretrained": False, "num_layers": 1, "trainable_top": 1}


@pytest.mark.parametrize("name,kw", [("stid", {}), ("lstm", {}), ("st-link", SMALL_LM),
                                     ("ust-sllm", {**SMALL_LM, "groups": 8})])
def test_models_with_calendar_embeddings_fall_back_on_days_they_never_saw(los_small, name, kw):
    # los_small covers Thu 1 and Fri 2 March 2012: its 7:1:2 training windows are Thursday to Friday morning
    splits = prepare_windows(los_small, "forecast", 12, 12)
    torch.manual_seed(0)
    model = build_model(name, splits.spec, **kw)
    Trainer(model, TrainConfig(epochs=1, max_batches_per_epoch=2, progress=False)).fit(splits.train)
    tables = [m for m in model.modules() if isinstance(m, CalendarEmbedding)]
    assert tables and all(isinstance(m, CalendarEmbedding) for m in model.modules()
                          if isinstance(m, torch.nn.Embedding) and m.num_embeddings in (7, 288))
    dow = next(m for m in tables if m.num_embeddings == 7)
    assert dow.seen.tolist() == [False, False, False, True, True, False, False]
    batch = splits.test.gather(splits.test.starts[:4])
    model.eval()
    with torch.no_grad():
        same = model(batch).point
        batch.dow_x, batch.dow_y = torch.full_like(batch.dow_x, 5), torch.full_like(batch.dow_y, 5)  # Saturday
        with pytest.warns(UserWarning, match="day of week Sat never occurred"):
            sat = model(batch).point
        batch.dow_x, batch.dow_y = torch.full_like(batch.dow_x, 6), torch.full_like(batch.dow_y, 6)  # Sunday
        sun = model(batch).point
    assert not torch.equal(same, sat)  # the day matters ...
    assert torch.equal(sat, sun)  # ... but two unseen days are the same mean row, not two random rows


def test_factost_calendar_banks_are_calendar_embeddings():
    from stcast.models.factost import STMF

    stmf = STMF(num_nodes=4, steps_per_day=288, d=8)
    assert all(isinstance(b, CalendarEmbedding) for b in stmf.banks)
    assert [b.num_embeddings for b in stmf.banks] == [60, 24, 7]  # minute, hour, weekday (the paper's)
    steps = STMF(num_nodes=4, steps_per_day=288, d=8, calendar="steps")
    assert all(isinstance(b, CalendarEmbedding) for b in steps.banks)
    assert [b.num_embeddings for b in steps.banks] == [60, 288, 7]
