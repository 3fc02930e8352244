"""Each learned baseline trains through the engine on real data and learns something."""

import numpy as np
import pytest
import torch

from stcast.config import TrainConfig
from stcast.engine.scoring import evaluate
from stcast.engine.splits import prepare_windows
from stcast.engine.trainer import Trainer
from stcast.models.registry import build_model


@pytest.mark.parametrize("name,kw", [("dlinear", {}), ("lstm", {"hidden": 16}), ("stid", {}),
                                     ("gwnet", {"skip": 32, "end": 64})])
def test_forecaster_trains_and_beats_its_untrained_self(los_small, name, kw):
    s = prepare_windows(los_small, "forecast", 12, 12)
    torch.manual_seed(0)
    model = build_model(name, s.spec, **kw)
    before = evaluate(model, s.val, 64)["mae"]
    Trainer(model, TrainConfig(epochs=3, lr=3e-3, progress=False)).fit(s.train, s.val)
    after = evaluate(model, s.val, 64)["mae"]
    assert after < 0.8 * before, f"{name}: val MAE {before:.3f} -> {after:.3f}"
    out = model(s.test.gather(s.test.starts[:2])).point
    assert out.shape == (2, 12, 20, 1) and torch.isfinite(out).all()


def test_stid_switches_remove_their_embeddings(los_small):
    s = prepare_windows(los_small, "forecast", 12, 12)
    full = build_model("stid", s.spec)
    bare = build_model("stid", s.spec, use_node=False, use_tod=False, use_dow=False)
    assert full.node_emb is not None and bare.node_emb is None and bare.tod_emb is None
    assert sum(p.numel() for p in bare.parameters()) < sum(p.numel() for p in full.parameters())


def test_gwnet_uses_graph_and_adaptive_adjacency(los_small):
    s = prepare_windows(los_small, "forecast", 12, 12)
    g = build_model("gwnet", s.spec)
    assert g.supports.shape == (2, 20, 20) and g.adaptive
    assert torch.allclose(g.supports[0].sum(1), torch.ones(20))  # row-normalised transitions
    no_graph = build_model("gwnet", s.spec, use_graph=False, adaptive=False)
    assert no_graph.supports.shape[0] == 0
    b = s.test.gather(s.test.starts[:2])
    g.eval()
    x0 = g(b).point
    g.supports.zero_()
    assert not torch.allclose(g(b).point, x0)  # the graph really enters the computation


def test_brits_imputes_better_than_mean(los_small):
    s = prepare_windows(los_small, "impute", 24, 0, missing_kw={"r_min": 0.3, "r_max": 0.5})
    torch.manual_seed(0)
    brits = build_model("brits", s.spec, hidden=32)
    Trainer(brits, TrainConfig(epochs=4, lr=3e-3, progress=False), task="impute").fit(s.train, s.val)
    mean = build_model("mean-impute", s.spec)
    mean.fit_statistics(s.train)
    m_brits = evaluate(brits, s.test, 64, task="impute")["mae"]
    m_mean = evaluate(mean, s.test, 64, task="impute")["mae"]
    assert m_brits < m_mean
    b = s.test.gather(s.test.starts[:2])
    pred = brits.train()(b)  # the paper's objective: reconstruction of the observed inputs + consistency
    assert not pred.aux_losses and np.isfinite(float(pred.own_loss.detach()))


def test_gwnet_crops_long_inputs_to_its_receptive_field_without_changing_the_output(los_small):
    s = prepare_windows(los_small, "forecast", 40, 12)
    torch.manual_seed(0)
    g = build_model("gwnet", s.spec, skip=32, end=64).eval()
    b = s.test.gather(s.test.starts[:2])
    cropped = g(b).point
    rf = g.receptive_field
    g.receptive_field = 40  # neither pad nor crop: the reference computation over all 40 steps
    full = g(b).point
    assert rf == 13 and torch.allclose(cropped, full, atol=1e-5)
    b.x[:, :40 - rf] += 5.0  # steps before the receptive field cannot reach the output
    assert torch.allclose(g(b).point, full, atol=1e-5)
