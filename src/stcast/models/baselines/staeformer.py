"""STAEformer (Liu et al., CIKM 2023, "Spatio-Temporal Adaptive Embedding Makes Vanilla Transformer SOTA for Traffic
Forecasting"): a plain transformer made strong by its input embedding.

Map of the paper's Section 3 to the code:
- Input embedding layer: E_f = FC(X) (the value of each node and step, 24 wide); E_tod, E_dow: per-step
  time-of-day and day-of-week tables (24 each); E_a: the spatio-temporal adaptive embedding, one learned vector per
  (input step, node) (80 wide, `adaptive`), shared by every sample; Z = E_f || E_tod || E_dow || E_a (152 wide).
- Temporal transformer layers (3): self-attention along the time axis, separately for each node (`_AxisLayer` on
  axis 1): softmax(Q K^T / sqrt(d_h)) V over 4 heads, residual + LayerNorm, FFN (256) + residual + LayerNorm.
- Spatial transformer layers (3): the same along the node axis, separately for each step (axis 2).
- Regression layer (the paper's output projection): the L x D features of a node flattened and mapped to the
  H outputs by one linear layer (`mixed_proj`; off: a per-step map over the time axis then the feature axis).
Settings (the authors' METR-LA config): Adam lr 1e-3, weight decay 3e-4, batch 16, lr x0.1 at epochs 20 and 30,
at most 200 epochs, early stopping patience 30, masked MAE; `experiments/staeformer/` carries them.

Switches for the paper's ablations (Table 5): `use_adaptive` (w/o E_a), `use_tod` / `use_dow`, `temporal_layers`
/ `spatial_layers` (0 removes that stack), `mixed_proj`.

Where we differ, and why:
- The calendar tables are stcast's `CalendarEmbedding`s: a day or slot never seen in training falls back to the mean
  row (the paper's nn.Embedding keeps its random initialisation); identical whenever training covers every slot,
  as on METR-LA.
- Missing inputs enter as 0 in the z-scored space (the training mean), as for every stcast model; the paper's
  loader passes the raw zeros of METR-LA through the scaler.
- Attention runs through PyTorch's fused `scaled_dot_product_attention` (the same softmax(QK^T/sqrt(d))V), on 4-D
  operands so that the fused CPU kernel is the one that runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stcast.models.base import Prediction, ProblemSpec, STModel
from stcast.nn.calendar import day_of_week, time_of_day


class _AxisLayer(nn.Module):
    """One post-norm transformer layer attending along `axis` of (B, L, N, D) only: axis 1 mixes the steps of one
    node (temporal), axis 2 the nodes of one step (spatial)."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float, axis: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"model width {dim} is not divisible by num_heads={heads}")
        self.axis, self.heads = axis, heads
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(inplace=True), nn.Linear(ffn_dim, dim))
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., S, D) -> (..., S, D): multi-head self-attention over S. The leading axes are folded into one so
        that attention gets 4-D (M, heads, S, D/heads) operands: PyTorch's fused CPU kernel takes only those (5-D
        ones fall back to the unfused path, 2x slower over the 207 sensors here)."""
        *lead, S, D = x.shape
        flat = x.reshape(-1, S, D)  # a copy only where x is a strided view
        h = self.heads

        def split(t):  # (M, S, D) -> (M, h, S, D/h)
            return t.view(-1, S, h, D // h).transpose(1, 2)

        a = F.scaled_dot_product_attention(split(self.q(flat)), split(self.k(flat)), split(self.v(flat)))
        return self.out(a.transpose(1, 2).reshape(*lead, S, D))

    def block(self, x: torch.Tensor) -> torch.Tensor:
        """The layer on x (..., S, D) with the attended axis already next to the features."""
        x = self.ln1(x + self.drop1(self.attend(x)))
        return self.ln2(x + self.drop2(self.ffn(x)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.block(z.transpose(self.axis, -2)).transpose(self.axis, -2)


class STAEformer(STModel):
    """STAEformer (Liu et al., CIKM 2023): value, calendar and spatio-temporal adaptive embeddings, temporal then
    spatial transformer layers, one regression layer."""

    name = "staeformer"

    def __init__(self, spec: ProblemSpec, input_embedding_dim: int = 24, tod_embedding_dim: int = 24,
                 dow_embedding_dim: int = 24, adaptive_embedding_dim: int = 80, feed_forward_dim: int = 256,
                 num_heads: int = 4, temporal_layers: int = 3, spatial_layers: int = 3, dropout: float = 0.1,
                 use_adaptive: bool = True, use_tod: bool = True, use_dow: bool = True, mixed_proj: bool = True):
        super().__init__(spec)
        L, N, C = spec.input_len, spec.num_nodes, spec.num_channels
        self.input_proj = nn.Linear(C, input_embedding_dim)  # E_f
        self.tod_emb = time_of_day(spec.steps_per_day, tod_embedding_dim) if use_tod else None
        self.dow_emb = day_of_week(dow_embedding_dim) if use_dow else None
        # E_a: one vector per (input step, node), shared by all samples (xavier, as the authors initialise it)
        self.adaptive = nn.Parameter(nn.init.xavier_uniform_(torch.empty(L, N, adaptive_embedding_dim))) \
            if use_adaptive else None
        dim = input_embedding_dim + tod_embedding_dim * use_tod + dow_embedding_dim * use_dow + \
            adaptive_embedding_dim * use_adaptive
        self.temporal = nn.ModuleList(_AxisLayer(dim, num_heads, feed_forward_dim, dropout, axis=1)
                                      for _ in range(temporal_layers))
        self.spatial = nn.ModuleList(_AxisLayer(dim, num_heads, feed_forward_dim, dropout, axis=2)
                                     for _ in range(spatial_layers))
        self.mixed_proj = mixed_proj
        if mixed_proj:  # the regression layer: L x D features of a node -> H x C outputs
            self.output_proj = nn.Linear(L * dim, spec.horizon * C)
        else:  # per step: time axis L -> H, then features D -> C
            self.temporal_proj = nn.Linear(L, spec.horizon)
            self.output_proj = nn.Linear(dim, C)

    def embed(self, batch) -> torch.Tensor:
        """Z = E_f || E_tod || E_dow || E_a, (B, L, N, D)."""
        x = batch.x  # (B, L, N, C), scaled
        B, L, N, _ = x.shape
        parts = [self.input_proj(x)]
        if self.tod_emb is not None:  # each input step's own slot
            parts.append(self.tod_emb(batch.tod_x).unsqueeze(2).expand(-1, -1, N, -1))
        if self.dow_emb is not None:
            parts.append(self.dow_emb(batch.dow_x).unsqueeze(2).expand(-1, -1, N, -1))
        if self.adaptive is not None:
            parts.append(self.adaptive.expand(B, -1, -1, -1))
        return torch.cat(parts, -1)

    def forward(self, batch) -> Prediction:
        self.check_window(batch.x)
        B, L, N, C = batch.x.shape
        z = self.embed(batch)  # (B, L, N, D)
        if len(self.temporal):  # the temporal stack on (B, N, L, D), laid out once instead of per layer
            x = z.transpose(1, 2).contiguous()
            for layer in self.temporal:
                x = layer.block(x)
            z = x.transpose(1, 2).contiguous()
        for layer in self.spatial:  # (B, L, N, D): the nodes already next to the features
            z = layer.block(z)
        H = self.spec.horizon
        if self.mixed_proj:
            out = self.output_proj(z.transpose(1, 2).reshape(B, N, -1)).view(B, N, H, C).transpose(1, 2)
        else:
            out = self.output_proj(self.temporal_proj(z.transpose(1, 3)).transpose(1, 3))
        return Prediction(out)  # (B, H, N, C)
