"""The PyPOTS imputers behind stcast's adapter (issue 29): they read stcast's windows and hidden entries, train on
the library's own objective over exactly those entries, and are scored by stcast on exactly those entries."""

import dataclasses
import sys

import pytest
import torch

from stcast.config import TrainConfig
from stcast.engine.scoring import evaluate
from stcast.engine.splits import prepare_windows
from stcast.engine.tasks import task_loss
from stcast.engine.trainer import Trainer
from stcast.errors import StcastError
from stcast.models.registry import build_model

pytest.importorskip("pypots")

SMALL = {"saits": {"d_model": 32, "d_ffn": 32}, "imputeformer": {"n_layers": 1}, "pypots-brits": {"hidden": 16},
         "csdi": {"n_layers": 1, "n_channels": 16, "d_time_embedding": 16, "d_diffusion_embedding": 16,
                  "n_heads": 2, "n_diffusion_steps": 4, "n_samples": 3}}


@pytest.fixture(scope="module")
def hidden(los_small):
    return prepare_windows(los_small, "impute", 24, 0, missing_kw={"r_min": 0.3, "r_max": 0.5})


def _model(name, s, **kw):
    torch.manual_seed(0)
    m = build_model(name, s.spec, **{**SMALL[name], **kw})
    m.fit_statistics(s.train)
    return m


@pytest.mark.parametrize("name", list(SMALL))
def test_a_hidden_value_never_reaches_the_imputation_and_observed_inputs_are_kept(name, hidden):
    s = hidden
    m = _model(name, s).eval()
    b = s.test.gather(s.test.starts[:4])
    hid = b.eval_mask
    assert hid.any() and not (hid & b.x_mask).any()  # hidden entries are not shown to the model
    torch.manual_seed(1)
    before = m(b).point
    b.y[hid] = 1e4  # a planted truth in every hidden entry: the model reads x, never y, at inference
    torch.manual_seed(1)
    assert torch.equal(m(b).point, before)
    shown = b.x_mask
    assert torch.allclose(before[shown], b.x[shown], atol=1e-5)  # the library copies the observed inputs back


@pytest.mark.parametrize("name", list(SMALL))
def test_the_score_reads_exactly_the_entries_stcast_hides(name, hidden):
    """A planted value in an observed, not-hidden truth cannot change the score; one in a hidden truth does."""
    import copy

    m = _model(name, hidden)
    test = copy.copy(hidden.test)
    test.starts = hidden.test.starts[:6]
    torch.manual_seed(2)
    base = evaluate(m, test, 64, task="impute")
    scored = next(iter(test.batches(64, seed=12345)))  # evaluate()'s draw of the hidden entries
    assert base["count"] == int(scored.eval_mask.sum())  # the hidden-and-observed entries, nothing else
    gather = test.gather

    def planted(where):
        def g(starts, gen=None):
            bb = gather(starts, gen)
            bb.y[where(bb)] = 1e4
            return bb
        return g

    test.gather = planted(lambda bb: bb.x_mask & ~bb.eval_mask)  # observed, shown, not hidden
    torch.manual_seed(2)
    assert evaluate(m, test, 64, task="impute")["mae"] == pytest.approx(base["mae"], rel=1e-6)
    test.gather = planted(lambda bb: bb.eval_mask)
    torch.manual_seed(2)
    assert evaluate(m, test, 64, task="impute")["mae"] > base["mae"] + 100


def test_training_minimises_the_library_objective_on_the_hidden_entries(hidden):
    """SAITS: ORT + MIT, MIT over exactly stcast's hidden entries (indicating_mask = eval_mask), in scaled units."""
    s = hidden
    b = s.train.gather(s.train.starts[:8])
    m = _model("saits", s, dropout=0.0).train()
    flat = m._flat(b)
    B, L, N, C = b.x.shape
    assert torch.equal(flat["indicating_mask"].bool(), b.eval_mask.reshape(B, L, N * C))
    scaled = (b.y - m.x_mean) / m.x_std
    assert torch.allclose(flat["X_ori"][flat["indicating_mask"].bool()], scaled[b.eval_mask], atol=1e-5)
    pred = m(b)
    assert pred.own_loss is not None and torch.equal(task_loss(pred, b, s.scaler, "impute"), pred.own_loss)
    b2 = dataclasses.replace(b, y=b.y.clone())  # the same window and hidden entries
    b2.y[b2.eval_mask] += 50.0  # other hidden truths: the MIT term moves
    torch.manual_seed(0)
    m0 = _model("saits", s, dropout=0.0).train()
    assert not torch.isclose(m0(b2).own_loss, m0(b).own_loss)
    no_mit = _model("saits", s, dropout=0.0, mit_weight=0.0).train()
    assert torch.isclose(no_mit(b2).own_loss, no_mit(b).own_loss)  # without MIT the hidden truths are unseen


@pytest.mark.slow
def test_saits_and_imputeformer_train_to_beat_the_mean(hidden):
    s = hidden
    mean = build_model("mean-impute", s.spec)
    mean.fit_statistics(s.train)
    m_mean = evaluate(mean, s.test, 64, task="impute")["mae"]
    for name in ("saits", "imputeformer"):
        m = _model(name, s)
        Trainer(m, TrainConfig(epochs=3, lr=3e-3, progress=False), task="impute").fit(s.train, s.val)
        assert evaluate(m, s.test, 64, task="impute")["mae"] < m_mean, name


def test_our_vectorised_delta_is_pypots_delta(hidden):
    from pypots.data.utils import _parse_delta_torch

    from stcast.models.baselines.brits import _deltas

    b = hidden.test.gather(hidden.test.starts[:3])
    m = b.x_mask.reshape(3, 24, -1).float()
    assert (m == 0).any() and torch.equal(_deltas(m), _parse_delta_torch(m))


def test_csdi_point_is_the_median_of_its_samples_and_its_quantiles_are_ordered(hidden):
    s = hidden
    m = _model("csdi", s).eval()
    b = s.test.gather(s.test.starts[:2])
    pred = m(b)
    q = pred.quantiles
    assert q.shape[-1] == len(pred.levels) and (q.diff(dim=-1) >= -1e-6).all()
    hid = b.eval_mask
    assert (q[..., 0][hid] < q[..., -1][hid]).any()  # the samples differ: a real interval on hidden entries
    m.train()
    assert m(b).own_loss is not None  # trained on the denoising loss, not on a sampled point


def test_without_pypots_the_error_names_the_extra(hidden, monkeypatch):
    monkeypatch.setitem(sys.modules, "pypots", None)
    with pytest.raises(StcastError, match=r"stcast\[peers\]"):
        build_model("saits", hidden.spec)


def test_saits_refuses_a_window_its_diagonal_mask_leaves_empty(los_small):
    one = prepare_windows(los_small, "impute", 1, 0)
    with pytest.raises(StcastError, match=r"saits masks each step from its own attention .* use input_len >= 2"):
        build_model("saits", one.spec, **SMALL["saits"])
    two = prepare_windows(los_small, "impute", 2, 0)
    assert build_model("saits", two.spec, **SMALL["saits"]) is not None
