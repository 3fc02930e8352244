"""U-STS-LLM: each mechanism does what section III of the paper says, and the model trains on real data."""

import numpy as np
import pytest
import torch

from stcast.config import TrainConfig
from stcast.engine.scoring import evaluate
from stcast.engine.splits import prepare_windows
from stcast.engine.tasks import task_loss
from stcast.engine.trainer import Trainer
from stcast.errors import StcastError
from stcast.models.registry import build_model
from stcast.models.ust_sllm import ARGRU, ConditionalInputScaling, functional_graph

TINY = {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 10, "rope_theta": 10000.0}
KW = {"backbone": "tiny", "backbone_config": TINY, "num_layers": 3, "groups": 8, "gru_hidden": 16, "guidance_hidden": 8,
      "bias_hidden": 8, "trainable_top": 1, "lora_rank": 4}


@pytest.fixture(scope="module")
def fc(los_small):
    return prepare_windows(los_small, "forecast", 12, 12)


@pytest.fixture(scope="module")
def imp(los_small):
    return prepare_windows(los_small, "impute", 12, 12, missing_kw={"r_min": 0.7, "r_max": 0.8})


def _model(splits, **kw):
    torch.manual_seed(0)
    m = build_model("ust-sllm", splits.spec, **{**KW, **kw})
    m.fit_statistics(splits.train)
    return m


def test_frozen_backbone_weights_do_not_change_and_lora_does(fc):
    m = _model(fc)
    lm = {n: p.detach().clone() for n, p in m.lm.named_parameters()}
    Trainer(m, TrainConfig(epochs=1, max_batches_per_epoch=4, lr=1e-2, progress=False)).fit(fc.train)
    changed = {n for n, p in m.lm.named_parameters() if not torch.equal(p, lm[n])}
    assert changed and all("lora_" in n and "layers.2." in n for n in changed)  # only the top block's LoRA
    assert not any(p.requires_grad for n, p in m.lm.named_parameters() if "mlp" in n or "norm" in n)
    assert m.adapt_report["trainable"] == 4 * ((32 + 32) + (32 + 16) + (32 + 16))  # LoRA r=4 on q, k, v


def test_bias_reaches_only_the_top_blocks(fc):
    m = _model(fc)
    seen = {}
    for i, layer in enumerate(m.lm.stack.layers):
        layer.self_attn.register_forward_hook(lambda mod, args, out, i=i: seen.__setitem__(i, args[2]))
    batch = fc.train.gather(fc.train.starts[:3])
    m.eval()
    with torch.no_grad():
        m(batch)
    assert seen[0] is None and seen[1] is None
    assert seen[2] is not None and seen[2].shape == (3, 1, 12, 12)
    off = _model(fc, use_ge=False)
    assert off.bias is None


def test_bias_follows_eq_9(fc):
    m = _model(fc)
    ge = m.bias
    xs = fc.train.gather(fc.train.starts[:2]).x
    z = ge.f_gate(ge.differential_signal(xs).transpose(1, 2))
    k, g = ge.k_head(z).transpose(1, 2), ge.g_head(z).squeeze(1)
    p = torch.tanh(ge.P * k)
    want = ge.mu * torch.einsum("bi,bj->bij", g, g) * torch.einsum("bin,nm,bjm->bij", p, ge.A, p)
    assert torch.allclose(ge(xs)[:, 0], want, atol=1e-5)
    with torch.no_grad():
        ge.mu.zero_()
    assert torch.count_nonzero(ge(xs)) == 0  # mu = 0 switches the prior off


def test_functional_graph_is_profile_similarity(los_small):
    v = np.asarray(los_small.values[:288], dtype=np.float32)
    obs = np.ones_like(v, dtype=bool)
    A = functional_graph(v, obs, np.arange(288), 288)
    assert A.shape == (20, 20) and np.allclose(np.diag(A), 1, atol=1e-5) and np.allclose(A, A.T, atol=1e-6)
    v2 = v.copy()
    v2[:, 1] = 3 * v[:, 0] + 5  # an affine copy of node 0 has the same profile shape
    assert functional_graph(v2, obs, np.arange(288), 288)[0, 1] == pytest.approx(1.0, abs=1e-5)


def test_inverse_scaling_undoes_the_scaling():
    cis = ConditionalInputScaling()
    x = torch.randn(4, 12, 5, 1)
    mask = torch.ones_like(x, dtype=torch.bool)
    cis.train()
    s = cis(x, mask)
    assert s.shape == (4, 1, 1, 1)
    with torch.no_grad():  # eq. 1 by hand: psi = mean of the last step, (da, db) = tanh(g_phi(psi))
        psi = x[:, -1].mean((1, 2), keepdim=True).view(4, 1)
        da, db = torch.tanh(cis.g_phi(psi)).unbind(-1)
        a, b = cis.center + da * cis.radius, cis.center + db * cis.radius
    lo, hi = torch.minimum(a, b).view(4, 1, 1, 1), torch.maximum(a, b).view(4, 1, 1, 1)
    assert ((s >= lo - 1e-6) & (s <= hi + 1e-6)).all()  # s ~ U(a, b), each sample its own interval
    s.sum().backward()
    assert cis.center.grad is not None and cis.g_phi[0].weight.grad is not None  # reparameterised
    cis.eval()
    assert torch.allclose(cis(x, mask), ((a + b) / 2).view(4, 1, 1, 1), atol=1e-6)  # the mean at inference


def test_model_output_is_rescaled_by_s_inverse(fc):
    """With s forced to 2 and the inputs halved, the model sees the same X_s and returns outputs / 2."""
    m = _model(fc).eval()
    batch = fc.train.gather(fc.train.starts[:2])
    m.scaling.forward = lambda x, mask: x.new_full((x.shape[0], 1, 1, 1), 2.0)
    with torch.no_grad():
        y2 = m(batch).point
        half = type(batch)(**{**batch.__dict__, "x": batch.x / 2})
        m.scaling.forward = lambda x, mask: x.new_full((x.shape[0], 1, 1, 1), 4.0)
        y4 = m(half).point
    assert torch.allclose(y4 * 2, y2, atol=1e-5)


def test_argru_reads_both_directions():
    """Eq. 7's ARGRU is bidirectional: a missing entry's estimate depends on the observed values after it
    (the backward pass) as well as before it."""
    torch.manual_seed(0)
    gru = ARGRU(1, 8)
    x = torch.randn(1, 10, 2, 1)
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[:, 4] = False  # step 4 missing at both nodes
    out = gru(x * mask, mask)
    later, earlier = x.clone(), x.clone()
    later[:, 8] += 3.0  # an observed value after the gap
    earlier[:, 1] += 3.0  # and one before it
    assert not torch.allclose(gru(later * mask, mask)[:, 4], out[:, 4])
    assert not torch.allclose(gru(earlier * mask, mask)[:, 4], out[:, 4])


def test_argru_keeps_observed_values_and_fills_missing():
    torch.manual_seed(0)
    gru = ARGRU(1, 8)
    x = torch.randn(2, 10, 3, 1)
    mask = torch.rand_like(x) > 0.5
    out = gru(x * mask, mask)
    assert torch.equal(out[mask], x[mask])
    assert not torch.allclose(out[~mask], torch.zeros_like(out[~mask]))
    x2 = x.clone()
    x2[~mask] = 100.0  # values behind the mask are never read
    assert torch.equal(gru(x2 * mask, mask), out)


def test_imputation_loss_ignores_observed_entries(imp):
    m = _model(imp)
    batch = imp.train.gather(imp.train.starts[:4])
    pred = m(batch)
    assert pred.point.shape == batch.y.shape
    loss = task_loss(pred, batch, imp.scaler, "impute")
    moved = pred.point.detach().clone()
    keep = batch.eval_mask.bool()
    moved[~keep] += 50.0  # change every entry the loss must not see
    moved_loss = task_loss(type(pred)(moved), batch, imp.scaler, "impute")
    assert torch.allclose(loss, moved_loss)
    assert 0.6 < (~batch.x_mask.bool() & batch.y_mask.bool()).float().mean() < 0.9  # 70-80% hidden


def test_fusion_gate_and_switches(fc):
    m = _model(fc)
    assert 0 < float(m.fusion_lambda.detach()) < 1
    bare = _model(fc, use_gs=False, use_ste=False, use_scaling=False)
    assert bare.fusion_lambda is None and not bare.guides and bare.scaling is None
    out = bare(fc.train.gather(fc.train.starts[:2])).point
    assert out.shape == (2, 12, 20, 1)
    horizon = _model(fc, guidance="horizon")
    assert not horizon.guides["forecast"].per_step and horizon.guides["forecast"].out.out_features == 12
    assert not m.guides["forecast"].per_step  # auto: 12 -> 12 is not one season, so horizon guidance
    assert _model(fc, guidance="paper").guides["forecast"].per_step
    from dataclasses import replace

    season = replace(fc.spec, steps_per_day=12)  # a horizon of one season: auto is the paper's per-step guidance
    assert build_model("ust-sllm", season, **KW).guides["forecast"].per_step
    with pytest.raises(StcastError, match="guidance='oracle'"):
        _model(fc, guidance="oracle")
    with pytest.raises(StcastError, match="trainable_top=5"):
        _model(fc, trainable_top=5)


def test_multitask_returns_both_outputs(los_small):
    mt = prepare_windows(los_small, "multitask", 12, 12, missing_kw={"r_min": 0.2, "r_max": 0.3})
    m = _model(mt)
    batch = mt.train.gather(mt.train.starts[:3])
    pred = m(batch)
    assert pred.point.shape == (3, 12, 20, 1) and pred.imputed.shape == (3, 12, 20, 1)
    assert torch.isfinite(task_loss(pred, batch, mt.scaler, "multitask", alpha=0.5))


def test_wrong_node_count_is_a_clear_error(fc, los):
    m = _model(fc)
    other = prepare_windows(los.subset_nodes(np.arange(30)), "forecast", 12, 12)
    with pytest.raises(StcastError, match="N=20.*N=30.*cluster"):
        m(other.train.gather(other.train.starts[:2]))


@pytest.mark.slow
def test_trains_on_real_data_with_the_pretrained_backbone(fc):
    torch.manual_seed(0)
    m = build_model("ust-sllm", fc.spec, num_layers=2, trainable_top=1, groups=8)
    before = evaluate(m, fc.val, 64)["mae"]
    Trainer(m, TrainConfig(epochs=3, lr=2e-3, progress=False)).fit(fc.train, fc.val)
    after = evaluate(m, fc.val, 64)["mae"]
    assert after < 0.7 * before, (before, after)


def test_patching_groups_steps_into_tokens_and_pools_the_bias(los_small):
    long = prepare_windows(los_small, "forecast", 24, 12)
    m = _model(long, patch_len=6)
    seen = {}
    m.lm.stack.layers[2].self_attn.register_forward_hook(lambda mod, args, out: seen.update(x=args[0], b=args[2]))
    batch = long.train.gather(long.train.starts[:3])
    m.eval()
    with torch.no_grad():
        out = m(batch).point
        step_bias = m.bias(m.scaling(batch.x, batch.x_mask.bool()) * batch.x)
    assert out.shape == (3, 12, 20, 1)
    assert seen["x"].shape[:2] == (3, 4) and seen["b"].shape == (3, 1, 4, 4)  # 24 steps -> 4 tokens of 6
    assert torch.allclose(seen["b"][:, 0, 1, 2], step_bias[:, 0, 6:12, 12:18].mean((1, 2)), atol=1e-5)
    for bad in (5, 0):
        with pytest.raises(StcastError, match=f"patch_len={bad}"):
            _model(long, patch_len=bad)


def test_long_inputs_default_to_hour_patches(los):
    long = prepare_windows(los.subset_nodes(np.arange(20)), "forecast", 288, 12)
    assert _model(long).patch_len == 12  # 24 tokens per sample
    assert _model(prepare_windows(los.subset_nodes(np.arange(20)), "forecast", 12, 12)).patch_len == 1


def test_joint_training_eq15_reports_forecast_and_reconstruction(los_small):
    """task 'multitask' (eq. 15) trains one model on both losses; the run reports the forecast on plain forecast
    windows and impute_mae on the hidden inputs of the same test windows."""
    from stcast.engine.experiment import Experiment

    exp = Experiment("ust-sllm", los_small, task="multitask", model_kw=KW,
                     missing_kw={"r_min": 0.5, "r_max": 0.6},
                     train=TrainConfig(epochs=1, max_batches_per_epoch=2, progress=False))
    row = exp.run().row()
    assert np.isfinite(row["mae"]) and np.isfinite(row["impute_mae"]) and row["impute_mae"] > 0
    clean = evaluate(exp.model, exp.splits.test.without_hiding())
    assert row["mae"] == pytest.approx(clean["mae"])  # the forecast columns are the unhidden windows'
    hidden = evaluate(exp.model, exp.splits.test.hiding_from_both_paths())["mae"]  # forecast from hidden inputs
    assert row["hidden_mae"] == pytest.approx(hidden) and row["hidden_mae"] != pytest.approx(row["mae"])


def _hide_more(batch, frac=0.3, seed=1):
    """The same multi-task batch with another `frac` of the shown inputs hidden for the imputation loss."""
    more = (torch.rand(batch.x.shape, generator=torch.Generator().manual_seed(seed)) < frac) & batch.x_mask.bool()
    return type(batch)(**{**batch.__dict__, "x": torch.where(more, 0.0, batch.x), "x_mask": batch.x_mask & ~more,
                          "eval_mask": batch.eval_mask | more})


def test_multitask_forecast_reads_the_unmasked_input(los_small):
    """Eq. 15: the prediction path reads the unmasked window, only the imputation path the masked one."""
    mt = prepare_windows(los_small, "multitask", 12, 12, missing_kw={"r_min": 0.5, "r_max": 0.6})
    batch = mt.train.gather(mt.train.starts[:3])
    assert batch.x_shown is not None and (batch.x_shown_mask & ~batch.x_mask).any()
    more = _hide_more(batch)
    m = _model(mt).eval()
    with torch.no_grad():
        a, b = m(batch), m(more)
        alone = m(batch.shown())  # what a forecast-only batch of the same window gives
    assert torch.equal(a.point, b.point) and torch.allclose(a.point, alone.point, atol=1e-6)
    assert not torch.allclose(a.imputed, b.imputed)  # the imputation path does read the masked input
    one_pass = _model(mt, unmasked_forecast=False).eval()  # the ablation: one forward on the masked window
    with torch.no_grad():
        assert not torch.allclose(one_pass(batch).point, one_pass(more).point)


def test_spatial_order_gives_neighbours_adjacent_indices():
    from stcast.data.transforms import spatial_order

    rng = np.random.default_rng(0)
    line = rng.permutation(40).astype(float)  # 40 points on a line, in shuffled file order
    coords = np.stack([line, 0.01 * rng.standard_normal(40)], 1)
    order = spatial_order(coords, groups=8)
    assert sorted(order) == list(range(40))
    steps = np.abs(np.diff(line[order]))
    assert steps.max() <= 2 and np.median(steps) == 1  # walking the indices walks along the line
    assert list(spatial_order(np.zeros((5, 2)), 3)) == list(range(5))  # one place for all: the file order


def test_grouped_conv_sees_nodes_in_spatial_order(fc, los_small):
    """Sec. IV-A: neighbouring sensors get adjacent indices before eq. 4's grouped convolution."""
    m = _model(fc)
    order = m.ste.node_order
    assert sorted(order.tolist()) == list(range(20)) and not torch.equal(order, torch.arange(20))
    assert torch.equal(_model(fc, node_order="file").ste.node_order, torch.arange(20))
    batch = fc.train.gather(fc.train.starts[:2])
    file_order = _model(fc, node_order="file").ste
    file_order.load_state_dict({**m.ste.state_dict(), "node_order": torch.arange(20)})
    with torch.no_grad():  # the spatially ordered STE equals the file-order one fed the permuted nodes
        want = file_order(batch.x[:, :, order], batch.tod_x, batch.dow_x)
        assert torch.allclose(m.ste(batch.x, batch.tod_x, batch.dow_x), want, atol=1e-6)
        assert not torch.allclose(file_order(batch.x, batch.tod_x, batch.dow_x), want, atol=1e-4)
    with pytest.raises(StcastError, match="node_order='random'"):
        _model(fc, node_order="random")


def test_forecast_guidance_is_a_per_node_gru_forecast_fused_by_eq_14(fc):
    """Eq. 7: the guidance runs a GRU over each node's own input (node j's input moves node j's guidance and no
    other's); eq. 14: the output is (1 - lambda) LM head + lambda guidance, before s^-1."""
    m = _model(fc).eval()
    batch = fc.train.gather(fc.train.starts[:2])
    guide = m.guides["forecast"]
    moved = batch.x.clone()
    moved[:, :, 3] = moved[:, :, 3] * -1.5 + 0.7
    with torch.no_grad():
        g0, g1 = guide(batch.x), guide(moved)
        others = [n for n in range(20) if n != 3]
        assert not torch.allclose(g0[:, :, 3], g1[:, :, 3]) and torch.allclose(g0[:, :, others], g1[:, :, others])
        seen = {}
        m.heads["forecast"].register_forward_hook(lambda mod, a, out: seen.update(head=out))
        guide.register_forward_hook(lambda mod, a, out: seen.update(guide=out))
        m.scaling.register_forward_hook(lambda mod, a, out: seen.update(s=out))
        y = m(batch).point
        lam = m.fusion_lambda
        assert torch.allclose(y, ((1 - lam) * seen["head"] + lam * seen["guide"]) / seen["s"], atol=1e-5)
        assert seen["guide"].abs().mean() > 1e-3  # the guidance is a real signal, not a zero term


def test_the_attention_bias_of_a_one_step_window_is_finite_and_trains():
    """A 1-step window: the differential signal is 0, and was 0 / (sample std of one value) = NaN, NaN gradients."""
    from stcast.models.ust_sllm import DynamicAttentionBias

    torch.manual_seed(0)
    bias = DynamicAttentionBias(num_nodes=5, input_len=1, channels=1)
    xs = torch.randn(4, 1, 5, 1)
    out = bias(xs)
    out.sum().backward()
    assert out.shape == (4, 1, 1, 1) and torch.isfinite(out).all()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in bias.parameters())
    longer = DynamicAttentionBias(num_nodes=5, input_len=12, channels=1)
    s = longer.differential_signal(torch.randn(4, 12, 5, 1))
    assert torch.allclose(s.std(1), torch.ones(4, 1), atol=1e-5)  # windows of 2+ steps: normalised as before
