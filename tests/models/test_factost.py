"""FactoST-v2: each UTP and STA mechanism does what sections III-A/B say; checkpoints round-trip safely."""

import numpy as np
import pytest
import torch

from stcast.config import TrainConfig
from stcast.data.windows import ReplayWindows
from stcast.engine.scoring import evaluate
from stcast.engine.splits import prepare_windows
from stcast.engine.tasks import task_loss
from stcast.engine.trainer import Trainer
from stcast.errors import StcastError
from stcast.models.factost import STF, UTPBackbone, UTPConfig, instance_norm
from stcast.models.registry import build_model
from stcast.nn.transformer import Rotary
from stcast.pretrain.utp import utp_loss

SMALL = {"variant": "minuscule", "max_context": 64, "min_context": 16, "max_horizon": 32}


@pytest.fixture(scope="module")
def utp():
    torch.manual_seed(0)
    return UTPBackbone(UTPConfig(**SMALL))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, utp):
    path = tmp_path_factory.mktemp("utp") / "utp.pt"
    utp.save(path, extra={"recipe": "test"})
    return path


@pytest.fixture(scope="module")
def fc(los_small):
    return prepare_windows(los_small, "forecast", 12, 12)


def test_prope_rotates_only_the_high_frequency_half():
    rot = Rotary(head_dim=16, theta=10000.0, fraction=0.5)
    q, k = torch.randn(2, 3, 5, 16), torch.randn(2, 3, 5, 16)
    q2, k2 = rot(q, k, torch.arange(5) * 7)
    low = [4, 5, 6, 7, 12, 13, 14, 15]  # pairs 4..7 (the low frequencies) in the half-split layout
    high = [0, 1, 2, 3, 8, 9, 10, 11]
    assert torch.equal(q2[..., low], q[..., low]) and torch.equal(k2[..., low], k[..., low])
    assert not torch.allclose(q2[..., high], q[..., high])
    full = Rotary(16, 10000.0)
    assert not torch.allclose(full(q, k, torch.arange(5) * 7)[0][..., low], q[..., low])  # vanilla RoPE


def test_gate_multiplies_the_attention_output(utp):
    attn = utp.stack.layers[0].self_attn
    assert attn.gate is not None
    x = torch.randn(2, 6, utp.d_model)
    pos = torch.arange(6)
    open_out = attn(x, pos)
    with torch.no_grad():
        attn.gate.bias.fill_(-30.0)  # sigmoid -> 0: the attention output is gated off
    closed = attn(x, pos)
    with torch.no_grad():
        attn.gate.bias.fill_(3.0)
    assert torch.allclose(closed, attn.o_proj.bias.expand_as(closed) if attn.o_proj.bias is not None
                          else torch.zeros_like(closed), atol=1e-6)
    assert not torch.allclose(open_out, closed)
    nogate = UTPBackbone(UTPConfig(**SMALL, use_gate=False))
    assert nogate.stack.layers[0].self_attn.gate is None
    assert utp.stack.layers[0].self_attn.rotary.fraction == 0.5  # p-RoPE installed in the backbone


def test_random_masking_varies_the_effective_context_and_hides_the_prefix(utp):
    rng = np.random.default_rng(0)
    seen = []
    orig = utp.forward

    def spy(x, mask, horizon, mask_patches=None):
        seen.append(None if mask_patches is None else mask_patches.clone())
        return orig(x, mask, horizon, mask_patches)

    utp.forward = spy
    try:
        w = torch.randn(64, 64 + 32)
        utp_loss(utp, w, rng, random_mask=True)
        utp_loss(utp, w, rng, random_mask=False)
    finally:
        del utp.forward
    l_mask = seen[0]
    assert seen[1] is None
    assert l_mask.min() >= 0 and l_mask.max() <= (64 - 16) // 16 and len(set(l_mask.tolist())) > 1
    # a masked prefix is the same as a shorter context: the forecast ignores whatever the prefix holds
    utp.eval()
    x, m = torch.randn(2, 64), torch.ones(2, 64, dtype=torch.bool)
    m2 = m.clone()
    m2[:, :32] = False
    a, *_ = utp(x, m2, 16, mask_patches=torch.tensor([2, 2]))
    x[:, :32] = 100.0
    b, *_ = utp(x, m2, 16, mask_patches=torch.tensor([2, 2]))
    assert torch.allclose(a, b, atol=1e-5)
    # ... and the same as the shorter context itself: the masked patches are hidden from attention, not merely
    # zero tokens that every query still attends to
    short, *_ = utp(x[:, 32:], m[:, 32:], 16)
    assert torch.allclose(a, short, atol=1e-5)
    zeroed_only, *_ = utp(x, m2, 16)  # the same prefix as zero tokens, attended to
    assert not torch.allclose(zeroed_only, short, atol=1e-4)


def test_forecast_quantiles_do_not_cross_and_long_horizons_roll(utp):
    utp.eval()
    x = torch.sin(torch.arange(80).float() / 5).repeat(3, 1) * 10 + 50
    with torch.no_grad():
        utp.head.bias.normal_(0, 2.0)  # an untrained head crosses its quantiles freely
    q = utp.forecast(x, 20)
    assert q.shape == (3, 20, len(utp.cfg.quantiles)) and (q.diff(dim=-1) >= 0).all()
    long = utp.forecast(x, 70)  # H_max = 32: three rolled chunks
    assert long.shape == (3, 70, len(utp.cfg.quantiles)) and torch.isfinite(long).all()
    assert torch.allclose(long[:, :20], q, atol=1e-4)  # the first chunk is the direct forecast, truncated


def test_instance_norm_uses_observed_steps_only():
    x = torch.tensor([[1.0, 2.0, 3.0, 1000.0]])
    m = torch.tensor([[True, True, True, False]])
    xn, mean, std = instance_norm(x, m)
    assert float(mean) == pytest.approx(2.0) and xn[0, 3] == 0


def test_checkpoint_round_trip_and_bad_files(tmp_path, utp, ckpt):
    back = UTPBackbone.load(ckpt)
    assert back.extra == {"recipe": "test"} and back.cfg == utp.cfg
    for (k, v), (k2, v2) in zip(utp.state_dict().items(), back.state_dict().items()):
        assert k == k2 and torch.allclose(v, v2, atol=1e-2, rtol=1e-2)  # fp16 storage
    with pytest.raises(StcastError, match="does not exist"):
        UTPBackbone.load(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(StcastError, match="not a readable"):
        UTPBackbone.load(bad)
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(StcastError, match="not a FactoST UTP checkpoint"):
        UTPBackbone.load(tmp_path / "other.pt")


def test_stf_gate_follows_eq_8():
    torch.manual_seed(0)
    stf = STF(d=8, prototypes=3, max_lag=3, num_nodes=4)
    with torch.no_grad():
        stf.w.copy_(torch.tensor([0.3, -0.2, 0.5]))
        stf.gamma.copy_(torch.rand(4, 3))
    ist, en, et, hist = (torch.randn(2, 4, 5, 8) for _ in range(4))
    s_s, s_t, s_d = stf.affinities(ist, en, et, hist)
    assert torch.allclose(s_s, (ist * en).sum(-1) / 8 ** 0.5, atol=1e-6)
    assert torch.allclose(s_t, (ist * et).sum(-1) / 8 ** 0.5, atol=1e-6)
    # S_d by hand, one (b, i, tau) at a time: prototypes summarise all nodes at tau - delta, I_st reads them
    P_lat, sc = stf.prototypes, 8 ** -0.5
    for b, i, tau in ((0, 1, 3), (1, 3, 4), (0, 0, 1)):
        want = 0.0
        for lag in range(1, min(3, tau) + 1):
            states = hist[b, :, tau - lag]  # (N, d)
            summary = torch.softmax(P_lat @ states.t() * sc, -1) @ states  # (M, d)
            agg = torch.softmax(summary @ ist[b, i, tau] * sc, 0) @ summary
            want += stf.gamma[i, lag - 1] * (ist[b, i, tau] @ agg) * sc
        assert torch.allclose(s_d[b, i, tau], torch.as_tensor(want), atol=1e-5)
    assert torch.equal(s_d[..., 0], torch.zeros_like(s_d[..., 0]))  # no lag before the first patch
    a = torch.softmax(stf.w, 0)
    want = torch.sigmoid(a[0] * s_s + a[1] * s_t + a[2] * s_d).unsqueeze(-1) * ist
    assert torch.allclose(stf(ist, en, et, hist), want, atol=1e-6)
    own = STF(d=8, prototypes=3, max_lag=3, lag="own")
    assert own.gamma.shape == (3,) and torch.isfinite(own.affinities(ist, en, et)[2]).all()
    with pytest.raises(StcastError, match="stf_lag='both'"):
        STF(d=8, lag="both")


def _forecast_change_at_other_nodes(model, batch, j=5):
    """How much the forecasts of every sensor but j move when sensor j's input changes."""
    model.eval()
    moved = batch.x.clone()
    moved[:, :, j] = moved[:, :, j] * -2.0 + 1.5
    with torch.no_grad():
        a = model(batch).point
        b = model(type(batch)(**{**batch.__dict__, "x": moved})).point
    others = [n for n in range(batch.x.shape[2]) if n != j]
    return (a[:, :, others] - b[:, :, others]).abs().max().item()


def test_stf_carries_one_sensor_s_input_to_another_s_forecast(fc, ckpt):
    """Eq. 8's time-lagged affinity over M prototypes is the adapter's only path between sensors."""
    b = fc.train.gather(fc.train.starts[:2])
    torch.manual_seed(0)
    on = build_model("factost", fc.spec, checkpoint=str(ckpt))
    with torch.no_grad():
        on.stf.w.copy_(torch.tensor([0.0, 0.0, 3.0]))  # weight S_d so its effect is well above rounding
        on.stf.gamma.fill_(20.0)
    assert _forecast_change_at_other_nodes(on, b) > 1e-3
    for kw in ({"use_stf": False}, {"stf_lag": "own"}):
        torch.manual_seed(0)
        off = build_model("factost", fc.spec, checkpoint=str(ckpt), **kw)
        assert _forecast_change_at_other_nodes(off, b) == 0.0, kw


def test_full_horizon_predicts_h_max_and_truncates(fc, ckpt):
    """Section III-A: a horizon below H_max is the full prediction truncated, as in pretraining."""
    seen = {}
    m = build_model("factost", fc.spec, checkpoint=str(ckpt), use_dspa=False).eval()
    m.backbone.stack.register_forward_hook(lambda mod, args, out: seen.update(tokens=args[0].shape[1]))
    b = fc.train.gather(fc.train.starts[:2])
    with torch.no_grad():
        full = m(b).point
        cfg = m.backbone.cfg
        assert seen["tokens"] == 1 + 1 + cfg.fut_patches and full.shape[1] == 12  # ctx + register + H_max / 16
        short = build_model("factost", fc.spec, checkpoint=str(ckpt), use_dspa=False, full_horizon=False).eval()
        short.load_state_dict(m.state_dict())
        short.backbone.stack.register_forward_hook(lambda mod, args, out: seen.update(tokens=args[0].shape[1]))
        assert not torch.allclose(short(b).point, full, atol=1e-4) and seen["tokens"] == 3
    # the calendar beyond the targets is counted on from the last target step, across midnight and the week
    tod, dow = m._future_calendar(b, torch.tensor([12 + 12 + 300]))
    spd = fc.spec.steps_per_day
    assert tod.shape[1] == 12 + 12 + 301
    assert int(tod[0, -1]) == (int(b.tod_y[0, -1]) + 301) % spd
    assert int(dow[0, -1]) == (int(b.dow_y[0, -1]) + (int(b.tod_y[0, -1]) + 301) // spd) % 7


def test_stmf_banks_are_minute_hour_and_weekday(fc, ckpt):
    m = build_model("factost", fc.spec, checkpoint=str(ckpt))
    assert [b.num_embeddings for b in m.stmf.banks] == [60, 24, 7]
    moh, tod, dow, hod = m._calendar(torch.tensor([[0, 13, 287]]), torch.tensor([[1, 2, 3]]), torch.arange(3))
    assert moh.tolist() == [[0, 5, 55]] and hod.tolist() == [[0, 1, 23]]  # 5-minute steps
    steps = build_model("factost", fc.spec, checkpoint=str(ckpt), calendar="steps")
    assert [b.num_embeddings for b in steps.stmf.banks] == [60, fc.spec.steps_per_day, 7]
    b = fc.train.gather(fc.train.starts[:2])
    with torch.no_grad():  # the hour bank is what the paper calendar reads: its rows move the forecast
        y0 = m.eval()(b).point
        m.stmf.banks[1].weight.add_(torch.randn_like(m.stmf.banks[1].weight))
        assert not torch.allclose(m(b).point, y0)


def test_sta_model_switches_prompts_and_full_weight_transfer(fc, ckpt):
    m = build_model("factost", fc.spec, checkpoint=str(ckpt))
    b = fc.train.gather(fc.train.starts[:3])
    seen = {}
    m.backbone.stack.layers[0].register_forward_hook(lambda mod, a, o: seen.update(x=a[0]))
    pred = m(b)
    assert pred.point.shape == (3, 12, 20, 1) and pred.quantiles.shape == (3, 12, 20, 1, 11)
    assert seen["x"].shape == (3 * 20, 3 + 1 + 1 + m.backbone.cfg.fut_patches, m.backbone.d_model)  # K, ctx, reg, H_max
    assert all(p.requires_grad for p in m.backbone.parameters())  # every backbone weight is reused and tuned
    src = UTPBackbone.load(ckpt)
    assert all(torch.equal(a, b) for a, b in zip(m.backbone.state_dict().values(), src.state_dict().values()))
    bare = build_model("factost", fc.spec, checkpoint=str(ckpt), use_stmf=False, use_stf=False, use_dspa=False,
                       use_cmr=False)
    assert bare.stmf is None and bare.stf is None and bare.dspa is None and bare.replay is None
    assert bare(b).point.shape == (3, 12, 20, 1)
    with pytest.raises(StcastError, match="memory_fraction"):
        build_model("factost", fc.spec, checkpoint=str(ckpt), memory_fraction=1.5)


def test_backbone_layers_keeps_the_first_blocks_and_zero_removes_them(fc, ckpt):
    src = UTPBackbone.load(ckpt)
    b = fc.train.gather(fc.train.starts[:2])
    one = build_model("factost", fc.spec, checkpoint=str(ckpt), backbone_layers=1)
    assert len(one.backbone.stack.layers) == 1
    assert all(torch.equal(v, src.stack.layers[0].state_dict()[k])
               for k, v in one.backbone.stack.layers[0].state_dict().items())  # the pretrained first block
    removed = build_model("factost", fc.spec, checkpoint=str(ckpt), backbone_layers=0)
    assert len(removed.backbone.stack.layers) == 0
    out = removed(b).point
    assert out.shape == (2, 12, 20, 1) and torch.isfinite(out).all()
    full = build_model("factost", fc.spec, checkpoint=str(ckpt))
    assert not torch.allclose(full(b).point, out)  # the blocks did something, and now they are gone
    with pytest.raises(StcastError, match="backbone_layers=9"):
        build_model("factost", fc.spec, checkpoint=str(ckpt), backbone_layers=9)
    with pytest.raises(StcastError, match="backbone_layers=-1"):
        build_model("factost", fc.spec, checkpoint=str(ckpt), backbone_layers=-1)


def test_matched_identity_scale_brings_i_st_to_the_token_scale(fc, ckpt):
    b = fc.train.gather(fc.train.starts[:2])
    ratios = {}
    for scale in ("paper", "matched"):
        torch.manual_seed(0)
        m = build_model("factost", fc.spec, checkpoint=str(ckpt), use_dspa=False, identity_scale=scale).eval()
        seen = []
        m.backbone.stack.layers[0].register_forward_hook(lambda mod, a, o, seen=seen: seen.append(a[0]))
        with torch.no_grad():
            m(b)
            m.stmf = None  # the same backbone tokens without I_st
            m(b)
        fused, z = seen
        rms = lambda t: t[:, 0].pow(2).mean(-1).sqrt()  # noqa: E731  (first context patch)
        ratios[scale] = float((rms(fused - z) / rms(z)).mean())
    assert abs(ratios["matched"] - 1.0) < 1e-3  # I_st enters at the token's own scale (gain 1)
    assert abs(ratios["paper"] - 1.0) > 0.05  # as eq. 8 adds it: another scale
    with pytest.raises(StcastError, match="identity_scale='loud'"):
        build_model("factost", fc.spec, checkpoint=str(ckpt), identity_scale="loud")


def test_node_sampling_adapts_on_a_subset_and_scores_only_it(fc, ckpt):
    from stcast.engine.tasks import task_loss

    m = build_model("factost", fc.spec, checkpoint=str(ckpt), node_sample=4)
    b = fc.train.gather(fc.train.starts[:2])
    m.train()
    pred = m(b)
    assert pred.point.shape == (2, 12, 4, 1) and pred.quantiles.shape[2] == 4 and pred.node_index.shape == (4,)
    loss = task_loss(pred, b, fc.scaler, "forecast", loss="pinball")
    others = torch.ones(20, dtype=torch.bool)
    others[pred.node_index] = False
    b.y[:, :, others] += 100.0
    assert torch.allclose(loss, task_loss(pred, b, fc.scaler, "forecast", loss="pinball"))
    m.eval()
    assert m(b).point.shape == (2, 12, 20, 1)


def test_frozen_backbone_keeps_its_weights_while_the_adapter_trains(fc, ckpt):
    torch.manual_seed(0)
    m = build_model("factost", fc.spec, checkpoint=str(ckpt), freeze_backbone=True)
    assert not any(p.requires_grad for p in m.backbone.parameters())
    before = {k: v.clone() for k, v in m.state_dict().items()}
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    for start in (0, 3):
        b = fc.train.gather(fc.train.starts[start:start + 3])
        opt.zero_grad()
        task_loss(m(b), b, fc.scaler, "forecast").backward()
        opt.step()
    after = m.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(not k.startswith("backbone.") for k in moved), sorted(moved)[:5]
    assert any(k.startswith("stmf.") for k in moved) and any(k.startswith("dspa.") for k in moved)


def test_the_trainer_trains_factost_on_replay_batches(fc, ckpt):
    """Eq. 11 reaches training: every batch the model trains on holds floor(r b) memory windows (the earliest
    20 % of the training windows); with use_cmr off the batches are the plain shuffled windows."""
    memory = np.sort(fc.train.starts)[:int(0.2 * len(fc.train.starts))]
    for use_cmr in (True, False):
        m = build_model("factost", fc.spec, checkpoint=str(ckpt), use_cmr=use_cmr, use_dspa=False)
        counts = []

        def record(mod, args, counts=counts):
            if mod.training:
                counts.append((len(args[0].start), int(np.isin(args[0].start.numpy(), memory).sum())))

        m.register_forward_pre_hook(record)
        Trainer(m, TrainConfig(epochs=1, batch_size=20, max_batches_per_epoch=4, progress=False)).fit(fc.train)
        full = [mem for size, mem in counts if size == 20]
        assert len(full) >= 3
        if use_cmr:
            assert all(mem == 6 for mem in full), full  # floor(0.3 * 20)
        else:
            assert any(mem != 6 for mem in full), full


def test_cmr_batches_mix_memory_and_current_in_the_stated_ratio(fc):
    rep = ReplayWindows(fc.train, memory_fraction=0.2, replace_ratio=0.3)
    starts = np.sort(fc.train.starts)
    k = int(0.2 * len(starts))
    assert set(rep.memory) == set(starts[:k]) and len(rep) == len(starts) - k
    seen_cur = []
    for batch in rep.batches(20, shuffle=True, seed=1):
        s = batch.start.numpy()
        mem = np.isin(s, rep.memory)
        if len(s) == 20:
            assert mem.sum() == 6  # floor(0.3 * 20) memory windows, 14 current
        seen_cur.extend(s[~mem])
    assert sorted(seen_cur) == sorted(rep.current)  # one epoch = one pass over the current stream
    with pytest.raises(StcastError, match="replay needs"):
        ReplayWindows(fc.train, memory_fraction=0.0)


def test_adaptation_trains_with_l1_and_pinball_and_reports_probabilistic_metrics(fc, ckpt):
    torch.manual_seed(0)
    m = build_model("factost", fc.spec, checkpoint=str(ckpt))
    before = evaluate(m, fc.val, 64)
    assert {"crps", "coverage80", "coverage98"} <= set(before)
    Trainer(m, TrainConfig(epochs=2, lr=1e-3, progress=False)).fit(fc.train, fc.val)
    after = evaluate(m, fc.val, 64)
    assert after["mae"] < before["mae"]
    b = fc.train.gather(fc.train.starts[:4])
    assert torch.isfinite(task_loss(m(b), b, fc.scaler, "forecast", loss="pinball"))
    stid = build_model("stid", fc.spec)
    with pytest.raises(StcastError, match="quantiles"):
        task_loss(stid(b), b, fc.scaler, "forecast", loss="pinball")


def test_point_forecast_is_the_median_head_even_when_other_heads_cross_it(fc, ckpt):
    """L1 trains the median head only (section III-B); at inference the point must still be that head, not
    whichever head sorting puts at the median position (a bug that turned adapted METR-LA forecasts into noise)."""
    m = build_model("factost", fc.spec, checkpoint=str(ckpt))
    Q = len(m.quantile_levels)
    with torch.no_grad():  # the lowest-level head now predicts far above the others: crossing
        m.backbone.head.bias.view(-1, Q)[:, 0] += 5.0
    b = fc.test.gather(fc.test.starts[:3])
    m.train()
    trained = m(b).point
    m.eval()
    pred = m(b)
    assert torch.equal(pred.point, trained)  # the same output in both modes (FactoST has no dropout)
    assert (pred.quantiles.diff(dim=-1) >= 0).all()  # intervals repaired by sorting
    assert not torch.allclose(pred.point, pred.quantiles[..., m.backbone.median_index])  # sorting moved heads


def test_intervals_are_not_reported_once_the_point_loss_alone_has_trained(fc, ckpt, tmp_path):
    from stcast.engine.checkpoint import load_model, save_model

    cfg = dict(epochs=1, max_batches_per_epoch=2, lr=1e-3, progress=False)
    m = build_model("factost", fc.spec, checkpoint=str(ckpt), use_cmr=False)
    assert "crps" in evaluate(m, fc.val, 64)  # as built: the pretrained heads' intervals
    with pytest.warns(UserWarning, match="quantile heads are not trained"):
        Trainer(m, TrainConfig(**cfg)).fit(fc.train, fc.val)
    after = evaluate(m, fc.val, 64)
    assert "mae" in after and "crps" not in after and "coverage80" not in after
    path = save_model(tmp_path / "f.pt", m, {"checkpoint": str(ckpt), "use_cmr": False}, fc.scaler, "los-loop",
                      "forecast")
    assert "crps" not in evaluate(load_model(path)[0], fc.val, 64)  # the file remembers it
    p = build_model("factost", fc.spec, checkpoint=str(ckpt), use_cmr=False)
    Trainer(p, TrainConfig(**cfg, loss="pinball")).fit(fc.train, fc.val)
    assert "crps" in evaluate(p, fc.val, 64)  # pinball trains every head: intervals stay


def test_wrong_shapes_are_clear_errors(fc, los, ckpt):
    m = build_model("factost", fc.spec, checkpoint=str(ckpt))
    other = prepare_windows(los.subset_nodes(np.arange(30)), "forecast", 12, 12)
    with pytest.raises(StcastError, match="N=20.*N=30"):
        m(other.train.gather(other.train.starts[:2]))
    long = prepare_windows(los.subset_nodes(np.arange(20)), "forecast", 12, 48)
    with pytest.raises(StcastError, match="H_max"):
        build_model("factost", long.spec, checkpoint=str(ckpt))
    rolled = build_model("factost", long.spec, checkpoint=str(ckpt), use_stmf=False, use_dspa=False)
    assert rolled(long.test.gather(long.test.starts[:2])).point.shape == (2, 48, 20, 1)


def test_shipped_checkpoint_is_small_recorded_and_better_than_random(fc):
    """The package's UTP checkpoint (made by `stcast pretrain factost`, recipe beside it) loads offline, is
    <= 10 MB, excludes the evaluation datasets, and zero-shot beats the same backbone randomly initialised
    (which, with instance normalisation, forecasts roughly the context mean)."""
    import json

    from stcast.models.factost import SHIPPED_CHECKPOINT

    assert SHIPPED_CHECKPOINT.stat().st_size <= 10 * 2**20
    recipe = json.loads(SHIPPED_CHECKPOINT.with_suffix(".json").read_text())
    assert "pretrain factost" in recipe["command"] and recipe["steps_done"] > 0
    used = recipe["corpus"]["used"]
    assert not set(used) & set(recipe["corpus"]["never_used_evaluation_datasets"]) and "los-loop" not in used
    real_points = sum(u["points"] for u in used.values())  # the record adds up to the points it reports
    assert real_points + 352 * recipe["corpus"]["synthetic_series"] == recipe["corpus"]["points"]
    zero = {"use_stmf": False, "use_stf": False, "use_dspa": False, "use_cmr": False}
    torch.manual_seed(0)
    shipped = build_model("factost", fc.spec, **zero)
    random = build_model("factost", fc.spec, pretrained=False, **zero)
    m_shipped, m_random = evaluate(shipped, fc.val, 64)["mae"], evaluate(random, fc.val, 64)["mae"]
    assert m_shipped < m_random, (m_shipped, m_random)  # 2.59 vs 2.74 with the shipped 14-minute pretraining


def test_a_lookback_longer_than_the_backbone_context_reads_its_last_l_max_steps(los):
    """context_len beyond L_max: the forecast is the one from the last L_max steps (what pretraining showed)."""
    bare = {"use_stmf": False, "use_stf": False, "use_dspa": False, "use_cmr": False}
    long = prepare_windows(los, "forecast", 12, 12, context_len=400)
    torch.manual_seed(0)
    m_long = build_model("factost", long.spec, **bare).eval()
    cap = m_long.backbone.cfg.max_context
    assert cap < 400
    capped = prepare_windows(los, "forecast", 12, 12, context_len=cap)
    m_cap = build_model("factost", capped.spec, **bare).eval()
    b_long, b_cap = long.test.gather(long.test.starts[:2]), capped.test.gather(capped.test.starts[:2])
    with torch.no_grad():
        p_long, p_cap = m_long(b_long).point, m_cap(b_cap).point
        b_long.x[:, :400 - cap] += 3.0  # steps before the last L_max are not read
        assert torch.equal(m_long(b_long).point, p_long)
    assert torch.allclose(p_long, p_cap, atol=1e-5)
