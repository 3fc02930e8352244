"""stcast's BRITS against the paper's mechanisms and against PyPOTS's BRITS with the same weights (issue 29: keep
our BRITS only if it matches the library's)."""

import pytest
import torch

from stcast.engine.splits import prepare_windows
from stcast.engine.tasks import task_loss
from stcast.errors import StcastError
from stcast.models.registry import build_model


@pytest.fixture(scope="module")
def hidden(los_small):
    return prepare_windows(los_small, "impute", 12, 0, missing_kw={"r_min": 0.3, "r_max": 0.5})


def _brits(s, **kw):
    torch.manual_seed(0)
    return build_model("brits", s.spec, hidden=16, **kw)


def test_the_input_decay_reads_only_its_own_feature(hidden):
    """Eq. 3 with a diagonal W for gamma_x: feature d's decay moves only with feature d's time since observed."""
    d = hidden.spec.num_nodes * hidden.spec.num_channels
    delta = torch.rand(2, 12, d) * 5
    bumped = delta.clone()
    bumped[..., 3] += 4.0
    for diag, mixes in ((True, False), (False, True)):
        decay = _brits(hidden, diag_decay=diag).fwd.decay_x
        with torch.no_grad():
            changed = (decay(bumped) - decay(delta)).abs().amax((0, 1)) > 0
        assert changed[3]
        assert bool(changed[torch.arange(d) != 3].any()) is mixes


def test_the_paper_objective_reads_the_observed_inputs_only(hidden):
    """The paper trains on the reconstruction of what it observes: a planted truth in a hidden entry cannot move
    the loss, a changed observed input does. stcast's imputation objective ('hidden') does read the hidden truth."""
    s = hidden
    b = s.train.gather(s.train.starts[:4])
    hid = b.eval_mask
    assert hid.any() and not (hid & b.x_mask).any()
    m = _brits(s).train()
    before = m(b).own_loss
    assert before is not None and torch.isfinite(before)
    b.y[hid] += 50.0
    assert torch.equal(m(b).own_loss, before)
    b.x[b.x_mask] += 0.5
    assert not torch.isclose(m(b).own_loss, before)

    b2 = s.train.gather(s.train.starts[:4])
    old = _brits(s, objective="hidden").train()
    pred = old(b2)
    assert pred.own_loss is None and set(pred.aux_losses) == {"reconstruction", "consistency"}
    loss = task_loss(pred, b2, s.train.scaler, "impute")
    b2.y[b2.eval_mask] += 50.0
    assert not torch.isclose(task_loss(old(b2), b2, s.train.scaler, "impute"), loss)


def test_an_unknown_objective_or_a_bad_setting_is_named(hidden):
    with pytest.raises(StcastError, match="objective 'mit'"):
        _brits(hidden, objective="mit")
    for bad in ({"consistency": -0.1}, {"consistency": float("nan")}):
        with pytest.raises(StcastError, match="consistency"):
            _brits(hidden, **bad)
    with pytest.raises(StcastError, match="hidden=0"):
        build_model("brits", hidden.spec, hidden=0)


def test_same_weights_same_imputation_and_loss_as_pypots_brits(hidden):
    """Copied into PyPOTS 1.3's BRITS core, our weights give the same imputation; the losses differ only by the
    reference code's scale (PyPOTS divides the reconstruction loss by 3 more)."""
    pytest.importorskip("pypots")
    from pypots.imputation.brits.core import _BRITS
    from pypots.nn.modules.loss import MAE

    from stcast.models.baselines.brits import _deltas

    s = hidden
    ours = _brits(s).train()
    d = s.spec.num_nodes * s.spec.num_channels
    lib = _BRITS(s.spec.input_len, d, 16, MAE(), MAE()).train()
    for mine, theirs in ((ours.fwd, lib.model.rits_f), (ours.bwd, lib.model.rits_b)):
        with torch.no_grad():
            theirs.rnn_cell.load_state_dict(mine.cell.state_dict())
            theirs.temp_decay_h.W.copy_(mine.decay_h.weight)
            theirs.temp_decay_h.b.copy_(mine.decay_h.bias)
            theirs.temp_decay_x.W.copy_(torch.diag(mine.decay_x.weight))
            theirs.temp_decay_x.b.copy_(mine.decay_x.bias)
            theirs.hist_reg.load_state_dict(mine.hist.state_dict())
            theirs.feat_reg.W.copy_(mine.feat.linear.weight)
            theirs.feat_reg.b.copy_(mine.feat.linear.bias)
            theirs.combining_weight.load_state_dict(mine.combine.state_dict())
    b = s.train.gather(s.train.starts[:4])
    B, L, N, C = b.x.shape
    m = b.x_mask.reshape(B, L, N * C).float()
    x = b.x.reshape(B, L, N * C) * m
    inputs = {"forward": {"X": x, "missing_mask": m, "deltas": _deltas(m)},
              "backward": {"X": x.flip(1), "missing_mask": m.flip(1), "deltas": _deltas(m.flip(1))}}
    res = lib(inputs, calc_criterion=True)
    pred = ours(b)
    assert torch.allclose(pred.point.reshape(B, L, N * C), res["imputation"], atol=1e-5)
    assert torch.isclose(pred.own_loss, 3 * res["reconstruction_loss"] + res["consistency_loss"], rtol=1e-4)
