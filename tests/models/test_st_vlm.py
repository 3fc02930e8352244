"""ST-VLM: the correlation image against reference implementations, and each mechanism doing what the paper says."""

import numpy as np
import pytest
import torch

from stcast.config import TrainConfig
from stcast.engine.scoring import evaluate
from stcast.engine.tasks import task_loss
from stcast.engine.trainer import Trainer
from stcast.errors import StcastError
from stcast.models.registry import build_model
from stcast.nn.correlation import correlation_image, dtw_pairs, fft_pearson, lagged_xcorr, pairwise_dtw


def _dtw_ref(x, y):
    L = len(x)
    C = np.full((L + 1, L + 1), np.inf)
    C[0, 0] = 0
    for i in range(1, L + 1):
        for j in range(1, L + 1):
            C[i, j] = np.linalg.norm(x[i - 1] - y[j - 1]) + min(C[i - 1, j], C[i, j - 1], C[i - 1, j - 1])
    return C[L, L]


def _xcorr_ref(x, y, max_lag):
    xc, yc = x - x.mean(), y - y.mean()
    den = np.sqrt((xc ** 2).sum() * (yc ** 2).sum())
    vals = []
    for tau in range(-max_lag, max_lag + 1):  # eq. 2: sum_i xc_i yc_{i + tau}
        vals.append(sum(xc[i] * yc[i + tau] for i in range(len(x)) if 0 <= i + tau < len(y)) / den)
    return vals[int(np.argmax(np.abs(vals)))]


@pytest.mark.parametrize("channels", [1, 2])
def test_dtw_equals_the_textbook_recursion(channels):
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(40, 9, channels, generator=g, dtype=torch.float64), torch.randn(40, 9, channels, generator=g,
                                                                                      dtype=torch.float64)
    want = [_dtw_ref(a[k].numpy(), b[k].numpy()) for k in range(40)]
    assert np.allclose(dtw_pairs(a, b).numpy(), want, atol=1e-9)
    s = torch.randn(2, 5, 9, channels, generator=g, dtype=torch.float64)
    full = pairwise_dtw(s, max_cells=300)  # small chunks: the chunking must not change anything
    assert torch.allclose(full, full.transpose(1, 2)) and torch.all(full.diagonal(dim1=1, dim2=2) == 0)
    assert full[1, 2, 4].item() == pytest.approx(_dtw_ref(s[1, 2].numpy(), s[1, 4].numpy()))


def test_lagged_cross_correlation_and_spectral_pearson_equal_references():
    g = torch.Generator().manual_seed(1)
    s = torch.randn(2, 6, 12, 1, generator=g, dtype=torch.float64)
    got = lagged_xcorr(s, 3)
    x = s[..., 0].numpy()
    for b, i, j in ((0, 0, 1), (1, 3, 5), (0, 4, 4)):
        assert got[b, i, j].item() == pytest.approx(_xcorr_ref(x[b, i], x[b, j], 3), abs=1e-9)
    # a series that lags another by two steps: their strongest relation is that lag, at full strength
    base = torch.randn(30, generator=g, dtype=torch.float64)
    pair = torch.stack([base[2:], base[:-2]])[None, :, :, None]
    assert lagged_xcorr(pair, 3)[0, 0, 1].item() > 0.9
    spec = fft_pearson(s)
    amp = np.abs(np.fft.rfft(x, axis=-1))
    for b in range(2):
        assert np.allclose(spec[b].numpy(), np.corrcoef(amp[b]), atol=1e-9)


def test_the_image_is_standardised_and_a_constant_series_does_not_break_it():
    s = torch.randn(1, 4, 12, 1)
    s[0, 2] = 5.0  # a flat sensor
    img = correlation_image(s)
    assert img.shape == (1, 3, 4, 4) and torch.isfinite(img).all()
    assert torch.allclose(img.flatten(2).mean(-1), torch.zeros(1, 3), atol=1e-5)
    with pytest.raises(StcastError, match="max_lag < the window length"):
        lagged_xcorr(s, 12)
    with pytest.raises(StcastError, match="unknown correlation channels"):
        correlation_image(s, ("dtw", "pearson"))


@pytest.fixture(scope="module")
def model(splits):
    torch.manual_seed(0)
    return build_model("st-vlm", splits.spec)


@pytest.fixture(scope="module")
def batch(splits):
    return next(iter(splits.train.batches(8, shuffle=True, seed=0)))


def test_lora_sits_on_q_and_k_only_and_every_pretrained_weight_is_frozen(model):
    trainable = [n for n, p in model.backbone.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert {n.split(".self_attn.")[1].split(".")[0] for n in trainable} == {"q_proj", "k_proj"}
    layers = {int(n.split("layers.")[1].split(".")[0]) for n in trainable}
    assert layers == {0, 1, 2}  # F = 1 cross-modal layer (eqs. 4-5) + U = 2 layers (eqs. 9-10)
    frozen = build_model("st-vlm", model.spec, finetune=False)  # w/o FT
    assert not any(p.requires_grad for p in frozen.backbone.parameters())


def test_the_image_bias_reaches_the_first_layer_only(model, batch):
    import stcast.models.st_vlm as st_vlm

    seen = []
    orig_cross = st_vlm.cross_modal_block

    def cross(block, h, img, bias):
        seen.append((block, bias))
        return orig_cross(block, h, img, bias)

    st_vlm.cross_modal_block = cross
    later = []

    def recording(f):
        def forward(x, pos, bias=None, causal=False):
            later.append(bias)
            return f(x, pos, bias, causal)
        return forward

    for layer in model.backbone.stack.layers[1:]:
        layer.forward = recording(layer.forward)
    try:
        model.eval()
        with torch.no_grad():
            out = model(batch).point
            model.bias_gain.data.fill_(0.0)
            flat = model(batch).point
            model.bias_gain.data.fill_(1.0)
    finally:
        st_vlm.cross_modal_block = orig_cross
        for layer in model.backbone.stack.layers[1:]:
            del layer.forward
    assert seen and all(b is not None and b.shape[-2:] == (batch.x.shape[2] + len(model.prompt_ids),
                                                            batch.x.shape[2]) for _, b in seen)
    assert all(block is model.backbone.stack.layers[0] for block, _ in seen)  # F = 1: the first layer
    assert later and all(b is None for b in later)
    assert not torch.allclose(out, flat)  # the bias changes the forecast
    bias = model.attention_bias(model.fuse(model.image(batch)), len(model.prompt_ids))
    assert torch.all(bias[:, batch.x.shape[2]:] == 0)  # text queries: zero-padded rows (eq. 8)


def _two_adam_steps(m, splits) -> list[torch.Tensor]:
    """Two optimiser steps on two training batches of 8; the losses."""
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for b in list(splits.train.batches(8, shuffle=True, seed=1))[:2]:
        loss = task_loss(m(b), b, splits.scaler, "forecast")
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    return losses


def test_frozen_weights_do_not_move_while_lora_and_heads_train(splits):
    torch.manual_seed(0)
    m = build_model("st-vlm", splits.spec)
    frozen = {n: p.detach().clone() for n, p in m.backbone.named_parameters() if not p.requires_grad}
    lora = {n: p.detach().clone() for n, p in m.backbone.named_parameters() if "lora_B" in n}
    _two_adam_steps(m, splits)
    after = dict(m.backbone.named_parameters())
    assert all(torch.equal(v, after[n]) for n, v in frozen.items())
    assert any(not torch.equal(v, after[n]) for n, v in lora.items())  # LoRA B starts at 0 and moves


def test_images_are_cached_by_window_and_recomputed_when_the_values_differ(model, batch):
    model.eval()
    model.cache.store.clear()
    model.cache.hits = model.cache.misses = 0
    a = model.image(batch)
    b = model.image(batch)
    assert model.cache.misses == 8 and model.cache.hits == 8 and torch.equal(a, b)
    other = type(batch)(**{**batch.__dict__, "x": batch.x + 0.5})
    model.image(other)
    assert model.cache.misses == 16  # same starts, other values: not served from the cache


def test_models_with_the_same_image_settings_share_drawn_images_and_others_do_not(splits, model, batch):
    model.eval()
    model.image(batch)
    twin = build_model("st-vlm", splits.spec, pretrained=False).eval()  # another row of a benchmark: same images
    misses = twin.cache.misses
    assert twin.cache is model.cache and torch.equal(twin.image(batch), model.image(batch))
    assert twin.cache.misses == misses  # served, not drawn again
    other = build_model("st-vlm", splits.spec, channels=["dtw"])
    assert other.cache is not model.cache and other.eval().image(batch).shape[1] == 1
    # training images are each model's own: a budgeted row pays for what it trains on
    model.train(), twin.train()
    model.image(batch)
    drawn = twin.train_cache.misses
    assert twin.train_cache is not model.train_cache and torch.equal(twin.image(batch), model.image(batch))
    assert twin.train_cache.misses == drawn + len(batch.x) and model.train_cache.hits >= len(batch.x)


def test_images_on_disk_are_drawn_once_across_models_and_processes_and_bounded(splits, batch, tmp_path,
                                                                                monkeypatch):
    """image_cache_dir: a second model (another row or process: a fresh in-memory cache) reads the first one's
    images from disk instead of drawing them; they are the very images drawn; a file cut short is drawn again;
    past the size bound nothing more is written."""
    import stcast.models.st_vlm as st_vlm

    drawn = []
    real = st_vlm.correlation_image
    monkeypatch.setattr(st_vlm, "correlation_image", lambda *a, **k: drawn.append(len(a[0])) or real(*a, **k))
    first = build_model("st-vlm", splits.spec, pretrained=False, image_cache_dir=str(tmp_path)).train()
    a = first.image(batch)
    assert sum(drawn) == len(batch.x) and len(list(tmp_path.rglob("*.npy"))) == len(batch.x)
    st_vlm.ImageCache._shared.clear()  # a new process: nothing in memory
    second = build_model("st-vlm", splits.spec, pretrained=False, image_cache_dir=str(tmp_path)).train()
    assert torch.equal(second.image(batch), a) and sum(drawn) == len(batch.x)  # read, not drawn
    assert second.train_cache.disk_hits == len(batch.x)
    victim = sorted(tmp_path.rglob("*.npy"))[0]
    victim.write_bytes(victim.read_bytes()[:40])  # a crash elsewhere left half a file
    st_vlm.ImageCache._shared.clear()
    third = build_model("st-vlm", splits.spec, pretrained=False, image_cache_dir=str(tmp_path)).train()
    assert torch.equal(third.image(batch), a) and sum(drawn) == len(batch.x) + 1
    small = tmp_path / "small"
    tiny = build_model("st-vlm", splits.spec, pretrained=False, image_cache_dir=str(small),
                       image_disk_mb=1.5 * a[0].numel() * 2 / 2 ** 20).train()
    tiny.image(batch)
    assert len(list(small.rglob("*.npy"))) == 1  # one image fits the bound, the rest are not written
    other = build_model("st-vlm", splits.spec, pretrained=False, channels=["dtw"], image_cache_dir=str(tmp_path))
    assert other.cache.disk.dir != first.cache.disk.dir  # other settings, other folder


@pytest.mark.parametrize("kw", [{"use_image": False}, {"use_bias": False}, {"channels": ["xcorr"]},
                                {"use_prompt": False}, {"pretrained": False}, {"identity": True},
                                {"cross_layers": 2, "lora_layers": 1},
                                {"cross_layers": 0, "lora_layers": 0, "use_image": False, "use_prompt": False}])
def test_every_ablation_switch_builds_and_forecasts(splits, batch, kw):
    m = build_model("st-vlm", splits.spec, **kw)
    out = m(batch).point
    assert out.shape == batch.y.shape and torch.isfinite(out).all()
    if kw.get("cross_layers") == 0:  # the backbone removed (LM ablation): encoder -> decoder only
        assert len(m.backbone.stack.layers) == 0 and not any(p.requires_grad for p in m.backbone.parameters())


def test_bad_settings_and_mismatched_windows_are_clear_errors(splits, model, batch):
    with pytest.raises(StcastError, match="max_lag=12 needs a window longer"):
        build_model("st-vlm", splits.spec, max_lag=12)
    with pytest.raises(StcastError, match="exceed the 6 layers"):
        build_model("st-vlm", splits.spec, cross_layers=1, lora_layers=6)
    with pytest.raises(StcastError, match="channels"):
        build_model("st-vlm", splits.spec, channels=["dtw", "spearman"])
    wrong = type(batch)(**{**batch.__dict__, "x": batch.x[:, :, :10], "x_mask": batch.x_mask[:, :, :10]})
    with pytest.raises(StcastError, match="N=20"):
        model(wrong)


@pytest.mark.slow
def test_trains_on_real_data_and_beats_its_untrained_self(splits):
    torch.manual_seed(0)
    m = build_model("st-vlm", splits.spec)
    before = evaluate(m, splits.test, 64)["mae"]
    Trainer(m, TrainConfig(epochs=3, lr=2e-3, progress=False)).fit(splits.train, splits.val)
    after = evaluate(m, splits.test, 64)["mae"]
    assert after < 0.7 * before, (before, after)


def test_plot_correlation_draws_the_three_channels(tmp_path, capsys):
    from stcast.cli import main

    out = tmp_path / "corr.png"
    assert main(["plot", "correlation", "--dataset", "los-loop", "--nodes", "0,1,2,3", "--start", "50",
                 "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000 and "wrote" in capsys.readouterr().out
    assert main(["plot", "correlation", "--dataset", "los-loop", "--nodes", "0,x"]) == 2
    assert "--nodes '0,x'" in capsys.readouterr().err
    assert main(["plot", "correlation", "--dataset", "los-loop", "--nodes", "0,999", "--out", str(out)]) == 2
    assert "sensor indices in [0, 206]" in capsys.readouterr().err


def test_cross_correlation_spans_every_lag_of_eq_2_by_default(splits, batch):
    """Eq. 2: tau in [-I + 1, I - 1]. A pair whose only strong relation is at lag 6 (beyond the old +-3 cap)
    shows it in the default image and not in the capped one."""
    from stcast.nn.correlation import lagged_xcorr

    m = build_model("st-vlm", splits.spec)
    assert m.max_lag == splits.spec.input_len - 1
    assert build_model("st-vlm", splits.spec, max_lag=3).max_lag == 3
    torch.manual_seed(0)
    x = torch.randn(1, 1, 12, 1)
    y = torch.roll(x, 6, dims=2) + 0.01 * torch.randn_like(x)  # y lags x by 6 steps
    pair = torch.cat([x, y], 1)
    full, capped = lagged_xcorr(pair, 11)[0, 0, 1], lagged_xcorr(pair, 3)[0, 0, 1]
    assert abs(float(full)) > abs(float(capped)) + 0.2


def test_cross_modal_attention_follows_eqs_4_to_7(model):
    """Eqs. 4-7 in the first layer: Q from M_concat, K and V from the image tokens, softmax((Q K^T + A_bias) /
    sqrt(d_k)) V, written out per head here."""
    from stcast.models.st_vlm import cross_modal_block

    block = model.backbone.stack.layers[0]
    attn, d = block.self_attn, model.d
    nh, hd = attn.n_head, attn.head_dim
    gen = torch.Generator().manual_seed(3)
    hq, himg = torch.randn(2, 5, d, generator=gen), torch.randn(2, 7, d, generator=gen)
    bias = 4 * torch.randn(2, 5, 7, generator=gen)
    with torch.no_grad():
        got = cross_modal_block(block, hq, himg, bias)
        q_in, kv_in = (hq, himg) if block.post_norm else (block.norm1(hq), block.norm1(himg))
        q = attn.q_proj(q_in).view(2, 5, nh, hd)
        k = attn.k_proj(kv_in).view(2, 7, nh, hd)
        v = attn.v_proj(kv_in).view(2, 7, nh, hd)
        heads = []
        for h in range(nh):
            w = torch.softmax((q[:, :, h] @ k[:, :, h].transpose(1, 2) + bias) / hd ** 0.5, -1)
            heads.append(w @ v[:, :, h])
        out = attn.o_proj(torch.cat(heads, -1))
        x = block.norm1(hq + out) if block.post_norm else hq + out
        want = block.norm2(x + block.mlp(x)) if block.post_norm else x + block.mlp(block.norm2(x))
        assert torch.allclose(got, want, atol=1e-4)
        no_bias = cross_modal_block(block, hq, himg, bias * 0)
        assert not torch.allclose(got, no_bias, atol=1e-3)  # the bias moves the attention


def test_a_single_sensor_trains_without_nans(los_small):
    """One node: its 1 x 1 image and attention-bias row have no spread; torch's sample std of one value is NaN,
    and its gradient made every weight NaN after the first step."""
    from stcast.engine.splits import prepare_windows

    one = prepare_windows(los_small.subset_nodes(np.arange(1)), "forecast", 12, 12)
    torch.manual_seed(0)
    m = build_model("st-vlm", one.spec)
    assert all(torch.isfinite(loss) for loss in _two_adam_steps(m, one))
    assert all(torch.isfinite(p).all() for p in m.parameters())
    b = next(iter(one.train.batches(8, shuffle=False, seed=0)))
    assert torch.equal(m.image(b), torch.zeros_like(m.image(b)))  # one cell, standardised: 0
