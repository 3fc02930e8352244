"""Adaptation policies: exact trainable counts, frozen weights untouched by training, LoRA/LoRA-AMR semantics."""

import pytest
import torch

from stcast.errors import StcastError
from stcast.nn.adapt import AdaptPolicy, LoRAAMRLinear, adapt, count_parameters
from stcast.nn.backbones import load_backbone

CFG = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 3,
       "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100, "rope_theta": 10000.0}
# by hand: d=64, kv width 32 (2 kv heads x 16); per layer q 4096, k 2048, v 2048, o 4096, SwiGLU 3*64*128, norms 2*64
LAYER = 4096 + 2048 + 2048 + 4096 + 3 * 64 * 128 + 128
TOTAL = 100 * 64 + 3 * LAYER + 64
NORMS = 3 * 128 + 64


def _bb():
    torch.manual_seed(0)
    return load_backbone("t", config=CFG)


def test_total_is_what_we_count_by_hand():
    assert count_parameters(_bb())["total"] == TOTAL == 117440


@pytest.mark.parametrize("policy, trainable, added", [
    (AdaptPolicy(trainable_top=0, attention="frozen"), NORMS, 0),
    (AdaptPolicy(trainable_top=2, attention="full"), NORMS + 2 * (4096 + 2048 + 2048 + 4096), 0),
    # LoRA r=4 on q, k, v of the top layer: r (in + out) each
    (AdaptPolicy(trainable_top=1, attention="lora", lora_rank=4), NORMS + 4 * (128 + 96 + 96), 4 * (128 + 96 + 96)),
    # LoRA-AMR r=4 on q, v of the top layer: only C (out x r/2) trains; B (r x in) and D (r/2 x r) are frozen
    (AdaptPolicy(trainable_top=1, attention="lora-amr", lora_rank=4, lora_targets=("q_proj", "v_proj")),
     NORMS + 64 * 2 + 32 * 2, (4 * 64 + 2 * 4 + 64 * 2) + (4 * 64 + 2 * 4 + 32 * 2)),
    (AdaptPolicy(trainable_top=1, attention="frozen", train_norms=False, train_ffn_top=True), 3 * 64 * 128, 0),
])
def test_trainable_counts_are_exact(policy, trainable, added):
    report = adapt(_bb(), policy)
    assert report["trainable"] == trainable
    assert report["total"] == TOTAL + added


def test_frozen_weights_do_not_change_under_training():
    bb = _bb()
    adapt(bb, AdaptPolicy(trainable_top=1, attention="lora", lora_rank=4))
    before = {n: p.detach().clone() for n, p in bb.named_parameters()}
    opt = torch.optim.AdamW(bb.parameters(), lr=1e-2, weight_decay=0.1)  # every parameter offered on purpose
    for _ in range(3):
        loss = bb(torch.randn(2, 5, 64)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    changed = {n for n, p in bb.named_parameters() if not torch.equal(p, before[n])}
    trainable = {n for n, p in bb.named_parameters() if p.requires_grad}
    assert changed == trainable
    assert any("layers.2.self_attn.q_proj.lora_B" in n for n in changed)
    assert not any("layers.0.self_attn" in n or "mlp" in n for n in changed)  # lower attention, all FFNs frozen
    assert any("norm" in n and "layers.0" in n for n in changed)  # norms train everywhere (PFA)


def test_lora_starts_at_the_pretrained_function_and_only_top_layers_get_adapters():
    bb = _bb()
    x = torch.randn(1, 6, 64)
    with torch.no_grad():
        base = bb(x)
    adapt(bb, AdaptPolicy(trainable_top=1, attention="lora", lora_rank=4, lora_targets=("q_proj", "o_proj")))
    names = {n.split(".lora_")[0] for n, _ in bb.named_parameters() if "lora_" in n}
    assert names == {"stack.layers.2.self_attn.q_proj", "stack.layers.2.self_attn.o_proj"}
    with torch.no_grad():
        assert torch.allclose(bb(x), base, atol=1e-6)  # lora_B starts at zero


def test_lora_amr_gradients_reach_only_c():
    torch.manual_seed(0)
    layer = LoRAAMRLinear(torch.nn.Linear(8, 6), rank=4, alpha=8)
    layer.base.requires_grad_(False)
    x = torch.randn(3, 8, requires_grad=True)
    assert torch.allclose(layer(x), layer.base(x))  # C starts at zero
    layer(x).sum().backward()
    assert layer.lora_C.grad is not None and layer.lora_C.grad.abs().sum() > 0
    assert layer.lora_B.grad is None and layer.lora_D.grad is None
    assert x.grad is not None  # gradients still flow to the input through the frozen factors
    with torch.no_grad():
        layer.lora_C.normal_()
        want = layer.base(x) + 2.0 * x @ (layer.lora_C @ layer.lora_D @ layer.lora_B).t()  # W0 x + (a/r) C D B x
        assert torch.allclose(layer(x), want, atol=1e-5)


def test_methods_own_modules_keep_training():
    bb = _bb()
    bb.stack.layers[0].self_attn.enable_gate()  # a module the method adds (FactoST gate)
    report = adapt(bb, AdaptPolicy(trainable_top=0, attention="frozen"))
    gate = bb.stack.layers[0].self_attn.gate
    assert all(p.requires_grad for p in gate.parameters())
    assert report["trainable"] == NORMS + 64 * 64 + 64


def test_bad_policies():
    with pytest.raises(StcastError, match="attention='partial'"):
        AdaptPolicy(attention="partial")
    with pytest.raises(StcastError, match="LoRA targets"):
        AdaptPolicy(lora_targets=("query",))
    with pytest.raises(StcastError, match="odd"):
        AdaptPolicy(attention="lora-amr", lora_rank=5)
    with pytest.raises(StcastError, match="has 3 layers"):
        adapt(_bb(), AdaptPolicy(trainable_top=4))
