"""FactoST-v2 stage I (../shared/papers/factost-v2.md, section III-A): the universal temporal backbone (UTP).

Instance normalisation (eq. 1), non-overlapping patches of 16 steps, random sequence masking of the first l_mask
context patches (eq. 2), a learnable register token between the context and the future placeholders (eq. 3),
partial RoPE on the high-frequency half of each head (eq. 4), gated attention (eq. 5), a multi-quantile head
trained with the pinball loss (eq. 6); safe fp16 checkpoints with their recipe. Stage II, the adapter, and the
choices where the paper is silent are in `stcast.models.factost`; pretraining in `stcast.pretrain.utp`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from stcast.errors import StcastError
from stcast.nn.transformer import BlockSpec, Rotary, TransformerStack

DEFAULT_QUANTILES = (0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99)
VARIANTS = {  # Table VI: d_model, d_ff, layers, heads
    "minuscule": (192, 768, 3, 3),
    "tiny": (256, 1024, 3, 4),
    "small": (384, 1536, 4, 6),
    "base": (512, 2048, 6, 8),
}
SHIPPED_CHECKPOINT = Path(__file__).resolve().parent.parent / "resources" / "factost-utp.pt"


@dataclass
class UTPConfig:
    variant: str = "tiny"
    patch_len: int = 16
    max_context: int = 256  # L_max, steps (a multiple of patch_len); the paper's 2048 is a GPU budget
    min_context: int = 32  # L_min, steps
    max_horizon: int = 96  # H_max, steps
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES
    use_prope: bool = True
    use_gate: bool = True
    rope_theta: float = 10000.0
    extra: dict = field(default_factory=dict)  # free-form notes (recipe) carried with checkpoints

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise StcastError(f"unknown FactoST variant {self.variant!r}; choose from {sorted(VARIANTS)}")
        if self.max_context % self.patch_len or self.min_context > self.max_context or self.min_context < 1:
            raise StcastError(f"need patch_len | max_context and 1 <= min_context <= max_context; got "
                              f"{self.patch_len}, {self.max_context}, {self.min_context}")
        q = list(self.quantiles)
        if q != sorted(q) or not all(0 < v < 1 for v in q) or 0.5 not in q:
            raise StcastError(f"quantiles must be increasing levels in (0, 1) including 0.5; got {q}")
        self.quantiles = tuple(q)

    @property
    def ctx_patches(self) -> int:
        return self.max_context // self.patch_len

    @property
    def fut_patches(self) -> int:
        return math.ceil(self.max_horizon / self.patch_len)


def instance_norm(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-5):
    """Eq. 1 over the observed steps of each series; x, mask (S, L) -> normalised x, mean (S, 1), std (S, 1)."""
    m = mask.float()
    cnt = m.sum(-1, keepdim=True).clamp(min=1)
    mean = (x * m).sum(-1, keepdim=True) / cnt
    std = (((x - mean) ** 2 * m).sum(-1, keepdim=True) / cnt).sqrt()
    return torch.where(mask, (x - mean) / (std + eps), torch.zeros_like(x)), mean, std + eps


def to_patches(x: torch.Tensor, mask: torch.Tensor, patch_len: int):
    """(S, L) -> left-padded (S, P, patch_len) values and indicators, P = ceil(L / patch_len)."""
    pad = (-x.shape[-1]) % patch_len
    if pad:
        x, mask = F.pad(x, (pad, 0)), F.pad(mask, (pad, 0))
    S = x.shape[0]
    return x.view(S, -1, patch_len), mask.view(S, -1, patch_len)


class UTPBackbone(nn.Module):
    """Stage I: encoder-only patch transformer with a register token and a multi-quantile head."""

    def __init__(self, cfg: UTPConfig):
        super().__init__()
        self.cfg = cfg
        d, ff, layers, heads = VARIANTS[cfg.variant]
        spec = BlockSpec(style="llama", hidden_size=d, intermediate_size=ff, num_layers=layers, num_heads=heads,
                         num_kv_heads=heads, rope_theta=cfg.rope_theta)
        self.stack = TransformerStack(spec, causal=False)
        rot = Rotary(spec.head_dim, cfg.rope_theta, fraction=0.5 if cfg.use_prope else 1.0)  # eq. 4
        for i, layer in enumerate(self.stack.layers):
            self.stack.set_rotary(i, rot)
            if cfg.use_gate:
                layer.self_attn.enable_gate()
        self.proj = nn.Linear(2 * cfg.patch_len, d)  # W_proj, eq. 3
        self.register = nn.Parameter(torch.randn(d) * 0.02)  # e_reg
        self.head = nn.Linear(d, cfg.patch_len * len(cfg.quantiles))
        self.d_model = d

    @property
    def median_index(self) -> int:
        return self.cfg.quantiles.index(0.5)

    def tokens(self, xn: torch.Tensor, mask: torch.Tensor, fut_patches: int) -> torch.Tensor:
        """Eq. 3 before the blocks: [Z_ctx || e_reg || Z_fut] as (S, P_ctx + 1 + P_fut, d)."""
        vals, ind = to_patches(xn, mask, self.cfg.patch_len)
        ctx = self.proj(torch.cat([vals, ind.to(vals.dtype)], -1))
        fut = self.proj.bias.expand(xn.shape[0], fut_patches, -1)  # empty patches: W_proj 0 + b
        return torch.cat([ctx, self.register.expand(xn.shape[0], 1, -1), fut], 1)

    def encode(self, tokens: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        bias = None
        if key_mask is not None:  # hide masked patches from every query: (S, 1, 1, T)
            bias = torch.zeros(key_mask.shape, dtype=tokens.dtype, device=tokens.device)
            bias = bias.masked_fill(~key_mask, float("-inf"))[:, None, None, :]
        return self.stack(tokens, attn_bias=bias)

    def quantile_head(self, h_fut: torch.Tensor) -> torch.Tensor:
        """(S, P_fut, d) -> (S, P_fut * patch_len, Q), normalised units."""
        S, P, _ = h_fut.shape
        return self.head(h_fut).view(S, P * self.cfg.patch_len, len(self.cfg.quantiles))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, horizon: int, mask_patches: torch.Tensor | None = None):
        """x, mask (S, L) in original units -> quantiles (S, horizon, Q), normalised, and (mean, std).

        `mask_patches` (S,) zeroes and hides the first l_mask context patches (random masking, eq. 2)."""
        xn, mean, std = instance_norm(x, mask)
        fut = math.ceil(horizon / self.cfg.patch_len)
        tok = self.tokens(xn, mask, fut)
        p_ctx = tok.shape[1] - 1 - fut
        key_mask = None
        if mask_patches is not None:
            idx = torch.arange(tok.shape[1], device=x.device)
            key_mask = ~(idx[None, :] < mask_patches[:, None])  # (S, T): False on the masked prefix
            tok = tok * key_mask.unsqueeze(-1).to(tok.dtype)  # Mask(Z_ctx): zeroed
        h = self.encode(tok, key_mask)
        return self.quantile_head(h[:, p_ctx + 1:])[:, :horizon], mean, std

    @torch.no_grad()
    def forecast(self, x: torch.Tensor, horizon: int, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Zero-shot: (S, L) -> quantiles (S, horizon, Q) in original units; rolled beyond H_max, non-crossing."""
        mask = torch.isfinite(x) if mask is None else mask.bool() & torch.isfinite(x)
        x = torch.where(mask, x, torch.zeros_like(x))
        out = []
        left = horizon
        while left > 0:
            step = min(left, self.cfg.max_horizon)
            ctx, cm = x[:, -self.cfg.max_context:], mask[:, -self.cfg.max_context:]
            q, mean, std = self(ctx, cm, step)
            q = q * std.unsqueeze(-1) + mean.unsqueeze(-1)
            out.append(q)
            med = q[..., self.median_index]
            x, mask = torch.cat([x, med], 1), torch.cat([mask, torch.ones_like(med, dtype=torch.bool)], 1)
            left -= step
        return torch.cat(out, 1).sort(-1).values  # quantile crossing repaired

    # ------------------------------------------------------------------ checkpoints

    def save(self, path, extra: dict | None = None) -> None:
        """State dict in fp16 (the shipped file stays < 10 MB) + config, written atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.half() if v.is_floating_point() else v for k, v in self.state_dict().items()}
        cfg = asdict(self.cfg)
        cfg["quantiles"] = list(cfg["quantiles"])
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save({"format": "stcast-utp-1", "config": json.dumps(cfg), "state": state,
                    "extra": json.dumps(extra or {})}, tmp)
        tmp.replace(path)

    @classmethod
    def load(cls, path) -> UTPBackbone:
        path = Path(path)
        if not path.is_file():
            raise StcastError(f"FactoST checkpoint {path} does not exist; make one with `stcast pretrain factost`")
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unpickling failure is a corrupt file to the user
            raise StcastError(f"{path} is not a readable FactoST checkpoint ({type(e).__name__}: {e})") from e
        if not isinstance(blob, dict) or blob.get("format") != "stcast-utp-1":
            raise StcastError(f"{path} is not a FactoST UTP checkpoint (format stcast-utp-1)")
        cfg = json.loads(blob["config"])
        cfg["quantiles"] = tuple(cfg["quantiles"])
        model = cls(UTPConfig(**cfg))
        try:
            model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state"].items()})
        except RuntimeError as e:
            raise StcastError(f"{path}: weights do not fit its own config ({e})") from e
        model.extra = json.loads(blob.get("extra", "{}"))
        return model
