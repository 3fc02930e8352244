"""ST-LINK: SE-Attention, MRFFN and PFA do what the paper (summary) says, and the model trains on real data."""

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
from stcast.models.st_link import MRFFN, SERotary, _fiedler_rank

TINY = {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 4,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 10, "rope_theta": 10000.0}
KW = {"backbone": "tiny", "backbone_config": TINY, "num_layers": 4, "trainable_top": 2, "memory_slots": 16,
      "expert_dim": 16}


@pytest.fixture(scope="module")
def fc(los_small):
    return prepare_windows(los_small, "forecast", 12, 12)


def _model(splits, **kw):
    torch.manual_seed(0)
    return build_model("st-link", splits.spec, **{**KW, **kw})


def _scores(rot, q, k):
    q2, k2 = rot(q, k)
    return q2 @ k2.transpose(-1, -2)


def test_spatial_rotation_differs_per_node_and_cancels_for_equal_embeddings():
    torch.manual_seed(0)
    rot = SERotary(head_dim=16, num_nodes=5)
    rot.set_tokens(torch.zeros(5), torch.arange(5))  # one token per node, same time
    v = torch.randn(1, 1, 1, 16).expand(1, 1, 5, 16)  # the same vector at every node
    q2, _ = rot(v, v)
    assert not torch.allclose(q2[0, 0, 0, 8:], q2[0, 0, 1, 8:])  # spatial half rotated differently per node
    assert torch.allclose(q2[..., :8], v[..., :8])  # temporal half: time 0 everywhere, identity
    q, k = torch.randn(1, 2, 5, 16), torch.randn(1, 2, 5, 16)
    plain = q @ k.transpose(-1, -2)
    assert not torch.allclose(_scores(rot, q, k), plain, atol=1e-4)
    with torch.no_grad():
        rot.node_embedding.fill_(3.7)  # equal embeddings: the same rotation for every node
    assert torch.allclose(_scores(rot, q, k), plain, atol=1e-4)  # ... which cancels in q.k
    with torch.no_grad():
        rot.node_embedding.zero_()
    rot.set_tokens(torch.zeros(5), torch.arange(5))
    assert torch.allclose(rot(q, k)[0], q)  # zero embedding: the identity


def test_temporal_rope_depends_only_on_the_offset():
    torch.manual_seed(0)
    rot = SERotary(head_dim=16, num_nodes=1)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(m, n):
        rot.set_tokens(torch.tensor([float(m), float(n)]), torch.zeros(2, dtype=torch.long))
        q2, k2 = rot(torch.cat([q, q], 2), torch.cat([k, k], 2))
        return float((q2[0, 0, 0] @ k2[0, 0, 1]).detach())

    assert score(3, 1) == pytest.approx(score(10, 8), abs=1e-4)
    assert score(3, 1) == pytest.approx(score(-2, -4), abs=1e-4)
    assert score(3, 1) != pytest.approx(score(3, 2), abs=1e-3)


def test_se_rotation_is_installed_in_every_block_or_the_adapted_ones(fc):
    m = _model(fc)  # default: every block (the summary's component map: "LLM Block (xL): RevIN -> SE-Attention")
    assert all(layer.self_attn.rotary is m.se for layer in m.lm.stack.layers)
    top = _model(fc, se_blocks="adapted")
    rots = [layer.self_attn.rotary for layer in top.lm.stack.layers]
    assert rots[2] is top.se and rots[3] is top.se and rots[0] is not top.se and rots[1] is not top.se
    seen = []  # the frozen blocks really rotate with it: their attention reads the spatial angles
    m.se.register_forward_hook(lambda mod, args, out: seen.append(1))
    with torch.no_grad():
        m.eval()(fc.train.gather(fc.train.starts[:1]))
    assert len(seen) == 4
    with pytest.raises(StcastError, match="se_blocks='top'"):
        _model(fc, se_blocks="top")
    off = _model(fc, use_se=False)
    assert off.se is None and all(layer.self_attn.rotary is not m.se for layer in off.lm.stack.layers)
    b = fc.train.gather(fc.train.starts[:2])
    m.eval()
    y0 = m(b).point
    with torch.no_grad():
        m.se.node_embedding.mul_(3.0)
    assert not torch.allclose(m(b).point, y0)  # the node embeddings reach the output through attention


def test_memory_keys_move_by_ema_without_gradients_and_values_learn():
    torch.manual_seed(0)
    mem = MRFFN(None, 8, slots=6, top_k=2, momentum=0.2, experts=3, expert_k=2, expert_dim=8)
    with torch.no_grad():
        mem.down.normal_()
    assert not mem.keys.requires_grad
    h = torch.randn(2, 5, 8)
    before = mem.keys.clone()
    _, best = mem.retrieve(h)
    mem.train()
    out = mem(h)
    out.sum().backward()
    assert mem.values.grad is not None and mem.values.grad.abs().sum() > 0
    z = torch.nn.functional.normalize(h, dim=-1).reshape(-1, 8)
    for s in range(6):
        hit = best.reshape(-1) == s
        if hit.any():
            want = torch.nn.functional.normalize(0.8 * before[s] + 0.2 * z[hit].mean(0), dim=0)
            assert torch.allclose(mem.keys[s], want, atol=1e-5)
        else:
            assert torch.equal(mem.keys[s], before[s])
    mem.eval()
    frozen = mem.keys.clone()
    mem(h)
    assert torch.equal(mem.keys, frozen)  # no EMA at inference


def test_routing_respects_k_and_the_balance_loss_is_finite():
    torch.manual_seed(0)
    mem = MRFFN(None, 8, slots=6, top_k=3, experts=5, expert_k=2, expert_dim=8)
    mem(torch.randn(3, 7, 8))
    r = mem.last_routes
    assert r.shape == (21, 2) and (r[:, 0] != r[:, 1]).all() and r.max() < 5
    assert torch.isfinite(mem.aux_loss) and mem.aux_loss > 0
    with pytest.raises(StcastError, match="top_k"):
        MRFFN(None, 8, slots=4, top_k=5)
    with pytest.raises(StcastError, match="momentum"):
        MRFFN(None, 8, momentum=0.0)


def test_untrained_mrffn_is_the_pretrained_ffn(fc):
    m = _model(fc)
    layer = m.lm.stack.layers[3]
    h = torch.randn(2, 4, 32)
    assert torch.allclose(layer.mlp(h), layer.mlp.ffn(h))  # expert outputs start at zero


def test_frozen_layers_stay_frozen_and_the_adapted_ones_learn(fc):
    m = _model(fc)
    before = {n: p.detach().clone() for n, p in m.lm.named_parameters()}
    Trainer(m, TrainConfig(epochs=1, max_batches_per_epoch=3, lr=1e-2, progress=False)).fit(fc.train)
    changed = {n for n, p in m.lm.named_parameters() if not torch.equal(p, before[n])}
    for n in before:
        lower = n.startswith(("stack.layers.0.", "stack.layers.1."))
        if lower and "norm" not in n and ".rotary." not in n:  # the shared SE node embedding is ST-LINK's own
            assert n not in changed, n  # lower blocks frozen except their norms
        if ".mlp.ffn." in n:
            assert n not in changed, n  # the pretrained FFN inside MRFFN stays frozen
    assert any("layers.3.self_attn.q_proj" in n for n in changed)  # full attention trained in the top blocks
    assert any("layers.0.norm" in n for n in changed)  # PFA: lower norms trainable
    assert any("node_embedding" in n for n, p in m.named_parameters() if p.requires_grad)
    lora = _model(fc, attention="lora", lora_rank=2)
    assert any("lora_" in n for n, p in lora.named_parameters() if p.requires_grad)
    everything = _model(fc, trainable_top=4)
    assert everything.se is everything.lm.stack.layers[0].self_attn.rotary  # 0 % frozen: SE in every block


def test_model_forward_training_loss_and_switches(fc):
    m = _model(fc)
    b = fc.train.gather(fc.train.starts[:3])
    m.train()
    pred = m(b)
    assert pred.point.shape == (3, 12, 20, 1) and torch.isfinite(pred.point).all()
    assert set(pred.aux_losses) == {"moe_balance"}
    assert torch.isfinite(task_loss(pred, b, fc.scaler, "forecast"))
    bare = _model(fc, use_se=False, use_mrffn=False, use_revin=False)
    assert bare(b).aux_losses == {} and len(bare.mrffn) == 0
    assert sum(p.numel() for p in bare.parameters() if p.requires_grad) < \
        sum(p.numel() for p in m.parameters() if p.requires_grad)
    patched = _model(fc, patch_len=4)  # 3 temporal patches per node: the temporal RoPE sees real offsets
    seen = {}
    patched.lm.stack.layers[3].self_attn.register_forward_hook(lambda mod, a, o: seen.update(x=a[0]))
    assert patched(b).point.shape == (3, 12, 20, 1) and seen["x"].shape[1] == 60


def test_removing_the_lm_leaves_patch_embedding_and_head_only(fc):
    """`num_layers: 0` is Tan et al.'s "w/o LLM": no block, so no SE rotation or MRFFN; it still trains."""
    m = _model(fc, num_layers=0, trainable_top=0)
    assert len(m.lm.stack.layers) == 0 and m.se is None and len(m.mrffn) == 0
    b = fc.train.gather(fc.train.starts[:3])
    m.train()
    loss = task_loss(m(b), b, fc.scaler, "forecast")
    loss.backward()
    assert torch.isfinite(loss) and m.patch_embed.weight.grad.abs().sum() > 0 and m.head.weight.grad.abs().sum() > 0


def test_revin_undoes_a_per_node_shift_and_scale(fc):
    m = _model(fc).eval()
    b = fc.train.gather(fc.train.starts[:2])
    y0 = m(b).point
    N = b.x.shape[2]
    scale = torch.linspace(0.5, 3.0, N).view(1, 1, N, 1)  # a different affine map for every node
    shift = torch.linspace(-2.0, 4.0, N).view(1, 1, N, 1)
    b.x = torch.where(b.x_mask.bool(), b.x * scale + shift, torch.zeros(()))
    # RevIN per node: each node's normalised input is unchanged, its output follows its own affine map
    assert torch.allclose(m(b).point, y0 * scale + shift, atol=1e-3)


def test_bad_inputs_are_clear_errors(fc, los):
    m = _model(fc)
    other = prepare_windows(los.subset_nodes(np.arange(30)), "forecast", 12, 12)
    with pytest.raises(StcastError, match="N=20.*N=30"):
        m(other.train.gather(other.train.starts[:2]))
    with pytest.raises(StcastError, match="patch_len=5"):
        _model(fc, patch_len=5)


def test_fiedler_init_orders_a_path_graph():
    n = 6
    adj = np.zeros((n, n))
    perm = np.array([3, 0, 5, 1, 4, 2])  # a path visiting the nodes in this order
    for a, b in zip(perm[:-1], perm[1:]):
        adj[a, b] = adj[b, a] = 1
    rank = _fiedler_rank(adj).numpy()
    along = rank[perm]
    assert (np.diff(along) == 1).all() or (np.diff(along) == -1).all()  # neighbours get adjacent ranks


def test_fiedler_init_of_a_one_sensor_graph_is_rank_zero():
    """A table of one sensor with a graph (1 x 1) has no second eigenvector: it was an IndexError traceback."""
    assert _fiedler_rank(np.ones((1, 1))).tolist() == [0.0]


@pytest.mark.slow
def test_trains_on_real_data_with_the_pretrained_backbone(fc):
    torch.manual_seed(0)
    m = build_model("st-link", fc.spec, num_layers=2, trainable_top=1)
    before = evaluate(m, fc.val, 64)["mae"]
    Trainer(m, TrainConfig(epochs=3, lr=1e-3, progress=False)).fit(fc.train, fc.val)
    after = evaluate(m, fc.val, 64)["mae"]
    last = build_model("last-value", fc.spec)
    naive = evaluate(last, fc.val, 64)["mae"]
    # RevIN makes the untrained model already a mean forecaster; after 3 epochs it must beat last value too
    assert after < 0.9 * before and after < naive, (before, after, naive)


def test_node_sampling_trains_on_a_subset_and_scores_only_it(fc):
    from stcast.engine.tasks import task_loss

    m = _model(fc, node_sample=5)
    batch = fc.train.gather(fc.train.starts[:3])
    m.train()
    torch.manual_seed(1)
    pred = m(batch)
    assert pred.point.shape == (3, 12, 5, 1) and pred.node_index.shape == (5,)
    loss = task_loss(pred, batch, fc.scaler, "forecast")
    others = torch.ones(20, dtype=torch.bool)
    others[pred.node_index] = False
    batch.y[:, :, others] += 100.0  # targets of nodes this step did not see must not move the loss
    assert torch.allclose(loss, task_loss(pred, batch, fc.scaler, "forecast"))
    m.eval()
    full = m(batch)
    assert full.point.shape == (3, 12, 20, 1) and full.node_index is None
    with pytest.raises(StcastError, match="node_sample=0"):
        _model(fc, node_sample=0)
