"""The shared spatio-temporal identity (nn/identity.py): matched scale, concat fusion, per-node and per-time."""

from __future__ import annotations

import pytest
import torch

from stcast.errors import StcastError
from stcast.nn.identity import STIdentity


def _inputs(B=2, N=5, P=3, d=16, scale=1.0):
    torch.manual_seed(0)
    tokens = torch.randn(B, N, P, d) * scale
    tod = torch.randint(0, 288, (B, P))
    dow = torch.randint(0, 7, (B, P))
    return tokens, tod, dow


@pytest.mark.parametrize("scale", [0.01, 1.0, 100.0])
def test_add_enters_at_the_data_tokens_scale(scale):
    ident = STIdentity(16, 5, 288, fusion="add")
    tokens, tod, dow = _inputs(scale=scale)
    added = ident(tokens, tod, dow) - tokens
    rms = lambda t: t.pow(2).mean(-1).sqrt()  # noqa: E731
    assert torch.allclose(rms(added), rms(tokens), rtol=1e-4)  # gain 1: the identity has the token's RMS


def test_identity_differs_per_node_and_per_time_and_learns():
    ident = STIdentity(16, 5, 288, fusion="add")
    tokens, tod, dow = _inputs()
    zero = torch.zeros_like(tokens) + 1.0  # equal tokens everywhere: only the identity tells them apart
    out = ident(zero, tod, dow)
    assert not torch.allclose(out[:, 0], out[:, 1])  # node 0 vs node 1
    tod2 = (tod + 1) % 288
    assert not torch.allclose(out, ident(zero, tod2, dow))
    out.sum().backward()
    assert ident.node.grad is not None and ident.tod.weight.grad is not None and ident.gain.grad is not None


def test_concat_fusion_and_switches():
    tokens, tod, dow = _inputs()
    cat = STIdentity(16, 5, 288, fusion="concat", use_dow=False)
    assert cat(tokens, tod, dow).shape == tokens.shape and cat.fuse.in_features == 16 + 64 and cat.dow is None
    with pytest.raises(StcastError, match="identity fusion 'sum'"):
        STIdentity(16, 5, 288, fusion="sum")
    with pytest.raises(StcastError, match="built for 5 nodes; got 4"):
        STIdentity(16, 5, 288)(tokens[:, :4], tod, dow)


@pytest.mark.parametrize("identity", ["legacy", "add", "concat", "none"])
def test_st_link_identity_switch(los_small, identity):
    from stcast.engine.splits import prepare_windows
    from stcast.models.registry import build_model

    splits = prepare_windows(los_small, "forecast", 12, 12)
    m = build_model("st-link", splits.spec, pretrained=False, num_layers=1, trainable_top=1, identity=identity)
    out = m(splits.train.gather(splits.train.starts[:2])).point
    assert out.shape == (2, 12, 20, 1) and torch.isfinite(out).all()
    assert (m.st_identity is not None) == (identity in ("add", "concat"))


def test_ust_sllm_identity_switch(los_small):
    from stcast.engine.splits import prepare_windows
    from stcast.models.registry import build_model

    splits = prepare_windows(los_small, "forecast", 12, 12)
    kw = {"pretrained": False, "num_layers": 1, "trainable_top": 1, "groups": 8}
    plain = build_model("ust-sllm", splits.spec, **kw)
    ident = build_model("ust-sllm", splits.spec, identity=True, identity_dim=4, **kw)
    assert plain.guide_identity is None and plain.token_identity is None
    assert ident.guides["forecast"].gru.input_size == 1 + 12  # value + node, time-of-day, day-of-week (4 each)
    batch = splits.train.gather(splits.train.starts[:2])
    out = ident(batch).point
    assert out.shape == (2, 12, 20, 1)
    out.sum().backward()
    assert ident.guide_identity.node.grad is not None and ident.token_identity.tod.weight.grad is not None
    with pytest.raises(StcastError, match="only provides parts"):
        ident.guide_identity(torch.zeros(1, 20, 1, 576), batch.tod_x[:1, :1], batch.dow_x[:1, :1])
