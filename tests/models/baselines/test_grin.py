"""GRIN (ICLR 2022): each mechanism does what the paper says and a test fails when it is switched off."""

import dataclasses

import pytest
import torch

from stcast.config import TrainConfig
from stcast.engine.scoring import evaluate
from stcast.engine.splits import prepare_windows
from stcast.engine.trainer import Trainer
from stcast.errors import StcastError
from stcast.models.registry import build_model


@pytest.fixture(scope="module")
def hidden(los_small):
    return prepare_windows(los_small, "impute", 24, 0, missing_kw={"r_min": 0.3, "r_max": 0.5})


def _grin(s, **kw):
    torch.manual_seed(0)
    m = build_model("grin", s.spec, hidden=16, ff=16, **kw)
    m.fit_statistics(s.train)
    return m


def _recv(m):
    from stcast.models.baselines.grin import _receivers

    return _receivers(m.supports), _receivers(m.neighbours)


def _neighbour(s):
    a = torch.as_tensor(s.spec.adjacency)
    a = a * (1 - torch.eye(len(a)))
    node = int((a > 0).sum(0).argmax())  # a node that receives messages
    return node, int(a[:, node].argmax())


@pytest.mark.parametrize("spatial", [True, False])
def test_the_second_stage_of_a_node_reads_its_neighbours_not_itself(hidden, spatial):
    """The spatial decoder passes messages without self-loops (section 4): a node's own value at step t cannot
    reach its second-stage estimate at t; its neighbour's value does. Without the decoder, its own value does."""
    s = hidden
    m = _grin(s, use_spatial_decoder=spatial).eval()
    b = s.test.gather(s.test.starts[:2])
    x, mask = b.x.clone(), torch.ones_like(b.x)
    node, nb = _neighbour(s)
    t = 5
    _, y2, _ = m.fwd(x, mask, *_recv(m), spatial)
    x2 = x.clone()
    x2[:, t, node] += 3.0
    _, y2b, _ = m.fwd(x2, mask, *_recv(m), spatial)
    own_moves = not torch.allclose(y2b[:, t, node], y2[:, t, node])
    assert own_moves is not spatial
    x3 = x.clone()
    x3[:, t, nb] += 3.0
    _, y2c, _ = m.fwd(x3, mask, *_recv(m), spatial)
    assert (not torch.allclose(y2c[:, t, node], y2[:, t, node])) is spatial  # the graph carries the neighbour


def test_the_graph_enters_the_recurrence(hidden):
    m = _grin(hidden).eval()
    b = hidden.test.gather(hidden.test.starts[:2])
    before = m(b).point
    m.supports.zero_()
    m.neighbours.zero_()
    assert not torch.allclose(m(b).point, before)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_the_backward_direction_reads_the_future(hidden, bidirectional):
    m = _grin(hidden, bidirectional=bidirectional).eval()
    b = hidden.test.gather(hidden.test.starts[:2])
    b.x_mask[:, 0] = False  # step 0 is imputed everywhere
    b.x[:, 0] = 0
    before = m(b).point[:, 0]
    b2 = dataclasses.replace(b, x=b.x.clone())
    b2.x[:, -1] += 2.0
    # exact comparison: an untrained GRU forgets geometrically, so the future's trace at step 0 is small but real
    assert (not torch.equal(m(b2).point[:, 0], before)) is bidirectional


def test_the_loss_sees_the_hidden_entries_only_and_every_stage(hidden):
    s = hidden
    m = _grin(s).train()
    b = s.train.gather(s.train.starts[:4])
    base = m(b).own_loss
    shown = dataclasses.replace(b, y=b.y.clone())
    shown.y[b.x_mask] += 100.0  # observed, shown entries: not targets
    assert torch.equal(m(shown).own_loss, base)
    hid = dataclasses.replace(b, y=b.y.clone())
    hid.y[b.eval_mask] += 1.0
    assert m(hid).own_loss > base
    base.backward()
    assert m.fwd.first.weight.grad.abs().sum() > 0 and m.bwd.second.weight.grad.abs().sum() > 0  # stage losses


def test_grin_refuses_bad_settings_and_needs_a_graph(hidden):
    with pytest.raises(StcastError, match="grin"):
        build_model("grin", hidden.spec, hidden=0)
    with pytest.raises(StcastError, match="adjacency"):
        build_model("grin", dataclasses.replace(hidden.spec, adjacency=None))


@pytest.mark.slow
def test_grin_trains_to_beat_the_mean(hidden):
    s = hidden
    mean = build_model("mean-impute", s.spec)
    mean.fit_statistics(s.train)
    m = _grin(s)
    Trainer(m, TrainConfig(epochs=3, lr=3e-3, progress=False), task="impute").fit(s.train, s.val)
    assert evaluate(m, s.test, 64, task="impute")["mae"] < evaluate(mean, s.test, 64, task="impute")["mae"]


def test_the_sparse_graph_product_equals_the_dense_one(hidden):
    """The sparse path (road graphs under 20 % dense) computes the same imputation as the dense product."""
    import stcast.models.baselines.grin as grin

    m = _grin(hidden).eval()
    b = hidden.test.gather(hidden.test.starts[:2])
    recv = grin._receivers(m.supports)
    assert recv[0].layout == torch.sparse_csr  # Los-loop's graph is sparse
    sparse = m(b).point
    dense = grin._receivers
    try:
        grin._receivers = lambda sup: [a.T.contiguous() for a in sup]
        assert torch.allclose(m(b).point, sparse, atol=1e-5)
    finally:
        grin._receivers = dense
