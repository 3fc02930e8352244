"""Every ablation switch of every LLM method changes the output for the same weights and the same input.

A switch checked for shape only passes whatever it does. Here the model with the switch flipped receives every
weight of the default model that it still has (same name, same shape), and must forecast differently on the
same batch. Weights that start at zero (LoRA's second factor, MRFFN's output layer, LoRA-AMR's C: an untrained
model is the pretrained one by design) are first given small random values, as training would, in the default
model and in the weights only the flipped model has, so a switch that removes or adds them is visible.
"""

import pytest
import torch

from stcast.models.factost import UTPBackbone, UTPConfig
from stcast.models.registry import build_model

TINY_LLAMA = {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3,
              "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 10, "rope_theta": 10000.0}
UST = {"backbone": "tiny", "backbone_config": TINY_LLAMA, "num_layers": 3, "groups": 8, "gru_hidden": 16,
       "guidance_hidden": 8, "bias_hidden": 8, "trainable_top": 1, "lora_rank": 4}
LINK = {"backbone": "tiny", "backbone_config": {**TINY_LLAMA, "num_hidden_layers": 2}, "num_layers": 2,
        "trainable_top": 1, "memory_slots": 16, "expert_dim": 16}

SWITCHES = {
    "ust-sllm": (UST, [{"use_scaling": False}, {"use_ste": False}, {"use_gs": False}, {"use_ge": False},
                       {"guidance": "paper"}, {"node_order": "file"}, {"identity": True}, {"causal": False}]),
    "st-link": (LINK, [{"use_se": False}, {"use_mrffn": False}, {"use_revin": False}, {"se_blocks": "adapted"},
                       {"identity": "none"}, {"identity": "add"}, {"attention": "lora"}]),
    "factost": ({}, [{"use_stmf": False}, {"use_stf": False}, {"use_dspa": False}, {"stf_lag": "own"},
                     {"calendar": "steps"}, {"full_horizon": False}, {"identity_scale": "matched"},
                     {"backbone_layers": 1}]),
    "st-vlm": ({}, [{"use_bias": False}, {"finetune": False}, {"use_image": False}, {"channels": ("dtw",)},
                    {"use_prompt": False}, {"identity": True}, {"max_lag": 3}]),
    # the description-tuning stage changes weights, not the forward: its own test (test_llm_ts_net.py)
    "llm-ts-net": ({"writer": "template", "text_tuning_steps": 0},
                   [{"use_text": False}, {"shuffle_text": True}, {"pool_size": 0}, {"kv_groups": 4},
                    {"identity": False}, {"text_scope": "node"}, {"lm_adapter": "none"}]),
}
CASES = [(name, i) for name, (_, switches) in SWITCHES.items() for i in range(len(switches))]


@pytest.fixture(scope="module")
def utp_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("utp") / "utp.pt"
    UTPBackbone(UTPConfig(variant="minuscule", max_context=64, min_context=16, max_horizon=32)).save(path)
    return str(path)


def _build(name, splits, kw, utp_ckpt):
    torch.manual_seed(0)
    if name == "factost":
        kw = {"checkpoint": utp_ckpt, **kw}
    m = build_model(name, splits.spec, **kw)
    m.fit_statistics(splits.train)
    return m.eval()


def _wake_zero_weights(model):
    """Give every all-zero weight small random values (what training does to them)."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.is_floating_point() and p.numel() and not p.any():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)


@pytest.mark.parametrize("name,index", CASES, ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in SWITCHES[n][1][i].items())}"
                                                     for n, i in CASES])
def test_every_switch_changes_the_output_for_the_same_weights(splits, utp_ckpt, name, index):
    base_kw, switches = SWITCHES[name]
    switch = switches[index]
    default = _build(name, splits, base_kw, utp_ckpt)
    _wake_zero_weights(default)
    flipped = _build(name, splits, {**base_kw, **switch}, utp_ckpt)
    own = flipped.state_dict()
    # the weights both have; a fitted order is the switch itself (node_order), so it stays the flipped model's
    shared = {k: v for k, v in default.state_dict().items() if k in own and own[k].shape == v.shape
              and not k.endswith("node_order")}
    flipped.load_state_dict(shared, strict=False)
    _wake_zero_weights(flipped)  # its own zero-initialised weights (LoRA on a layer that had none) train too
    batch = splits.train.gather(splits.train.starts[:4])
    with torch.no_grad():
        a, b = default(batch).point, flipped(batch).point
    assert a.shape == b.shape and torch.isfinite(b).all()
    assert not torch.allclose(a, b, atol=1e-6), f"{name} {switch}: same output with the switch flipped"
