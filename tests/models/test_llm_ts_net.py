"""LLM-TS Net: each mechanism doing what the paper describes (prompt retrieval, LoRA-AMR, fusion, U-variant)."""

import math

import numpy as np
import pytest
import torch

from stcast.config import TrainConfig
from stcast.data import descriptions as D
from stcast.engine.scoring import evaluate
from stcast.engine.tasks import task_loss
from stcast.engine.trainer import Trainer
from stcast.errors import StcastError
from stcast.metrics import laplace_nll
from stcast.models.llm_ts_net import CrossModalFusion, PromptPool, laplace_quantile
from stcast.models.registry import build_model
from stcast.nn.adapt import LoRAAMRLinear

KW = {"writer": "template", "text_tuning_steps": 0}  # the tuning stage has its own test


@pytest.fixture(scope="module")
def model(splits):
    torch.manual_seed(0)
    m = build_model("llm-ts-net", splits.spec, **KW)
    m.fit_statistics(splits.train)
    return m


@pytest.fixture(scope="module")
def batch(splits):
    return next(iter(splits.train.batches(8, shuffle=True, seed=0)))


def test_prompt_retrieval_returns_the_top_k_by_the_additive_score():
    torch.manual_seed(0)
    pool = PromptPool(d=8, size=10, top_k=3, length=2)
    q = torch.randn(2, 5, 8)
    with torch.no_grad():
        chosen, idx = pool(q)
        for b in range(2):
            for n in range(5):  # s_m = v^T tanh(W_q q + W_k k_m), one key at a time
                s = torch.stack([pool.v(torch.tanh(pool.w_q(q[b, n]) + pool.w_k(pool.keys[m])))[0]
                                 for m in range(10)])
                top = s.argsort(descending=True)[:3]
                assert idx[b, n].tolist() == top.tolist()
                w = torch.softmax(s[top], 0) * 3
                want = (pool.prompts[top] * w[:, None, None]).flatten(0, 1)
                assert torch.allclose(chosen[b, n], want, atol=1e-6)
    assert chosen.shape == (2, 5, 6, 8)
    pool(q)[0].pow(2).sum().backward()
    assert pool.keys.grad.abs().sum() > 0 and pool.w_q.weight.grad.abs().sum() > 0  # the scores learn


def test_lora_amr_trains_only_c_in_the_text_lm(splits):
    torch.manual_seed(0)
    m = build_model("llm-ts-net", splits.spec, **KW)
    m.fit_statistics(splits.train)
    lm = m.text.lm
    amr = [mod for mod in lm.modules() if isinstance(mod, LoRAAMRLinear)]
    assert len(amr) == 2  # q and v of the top block
    trainable = [n for n, p in lm.named_parameters() if p.requires_grad]
    assert trainable and all(n.endswith("lora_C") for n in trainable)
    before = {n: p.detach().clone() for n, p in lm.named_parameters()}
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    m.train()
    for b in list(splits.train.batches(8, shuffle=True, seed=1))[:2]:
        loss = task_loss(m(b), b, splits.scaler, "forecast")
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = dict(lm.named_parameters())
    moved = {n for n, v in before.items() if not torch.equal(v, after[n])}
    assert moved and all(n.endswith("lora_C") for n in moved)  # W0, B and D frozen; C (zero at init) moves
    lora = build_model("llm-ts-net", splits.spec, lm_adapter="lora", **KW).text.lm
    assert any("lora_A" in n for n, p in lora.named_parameters() if p.requires_grad)
    frozen = build_model("llm-ts-net", splits.spec, lm_adapter="none", **KW).text.lm
    assert not any(p.requires_grad for p in frozen.parameters())


def test_the_fusion_attention_weights_sum_to_one(model, batch):
    fusion = CrossModalFusion(16, 4, 0.0)
    fused, w = fusion(torch.randn(2, 3, 16), torch.randn(2, 3, 7, 16), need_weights=True)
    assert fused.shape == (2, 3, 16) and w.shape == (2, 3, 7)
    assert torch.allclose(w.sum(-1), torch.ones(2, 3), atol=1e-6) and (w >= 0).all()
    model.eval()
    with torch.no_grad():
        node_text = model.text_tokens(batch)
        _, w = model.fusion(torch.randn(8, 20, 64), node_text, need_weights=True)
    assert node_text.shape[2] == 8  # sensor + window text, 4 pooled vectors each
    assert torch.allclose(w.sum(-1), torch.ones(8, 20), atol=1e-6)


def test_texts_are_the_descriptions_and_shuffling_permutes_them(splits, model, batch):
    texts = model.text.texts()
    assert len(texts) == 20 + D.NUM_KINDS
    assert texts[0].startswith("the series reads on average")  # MiniLM's tokenizer lower-cases
    assert "usual level" in texts[20 + 22]
    torch.manual_seed(0)
    shuffled = build_model("llm-ts-net", splits.spec, shuffle_text=True, **KW)
    shuffled.load_state_dict(model.state_dict())
    perm = shuffled.text_of
    assert not torch.equal(perm, torch.arange(20))
    model.eval()
    shuffled.eval()
    with torch.no_grad():
        a, b = model.text_tokens(batch), shuffled.text_tokens(batch)
    assert torch.allclose(b, a[:, perm], atol=1e-5)  # node n reads node perm[n]'s sensor and window texts


def test_grouped_query_attention_shares_key_value_heads(splits):
    m = build_model("llm-ts-net", splits.spec, heads=4, kv_groups=2, use_text=False)
    attn = m.temporal[0].self_attn
    assert attn.q_proj.out_features == 64 and attn.k_proj.out_features == 32  # 2 kv heads of 16
    mha = build_model("llm-ts-net", splits.spec, heads=4, kv_groups=4, use_text=False).temporal[0].self_attn
    assert mha.k_proj.out_features == 64


def test_u_variant_predicts_a_laplace_and_weights_the_loss_by_it(splits, batch):
    torch.manual_seed(0)
    m = build_model("u-llm-ts-net", splits.spec, **KW)
    m.fit_statistics(splits.train)
    pred = m(batch)
    assert pred.levels == (0.01, 0.1, 0.5, 0.9, 0.99) and (pred.scale > 0).all()
    assert (pred.quantiles.diff(dim=-1) >= 0).all() and torch.allclose(pred.quantiles[..., 2], pred.point)
    assert laplace_quantile(0.9) == pytest.approx(math.log(5))  # -ln(2 (1 - 0.9))
    loss = task_loss(pred, batch, splits.scaler, "forecast")
    mu = splits.scaler.inverse(pred.point)
    b = pred.scale * float(splits.scaler.std[0])
    valid = batch.y_mask.bool() & torch.isfinite(batch.y)
    manual = ((batch.y - mu).abs() / b + b.log())[valid].mean()
    assert loss.item() == pytest.approx(manual.item(), rel=1e-5)
    # the NLL's minimum over b is at b = |y - mu|: a too-small and a too-large scale both cost more
    y, mu1 = torch.tensor([3.0]), torch.tensor([1.0])
    ok = torch.ones(1, dtype=torch.bool)
    at = laplace_nll(mu1, torch.tensor([2.0]), y, ok)
    assert at < laplace_nll(mu1, torch.tensor([0.5]), y, ok) and at < laplace_nll(mu1, torch.tensor([8.0]), y, ok)


@pytest.mark.parametrize("kw", [{"use_text": False}, {"pool_size": 0}, {"text_scope": "node"},
                                {"text_scope": "window"}, {"pretrained": False}, {"identity": True},
                                {"kv_groups": 4}, {"text_sample": None}, {"patch_len": 1}])
def test_every_ablation_switch_builds_and_forecasts(splits, batch, kw):
    m = build_model("llm-ts-net", splits.spec, **{**KW, **kw})
    m.fit_statistics(splits.train)
    out = m(batch).point
    assert out.shape == batch.y.shape and torch.isfinite(out).all()


def test_bad_settings_are_clear_errors(splits, model, batch):
    for kw, msg in (({"kv_groups": 3}, "must divide heads"), ({"patch_len": 5}, "must divide the input length"),
                    ({"text_scope": "corpus"}, "text_scope"), ({"lm_adapter": "adalora"}, "lm_adapter"),
                    ({"top_k": 20}, "top_k=20"), ({"d_model": 30}, "multiple of heads"),
                    ({"text_sample": 0}, "text_sample=0"), ({"tune_layers": 9}, "tune_layers=9")):
        with pytest.raises(StcastError, match=msg):
            build_model("llm-ts-net", splits.spec, **{**KW, **kw})
    wrong = type(batch)(**{**batch.__dict__, "x": batch.x[:, :, :10], "x_mask": batch.x_mask[:, :, :10]})
    with pytest.raises(StcastError, match="N=10"):
        model(wrong)


def test_the_texts_travel_with_a_saved_model(splits, model, batch, tmp_path):
    from stcast.engine.checkpoint import load_model, save_model

    path = tmp_path / "m.pt"
    save_model(path, model, {"writer": "template"}, splits.scaler, dataset="los-loop", task="forecast")
    loaded, _, _ = load_model(path)
    assert loaded.text.texts() == model.text.texts()
    model.eval()
    loaded.eval()
    with torch.no_grad():
        assert torch.allclose(loaded(batch).point, model(batch).point, atol=1e-5)


@pytest.mark.slow
def test_trains_on_real_data_and_beats_its_untrained_self(splits):
    torch.manual_seed(0)
    m = build_model("llm-ts-net", splits.spec, **KW)
    m.fit_statistics(splits.train)
    before = evaluate(m, splits.test, 64)["mae"]
    Trainer(m, TrainConfig(epochs=3, lr=2e-3, progress=False)).fit(splits.train, splits.val)
    after = evaluate(m, splits.test, 64)["mae"]
    assert after < 0.7 * before, (before, after)


def test_description_tuning_updates_only_lora_amr_c_and_lowers_the_lm_loss(splits):
    """The paper's step 2: the small LM is tuned on the descriptions with LoRA-AMR before forecasting."""
    torch.manual_seed(0)
    off = build_model("llm-ts-net", splits.spec, **KW)  # no tuning stage
    off.fit_statistics(splits.train)
    torch.manual_seed(0)
    m = build_model("llm-ts-net", splits.spec, **{**KW, "text_tuning_steps": 15}, text_tuning_lr=1e-2)
    before = {n: p.detach().clone() for n, p in m.text.lm.named_parameters()}
    m.fit_statistics(splits.train)  # writes the descriptions, then tunes
    assert m.text_tuning_report["steps"] == 15
    changed = {n for n, p in m.text.lm.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.endswith("lora_C") for n in changed)  # W0, B and D frozen; only C moves
    rows = torch.arange(m.text.ids.shape[0])
    with torch.no_grad():  # on the same hidden tokens, the tuned LM predicts the descriptions better
        tuned = m.text.description_loss(rows, torch.Generator().manual_seed(7))
        untuned = off.text.description_loss(rows, torch.Generator().manual_seed(7))
        assert tuned < untuned - 0.05, (tuned, untuned)
        assert not torch.allclose(m.text(), off.text(), atol=1e-5)  # and it embeds them differently
    assert off.text_tuning_report is None and all(
        torch.count_nonzero(p) == 0 for n, p in off.text.lm.named_parameters() if n.endswith("lora_C"))
    with pytest.raises(StcastError, match="text_tuning_steps=-1"):
        build_model("llm-ts-net", splits.spec, **{**KW, "text_tuning_steps": -1})


def test_descriptions_read_the_training_steps_only(los_small):
    """The sensor descriptions come from the training part: changing every value after it changes no text;
    changing the training values does."""
    from stcast.engine.splits import prepare_windows

    def texts_with(factor_train, factor_rest):
        v = np.array(los_small.values, dtype=np.float32)
        sp = prepare_windows(los_small, "forecast", 12, 12)
        end = sp.train.fit_steps.stop
        v[:end] *= factor_train
        v[end:] *= factor_rest
        data = los_small.__class__(values=v, timestamps=los_small.timestamps, meta=los_small.meta,
                                   mask=los_small.observed(), adjacency=los_small.adjacency,
                                   node_ids=los_small.node_ids)
        m = build_model("llm-ts-net", sp.spec, **KW)
        m.fit_statistics(prepare_windows(data, "forecast", 12, 12).train)
        return m.text.texts()[:los_small.num_nodes]

    base = texts_with(1.0, 1.0)
    assert texts_with(1.0, 3.0) == base
    assert texts_with(1.5, 1.0) != base


def test_the_text_content_changes_the_forecast(model, batch):
    """What the descriptions say reaches the forecast: the same model with other texts forecasts differently,
    and a text about one sensor moves that sensor's forecast most."""
    model.eval()
    texts = model.text.texts()
    with torch.no_grad():
        y0 = model(batch).point
        other = list(texts)
        other[2] = "This sensor reports a severe accident: traffic has stopped completely on every lane."
        model.text.set_texts(other)
        model._text_cache = None
        y1 = model(batch).point
        model.text.set_texts(texts)
        model._text_cache = None
        assert torch.allclose(model(batch).point, y0)  # restored texts, restored forecast
    moved = (y1 - y0).abs().mean((0, 1, 3))
    assert moved[2] > 0 and int(moved.argmax()) == 2


@pytest.mark.parametrize("kw", [{}, {"text_sample": None}, {"text_scope": "window"}])
def test_embedding_only_the_window_texts_a_batch_reads_changes_no_loss_and_no_gradient(splits, batch, kw):
    """Issue 28's cost cut: a training step embeds only the window kinds its batch reads (and trims the padding
    every text shares). Against embedding all 51 kinds at full width, the loss and every gradient are the same."""
    torch.manual_seed(0)
    m = build_model("llm-ts-net", splits.spec, dropout=0.0, **KW, **kw)
    m.fit_statistics(splits.train)
    m.train()
    used = D.window_kinds(batch.x[..., 0], batch.x_mask[..., 0], m.node_mean, m.node_std)[:, m.text_of].unique()
    assert 0 < len(used) < D.NUM_KINDS  # the test would say nothing if the batch read every kind

    def loss_and_grads(all_kinds: bool):
        if all_kinds:
            full = m.text_embeddings
            m.text_embeddings = lambda kinds=None: full(None)  # the old step: every window text, every position
        torch.manual_seed(1)
        loss = task_loss(m(batch), batch, splits.scaler, "forecast")
        m.zero_grad()
        loss.backward()
        if all_kinds:
            del m.text_embeddings
        return loss.item(), {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}

    m._stale = None
    cut, cut_g = loss_and_grads(False)
    m._stale = None
    whole, whole_g = loss_and_grads(True)
    assert cut == pytest.approx(whole, rel=1e-6)
    assert cut_g.keys() == whole_g.keys() and any("text" in n for n in cut_g)  # the LM adapter learns in both
    for n in cut_g:
        torch.testing.assert_close(cut_g[n], whole_g[n], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("input_len,patch", [(12, 3), (4, 2), (7, 1), (8, 2)])
def test_the_default_patch_divides_any_input_length(splits, input_len, patch):
    """3 steps a patch where 3 divides the lookback, else 2, else 1: a registered dataset's own window (chickenpox's
    4 weekly lags) trains with the defaults; a patch_len given that does not divide it stays an error naming the
    ones that do."""
    from dataclasses import replace

    spec = replace(splits.spec, input_len=input_len)
    m = build_model("llm-ts-net", spec, **{k: v for k, v in KW.items() if k != "patch_len"})
    assert m.patch_len == patch and m.step_pos.shape[0] == input_len // patch
    with pytest.raises(StcastError, match=r"patch_len to one of \[1, 2, 4\]"):
        build_model("llm-ts-net", replace(splits.spec, input_len=4), **{**KW, "patch_len": 3})
