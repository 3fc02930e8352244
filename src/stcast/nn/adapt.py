"""Declarative adaptation of a pretrained backbone: partial freezing (PFA), LoRA and LoRA-AMR.

    report = adapt(backbone, AdaptPolicy(trainable_top=2, attention="lora", lora_rank=8))

The policy governs the *pretrained* parameters only (those `load_backbone` loaded; tracked by identity, so
renames by LoRA wrappers do not matter). Modules a method adds to the backbone (a gate, an MRFFN, a spatial
rotary with node embeddings) keep their own requires_grad: new weights are trained unless the method says no.

PFA (ST-LLM / U-STS-LLM eqs. 10-11, ST-LINK): the lower L-U blocks are frozen except their norms; the upper
U blocks' attention is trained (fully, through LoRA, or through LoRA-AMR) and their FFNs stay frozen.
Position tables (GPT-2's wpe) are trained as in ST-LLM. Plain LoRA uses peft (`inject_adapter_in_model`
with a full-match regex over our module names); LoRA-AMR, which peft does not have, is `LoRAAMRLinear`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from stcast.errors import StcastError

ATTENTION_MODES = ("frozen", "full", "lora", "lora-amr")
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass
class AdaptPolicy:
    trainable_top: int = 0  # U: the upper blocks whose attention is adapted
    attention: str = "lora"  # how those blocks' attention is adapted: frozen | full | lora | lora-amr
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj")
    train_norms: bool = True  # every norm stays trainable (PFA)
    train_positions: bool = True  # learned position table, if the backbone has one
    train_ffn_top: bool = False  # PFA keeps FFNs frozen (eq. 10); True trains the upper FFNs too
    train_embeddings: bool = False  # token embeddings (only used by text models)

    def __post_init__(self):
        if self.attention not in ATTENTION_MODES:
            raise StcastError(f"attention={self.attention!r}; expected one of {ATTENTION_MODES}")
        bad = [t for t in self.lora_targets if t not in PROJECTIONS]
        if bad:
            raise StcastError(f"LoRA targets {bad} unknown; choose from {PROJECTIONS}")
        if self.attention == "lora-amr" and self.lora_rank % 2:
            raise StcastError(f"LoRA-AMR factors the second adapter at rank r/2; lora_rank={self.lora_rank} is odd")


class LoRAAMRLinear(nn.Module):
    """LoRA-AMR (LLM-TS Net): h = W0 x + (alpha / r) C D B x.

    B (r x in) is the first adapter and D (r/2 x r) the second adapter's fixed factor, both frozen at random
    init; only C (out x r/2, zero-init so training starts from W0) is trained. Naming follows the paper
    ("freezing W0, B and D, updating only C"); the only activation kept for C's gradient is D B x, r/2 wide.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.base = base
        self.scale = alpha / rank
        self.lora_B = nn.Parameter(torch.empty(rank, base.in_features), requires_grad=False)
        self.lora_D = nn.Parameter(torch.empty(rank // 2, rank), requires_grad=False)
        self.lora_C = nn.Parameter(torch.zeros(base.out_features, rank // 2))
        nn.init.kaiming_uniform_(self.lora_B, a=math.sqrt(5))
        nn.init.normal_(self.lora_D, std=1 / math.sqrt(rank))

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def forward(self, x):
        return self.base(x) + self.scale * (x @ self.lora_B.t() @ self.lora_D.t() @ self.lora_C.t())


def _is_norm(m: nn.Module) -> bool:
    from stcast.nn.transformer import RMSNorm

    return isinstance(m, (nn.LayerNorm, nn.RMSNorm, RMSNorm))


def adapt(backbone, policy: AdaptPolicy) -> dict:
    """Apply `policy` to a `Backbone` in place; returns trainable / total parameter counts."""
    stack = backbone.stack
    n_layers = len(stack.layers)
    if not 0 <= policy.trainable_top <= n_layers:
        raise StcastError(f"trainable_top={policy.trainable_top}, but the backbone has {n_layers} layers")
    pretrained = backbone.pretrained_params or {id(p) for p in backbone.parameters()}
    new_state = {id(p): p.requires_grad for p in backbone.parameters() if id(p) not in pretrained}
    top = list(range(n_layers - policy.trainable_top, n_layers))

    for p in backbone.parameters():
        if id(p) in pretrained:
            p.requires_grad_(False)
    if policy.train_norms:
        for m in backbone.modules():
            if _is_norm(m):
                m.requires_grad_(True)
    if policy.train_positions and stack.wpe is not None:
        stack.wpe.requires_grad_(True)
    if policy.train_embeddings and backbone.embeddings is not None:
        backbone.embeddings.requires_grad_(True)
    for i in top:
        layer = stack.layers[i]
        if policy.train_ffn_top:
            layer.mlp.requires_grad_(True)
        if policy.attention == "full":
            for name in PROJECTIONS:
                getattr(layer.self_attn, name).requires_grad_(True)
        elif policy.attention == "lora-amr":
            for name in policy.lora_targets:
                setattr(layer.self_attn, name,
                        LoRAAMRLinear(getattr(layer.self_attn, name), policy.lora_rank, policy.lora_alpha))
    if policy.attention == "lora" and top:
        _inject_peft_lora(stack, top, policy)
    for p in backbone.parameters():  # methods' own modules keep their setting (peft may have frozen them)
        if id(p) in new_state:
            p.requires_grad_(new_state[id(p)])
    return count_parameters(backbone)


def _inject_peft_lora(stack, layers, policy: AdaptPolicy) -> None:
    from peft import LoraConfig, inject_adapter_in_model

    pattern = rf"layers\.({'|'.join(map(str, layers))})\.self_attn\.({'|'.join(policy.lora_targets)})"
    cfg = LoraConfig(r=policy.lora_rank, lora_alpha=policy.lora_alpha, lora_dropout=policy.lora_dropout,
                     target_modules=pattern, bias="none")
    frozen = {id(p): p.requires_grad for p in stack.parameters()}
    inject_adapter_in_model(cfg, stack)
    for name, p in stack.named_parameters():  # peft marks only adapters trainable: restore the rest
        if "lora_" in name:
            p.requires_grad_(True)
        elif id(p) in frozen:
            p.requires_grad_(frozen[id(p)])


def count_parameters(module: nn.Module) -> dict:
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return {"trainable": trainable, "total": total, "ratio": trainable / max(total, 1)}
