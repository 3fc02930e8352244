"""Our own transformer blocks, in three styles, that load pretrained weights and expose the injection
points the methods need (each off by default):

- style "llama": pre-norm RMSNorm, RoPE, SwiGLU, grouped-query attention (SmolLM2, Llama);
- style "gpt2":  pre-norm LayerNorm, learned positions added at the input, GELU MLP (GPT-2; ViLT's
  encoder is the same block with exact GELU and positions supplied by its own embeddings);
- style "bert":  post-norm LayerNorm, GELU MLP (BERT, all-MiniLM-L6-v2).

Injection points:
- `attn_bias` (B, heads or 1, S, S) added to the attention logits, for the layers in `bias_layers`
  (U-STS-LLM eq. 12, ST-VLM eq. 7);
- `rotary` per layer: (q, k, positions) -> (q, k) (ST-LINK SE-Attention, FactoST p-RoPE), `set_rotary`;
- a replaceable FFN per layer (ST-LINK MRFFN), `set_ffn`;
- an output gate on attention, o * sigmoid(W x + b) before the output projection (FactoST eq. 5),
  `enable_gate`;
- `causal`: causal or bidirectional attention (default bidirectional: spatio-temporal tokens have no
  reading order; ST-LLM's causal mask over node tokens is an artefact we do not copy).

All projections are separate `nn.Linear` modules named q_proj, k_proj, v_proj, o_proj (GPT-2's fused
Conv1D `c_attn` is split at load time) so LoRA targets read the same for every style.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

STYLES = ("llama", "gpt2", "bert")


@dataclass
class BlockSpec:
    style: str = "llama"
    hidden_size: int = 576
    intermediate_size: int = 1536
    num_layers: int = 30
    num_heads: int = 9
    num_kv_heads: int = 9
    norm_eps: float = 1e-5
    rope_theta: float | None = None  # None: no rotary (learned or absolute positions)
    learned_positions: int = 0  # > 0: a (max_positions, d) table added at the stack input (GPT-2)
    act: str = "silu"  # silu (SwiGLU), gelu_tanh (GPT-2), gelu (BERT, ViLT)
    bias: bool = False  # biases on the linear layers
    final_norm: bool = True

    def __post_init__(self):
        if self.style not in STYLES:
            raise ValueError(f"unknown block style {self.style!r}; expected one of {STYLES}")
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError(f"hidden_size {self.hidden_size}, heads {self.num_heads}, kv heads "
                             f"{self.num_kv_heads}: hidden must divide by heads and heads by kv heads")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


# ------------------------------------------------------------------------------------------ rotary


def rope_inv_freq(dim: int, theta: float, fraction: float = 1.0, device=None) -> torch.Tensor:
    """(dim/2,) pair frequencies, highest first; with fraction < 1 only the first (highest-frequency) share of
    the pairs rotates and the rest get frequency 0, i.e. stay as they are (FactoST p-RoPE, eq. 4)."""
    inv = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float32, device=device) / dim))
    if fraction < 1.0:
        inv[int(round(fraction * len(inv))):] = 0.0
    return inv


def rope_cos_sin(positions: torch.Tensor, dim: int, theta: float,
                 fraction: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (..., S, dim) in the half-split layout Hugging Face uses."""
    inv = rope_inv_freq(dim, theta, fraction, positions.device)
    ang = positions.float().unsqueeze(-1) * inv
    ang = torch.cat([ang, ang], -1)
    return ang.cos(), ang.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, -1)
    return torch.cat([-b, a], -1)


def _rope_into(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x * cos + rotate_half(x) * sin with one allocation: the rotated half is added in place, half by half
    (rotate_half(x) = [-x2, x1], so out1 = x1 cos1 - x2 sin1, out2 = x2 cos2 + x1 sin2)."""
    h = x.shape[-1] // 2
    out = x * cos
    out[..., :h].addcmul_(x[..., h:], sin[..., :h], value=-1.0)
    out[..., h:].addcmul_(x[..., :h], sin[..., h:])
    return out


class _RopeFn(torch.autograd.Function):
    """RoPE on q and k with a hand-written backward. The rotation is linear in x, so its gradient is the transposed
    rotation: dx = g cos + rotate_half^T(g sin), i.e. dx1 = g1 cos1 + g2 sin2, dx2 = g2 cos2 - g1 sin1. Saves only the
    (S, D) tables, where autograd would keep the intermediates of neg/cat/mul/add and run each one backwards; on
    CPU that is ~10 fewer full-size tensor passes per layer."""

    @staticmethod
    def forward(ctx, q, k, cos, sin):
        ctx.save_for_backward(cos, sin)
        return _rope_into(q, cos, sin), _rope_into(k, cos, sin)

    @staticmethod
    @once_differentiable
    def backward(ctx, gq, gk):
        cos, sin = ctx.saved_tensors
        h = cos.shape[-1] // 2

        def back(g):
            if g is None:
                return None
            dx = g * cos
            dx[..., :h].addcmul_(g[..., h:], sin[..., h:])
            dx[..., h:].addcmul_(g[..., :h], sin[..., :h], value=-1.0)
            return dx

        return back(gq), back(gk), None, None


def apply_rope(q, k, cos, sin):
    """q, k (B, H, S, D); cos/sin (S, D) or (B, S, D) (RoFormer eq. 34, half-split pairs)."""
    if cos.dim() == 3:
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    if cos.requires_grad or sin.requires_grad:  # learnable angles (ST-LINK's spatial RoPE): plain autograd
        return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
    return _RopeFn.apply(q, k, cos, sin)


class Rotary(nn.Module):
    """The backbone's own RoPE: positions (S,) or (B, S) -> rotated (q, k); `fraction` < 1 rotates only that
    share of the pairs (the high frequencies: partial RoPE)."""

    def __init__(self, head_dim: int, theta: float, fraction: float = 1.0):
        super().__init__()
        self.head_dim, self.theta, self.fraction = head_dim, theta, fraction
        self._cache: tuple | None = None  # (positions, dtype, cos, sin): the stack passes one positions tensor

    def forward(self, q, k, positions):
        c = self._cache
        if c is None or c[0] is not positions or c[1] != q.dtype:
            cos, sin = rope_cos_sin(positions, self.head_dim, self.theta, self.fraction)
            c = self._cache = (positions, q.dtype, cos.to(q.dtype), sin.to(q.dtype))
        return apply_rope(q, k, c[2], c[3])


# --------------------------------------------------------------------------------------- the block


class Attention(nn.Module):
    def __init__(self, s: BlockSpec):
        super().__init__()
        self.n_head, self.n_kv, self.head_dim = s.num_heads, s.num_kv_heads, s.head_dim
        d, kv = s.hidden_size, s.num_kv_heads * s.head_dim
        self.q_proj = nn.Linear(d, d, bias=s.bias)
        self.k_proj = nn.Linear(d, kv, bias=s.bias)
        self.v_proj = nn.Linear(d, kv, bias=s.bias)
        self.o_proj = nn.Linear(d, d, bias=s.bias)
        self.rotary: nn.Module | None = Rotary(s.head_dim, s.rope_theta) if s.rope_theta else None
        self.gate: nn.Linear | None = None

    def enable_gate(self) -> None:
        """FactoST eq. 5: out = o_proj(attn * sigmoid(x W_g + b_g)); starts nearly open (sigmoid(3) = 0.95)."""
        self.gate = nn.Linear(self.q_proj.in_features, self.o_proj.in_features)
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, 3.0)

    def forward(self, x, positions, bias=None, causal: bool = False):
        B, S, _ = x.shape  # x (B, S, d)
        q = self.q_proj(x).view(B, S, self.n_head, self.head_dim).transpose(1, 2)  # (B, H, S, hd)
        k = self.k_proj(x).view(B, S, self.n_kv, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, S, self.n_kv, self.head_dim).transpose(1, 2)
        if self.rotary is not None:
            q, k = self.rotary(q, k, positions)
        if bias is not None and causal:
            bias = bias + torch.full((S, S), float("-inf"), device=x.device, dtype=x.dtype).triu(1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, is_causal=causal and bias is None,
                                             enable_gqa=self.n_kv != self.n_head)
        out = out.transpose(1, 2).reshape(B, S, -1)
        if self.gate is not None:
            out = out * torch.sigmoid(self.gate(x))
        return self.o_proj(out)


class MLP(nn.Module):
    """SwiGLU (down(silu(gate x) * up x)) for llama; down(act(up x)) otherwise."""

    def __init__(self, s: BlockSpec):
        super().__init__()
        self.swiglu = s.style == "llama"
        self.gate_proj = nn.Linear(s.hidden_size, s.intermediate_size, bias=s.bias) if self.swiglu else None
        self.up_proj = nn.Linear(s.hidden_size, s.intermediate_size, bias=s.bias)
        self.down_proj = nn.Linear(s.intermediate_size, s.hidden_size, bias=s.bias)
        self.act = s.act

    def forward(self, x):
        if self.swiglu:
            return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
        h = self.up_proj(x)
        h = F.gelu(h, approximate="tanh") if self.act == "gelu_tanh" else F.gelu(h)
        return self.down_proj(h)


class _RMSNormFn(torch.autograd.Function):
    """y = w * x r, r = 1 / sqrt(mean(x^2) + eps), with a fused backward: with xh = x r and gh = g w,
    dx = r (gh - xh mean(gh xh)) and dw = sum(g xh). Autograd's decomposition (pow, mean, add, rsqrt, two muls)
    runs ~9 full-size passes backwards and keeps more intermediates; this one runs 5 and keeps xh and r."""

    @staticmethod
    def forward(ctx, x, weight, eps):
        d = x.shape[-1]
        r = torch.rsqrt(torch.linalg.vector_norm(x, dim=-1, keepdim=True).square_().div_(d).add_(eps))
        xh = x * r
        ctx.save_for_backward(xh, r, weight)
        return xh * weight

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        xh, r, weight = ctx.saved_tensors
        dw = None
        if ctx.needs_input_grad[1]:
            dw = (g * xh).reshape(-1, xh.shape[-1]).sum(0)
        dx = None
        if ctx.needs_input_grad[0]:
            gh = g * weight
            m = (gh * xh).mean(-1, keepdim=True)
            dx = gh.mul_(r).addcmul_(xh, r * m, value=-1.0)
        return dx, dw, None


class RMSNorm(nn.Module):
    """w * x / sqrt(mean(x^2) + eps) (as Llama's), with the fused backward of `_RMSNormFn`."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return _RMSNormFn.apply(x, self.weight, self.eps)


def make_norm(s: BlockSpec) -> nn.Module:
    if s.style == "llama":
        return RMSNorm(s.hidden_size, s.norm_eps)
    return nn.LayerNorm(s.hidden_size, eps=s.norm_eps)


class Block(nn.Module):
    def __init__(self, s: BlockSpec):
        super().__init__()
        self.post_norm = s.style == "bert"
        self.norm1 = make_norm(s)
        self.self_attn = Attention(s)
        self.norm2 = make_norm(s)
        self.mlp: nn.Module = MLP(s)

    def forward(self, x, positions, bias=None, causal=False):
        if self.post_norm:  # BERT: x = LN(x + attn(x)); x = LN(x + mlp(x))
            x = self.norm1(x + self.self_attn(x, positions, bias, causal))
            return self.norm2(x + self.mlp(x))
        x = x + self.self_attn(self.norm1(x), positions, bias, causal)
        return x + self.mlp(self.norm2(x))


class TransformerStack(nn.Module):
    """Embeddings-free stack of blocks: methods feed their own tokens (B, S, d) and get (B, S, d)."""

    def __init__(self, s: BlockSpec, causal: bool = False, bias_layers=None):
        super().__init__()
        self.spec, self.causal = s, causal
        self.wpe = nn.Embedding(s.learned_positions, s.hidden_size) if s.learned_positions else None
        self.layers = nn.ModuleList(Block(s) for _ in range(s.num_layers))
        if s.rope_theta:  # one default rotary for every layer: cos/sin computed once per forward
            shared = Rotary(s.head_dim, s.rope_theta)
            for layer in self.layers:
                layer.self_attn.rotary = shared
        self.norm = make_norm(s) if s.final_norm else nn.Identity()
        self.bias_layers = set(range(s.num_layers)) if bias_layers is None else set(bias_layers)

    def forward(self, x, positions=None, attn_bias=None):
        """x (B, S, d); positions (S,) or (B, S), default 0..S-1; attn_bias (B, H or 1, S or 1, S) or None."""
        if positions is None:
            positions = torch.arange(x.shape[1], device=x.device)
        if self.wpe is not None:
            if int(positions.max()) >= self.wpe.num_embeddings:
                raise ValueError(f"position {int(positions.max())} beyond the {self.wpe.num_embeddings} learned "
                                 "positions of this backbone; use fewer tokens per sample")
            x = x + self.wpe(positions)
        if attn_bias is not None and (attn_bias.shape[-1] != x.shape[1] or attn_bias.shape[-2] not in (1, x.shape[1])):
            raise ValueError(f"attention bias {tuple(attn_bias.shape)} does not match {x.shape[1]} tokens")
        for i, layer in enumerate(self.layers):
            x = layer(x, positions, attn_bias if i in self.bias_layers else None, self.causal)
        return self.norm(x)

    def set_ffn(self, layer: int, module: nn.Module) -> None:
        self.layers[layer].mlp = module

    def set_rotary(self, layer: int, fn: nn.Module | None) -> None:
        self.layers[layer].self_attn.rotary = fn
