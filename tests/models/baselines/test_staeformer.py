"""STAEformer's mechanisms, each with a test that fails when the mechanism is removed or altered."""

import pytest
import torch

from stcast.config import TrainConfig
from stcast.engine.scoring import evaluate
from stcast.engine.trainer import Trainer
from stcast.models.baselines.staeformer import STAEformer, _AxisLayer
from stcast.models.registry import build_model

SMALL = {"input_embedding_dim": 8, "tod_embedding_dim": 8, "dow_embedding_dim": 8, "adaptive_embedding_dim": 16,
         "feed_forward_dim": 32, "num_heads": 2, "temporal_layers": 1, "spatial_layers": 1, "dropout": 0.0}


@pytest.fixture
def batch(splits):
    return splits.train.gather(splits.train.starts[:3])


def test_paper_sizes_by_default(splits):
    m = build_model("staeformer", splits.spec)
    assert m.adaptive.shape == (12, 20, 80)  # E_a: one 80-wide vector per input step and node
    assert len(m.temporal) == 3 and len(m.spatial) == 3 and m.temporal[0].heads == 4
    assert m.output_proj.in_features == 12 * 152  # 24 + 24 + 24 + 80, a node's L x D features flattened
    assert isinstance(m, STAEformer) and m.name == "staeformer"


def test_the_adaptive_embedding_is_per_node_and_per_input_step(splits, batch):
    m = build_model("staeformer", splits.spec, **SMALL).eval()
    z0 = m.embed(batch)
    with torch.no_grad():
        m.adaptive[4, 7] += 1.0  # one (step, node) entry
    diff = (m.embed(batch) - z0).abs().sum(-1)  # (B, L, N)
    assert diff[:, 4, 7].min() > 0  # that step of that node, in every sample
    diff[:, 4, 7] = 0
    assert diff.max() == 0  # and nothing else
    assert z0.shape[-1] == 8 * 3 + 16
    no_a = build_model("staeformer", splits.spec, **{**SMALL, "use_adaptive": False})
    assert no_a.adaptive is None and no_a.embed(batch).shape[-1] == 8 * 3


def test_calendar_embeddings_read_each_input_steps_own_slot(splits, batch):
    m = build_model("staeformer", splits.spec, **SMALL).eval()
    z0 = m.embed(batch)
    other = type(batch)(**{**batch.__dict__, "tod_x": batch.tod_x.clone()})
    other.tod_x[:, 2] = (other.tod_x[:, 2] + 37) % splits.spec.steps_per_day
    diff = (m.embed(other) - z0).abs().sum((0, 2, 3))  # per step
    assert diff[2] > 0 and diff.sum() == diff[2]


def test_temporal_attention_never_mixes_sensors_and_spatial_never_mixes_steps():
    torch.manual_seed(0)
    z = torch.randn(2, 12, 9, 16)
    for axis, keeps in ((1, 2), (2, 1)):  # temporal: axis 1 (keeps nodes apart); spatial: axis 2 (keeps steps)
        layer = _AxisLayer(16, 2, 32, 0.0, axis=axis).eval()
        out = layer(z)
        bumped = z.clone()
        bumped.select(keeps, 3).add_(1.0)  # perturb one node (temporal) or one step (spatial)
        delta = (layer(bumped) - out).abs()
        touched = delta.select(keeps, 3)
        assert touched.amax(-1).min() > 0  # the perturbed node's every step (or step's every node) moves
        rest = torch.cat([delta.narrow(keeps, 0, 3), delta.narrow(keeps, 4, delta.shape[keeps] - 4)], keeps)
        assert rest.max() == 0  # no other node (step) moves
        # and along the attended axis the layer does mix: one step (node) changes the others
        probe = z.clone()
        probe.select(axis, 0).add_(1.0)
        moved = (layer(probe) - out).abs().select(axis, 5)
        assert moved.max() > 0


def test_the_regression_layer_reads_every_step_of_a_node(splits, batch):
    m = build_model("staeformer", splits.spec, **{**SMALL, "temporal_layers": 0, "spatial_layers": 0}).eval()
    base = m(batch).point
    for t in (0, 11):  # the first and the last input step both reach the first output step
        other = type(batch)(**{**batch.__dict__, "x": batch.x.clone()})
        other.x[:, t, 5] += 1.0
        d = (m(other).point - base).abs()
        assert d[:, 0, 5].min() > 0 and d[:, :, [i for i in range(20) if i != 5]].max() == 0


def test_every_switch_changes_the_output_for_the_same_weights_and_input(splits, batch):
    torch.manual_seed(0)
    base = build_model("staeformer", splits.spec, **SMALL).eval()
    ref = base(batch).point
    for switch in ({"use_adaptive": False}, {"use_tod": False}, {"use_dow": False}, {"temporal_layers": 0},
                   {"spatial_layers": 0}, {"mixed_proj": False}):
        torch.manual_seed(0)
        other = build_model("staeformer", splits.spec, **{**SMALL, **switch}).eval()
        own = other.state_dict()  # the same weights wherever the shapes agree
        other.load_state_dict({k: (v if k in own and own[k].shape == v.shape else own[k])
                               for k, v in base.state_dict().items() if k in own}, strict=False)
        out = other(batch).point
        assert out.shape == ref.shape and not torch.allclose(out, ref), switch


def test_trains_through_the_engine_and_beats_its_untrained_self(splits):
    torch.manual_seed(0)
    m = build_model("staeformer", splits.spec, **SMALL)
    before = evaluate(m, splits.val, 64)["mae"]
    Trainer(m, TrainConfig(epochs=3, lr=3e-3, weight_decay=3e-4, progress=False)).fit(splits.train, splits.val)
    after = evaluate(m, splits.val, 64)["mae"]
    assert after < 0.8 * before, f"val MAE {before:.3f} -> {after:.3f}"


def test_attention_runs_on_the_fused_kernel_and_the_stacks_equal_their_layers_applied_one_by_one(splits, batch):
    """The layers fold the leading axes so attention gets 4-D operands (PyTorch's fused CPU kernel takes only
    those), and the model lays the temporal stack out once: the same output as each layer on (B, L, N, D)."""
    torch.manual_seed(0)
    m = build_model("staeformer", splits.spec, **{**SMALL, "temporal_layers": 2, "spatial_layers": 2}).eval()
    with torch.no_grad(), torch.profiler.profile() as prof:
        out = m(batch).point
    ops = {e.key for e in prof.key_averages()}
    assert any("flash_attention" in k for k in ops) and "aten::_scaled_dot_product_attention_math" not in ops
    with torch.no_grad():
        z = m.embed(batch)
        for layer in [*m.temporal, *m.spatial]:
            z = layer(z)  # each layer with its own transposes, as the paper draws them
        B, L, N, _ = z.shape
        ref = m.output_proj(z.transpose(1, 2).reshape(B, N, -1)).view(B, N, m.spec.horizon, -1).transpose(1, 2)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
