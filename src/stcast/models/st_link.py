"""ST-LINK (../shared/papers/st-link-summary.md): spatially-aware attention (SE-Attention, a spatial RoPE) and a
memory-retrieval mixture-of-experts FFN (MRFFN) on a partially frozen LM.

Pipeline: x (B, T_in, N, F) -> RevIN per node -> tokens = nodes x temporal patches, each the patch embedding
+ time-of-day / day-of-week + node embeddings -> LM; its top U (adapted) blocks use SE-Attention and MRFFN ->
linear head per node -> de-normalised (B, H, N, F).

Mechanisms and their switches (for the paper's ablations):
- `use_se`      SE-Attention: in every block (`se_blocks`) each head's query/key is split in two halves; the first is
                rotated by a temporal RoPE (position = the token's time, in steps), the second by a spatial
                RoPE whose per-frequency angles are a learnable per-node embedding times the base frequencies
                (angle_{i,j} = e_{i,j} * theta^(-2j/d_s)); the halves are concatenated back and the layer's
                own output projection maps them back (`SERotary`, installed with the backbone's rotary hook,
                no copy of the attention code). Off: the backbone's own positional scheme.
- `use_mrffn`   MRFFN in every adapted block: S memory slots (keys by EMA with momentum alpha, no gradient;
                values by backprop), top-k retrieval by cosine similarity, [token; retrieved; attention
                summary] routed to the top-k of E experts with a Switch-style load-balancing loss (`MRFFN`).
- `trainable_top`, `attention`: Partially Frozen Attention: blocks 1..L-U frozen except their norms, the top
                U blocks' attention trained fully (default) or through LoRA (`lora_rank`).
- `use_revin`   RevIN (Kim et al. 2022): per-sample, per-node normalisation over the observed input steps,
                learnable affine, undone after the head.

Where the summary is silent (choices a careful reader of RoPE, memory networks and MoE would make):
- Tokens. One token per node and temporal patch (`patch_len`, default = the whole input: 12 -> 1 patch, so N
  tokens per sample: 207 on Los-loop). The spatial RoPE needs each token to *be* a node; node tokens are
  what the GPT-2 ST-LLM line ST-LINK extends uses. Cost: 207 tokens x 1,395 windows = 289k tokens per Los-loop
  epoch; SmolLM2 trains ~1,000 tokens/s through 6 blocks on 2 cores, so the CPU default keeps 2 blocks
  (the lower frozen, the upper adapted: PFA at 50 %) to stay within minutes per epoch; `num_layers` and
  `trainable_top` scale it up (the frozen-ratio sweep uses 4). With one patch every token has the same time, so
  the temporal half of the rotation cancels in q.k and time enters through the calendar embeddings; shorter
  patches give the temporal RoPE real offsets at the price of N x patches tokens.
- Spatial angles. e (N, d_s/2) is initialised to each node's rank along the graph's Fiedler vector (nodes
  close in the graph get close angles) when the dataset has an adjacency and N <= 4,000, else to the node
  index; it is a free parameter after that. Equal embeddings give equal rotations, which cancel in q.k.
- Where SE-Attention lives (`se_blocks`): the summary's component map repeats "RevIN -> SE-Attention -> MRFFN"
  in every LLM block, so "all" (default) rotates in every block, frozen ones included (their q/k weights stay
  frozen; the rotation replaces their RoPE over the token index); "adapted" rotates in the U adapted blocks only
  (our first reading). MRFFN lives in the adapted
  blocks only: a frozen block's FFN is the pretrained one (PFA) and the MoE beside it is trained weights.
- Recipe: the summary trains with batch 64 and lr 2.5e-4 on speed data (1e-4 on demand). Our short-budget
  CPU configs use lr 5e-4 at batch 32, said so in each config: on Los-loop at an 8-minute budget (2 epochs on one
  thread) 5e-4 / 32 reached 4.050 pooled MAE against 4.174 with the summary's 2.5e-4 / 64 (docs/benchmarks.md,
  "ST-LINK: fidelity"); converged runs (patience, tens of epochs) use the summary's recipe.
- SE-Attention placement measured in the same run: every block 4.174, adapted blocks only 4.173 (equal at
  this budget), so the default follows the component map ("all").
- MRFFN augments the pretrained FFN (kept frozen, as PFA keeps FFNs): out = FFN(h) + MoE([h; r; a]) where
  r = sum over the top-k slots of softmax(cos / tau) * value and a = attention pooling of the sample's tokens
  (one learnable query). The MoE's output layers start at zero, so an untrained ST-LINK is the pretrained LM.
  Keys are updated with the mean of the (normalised) tokens whose best slot they are:
  k <- (1 - alpha) k + alpha mean; slots nobody picked stay.
- The balance loss is E * sum_e f_e P_e (Switch Transformer), weighted by `balance_weight`, summed over blocks.
- Identity (`identity`): "legacy" adds node / time-of-day / day-of-week embeddings initialised at std 0.02 (the
  first implementation: ~30x fainter than the data token); "add" / "concat" use the shared `STIdentity`
  (nn/identity.py: at a matched scale, or concatenated and fused as in ST-LLM); "none" drops it (ablation).
  The default stays "legacy" until the METR-LA comparison chooses one.
- Token reduction (`node_sample` K, ours, for N in the hundreds on CPU): each training step draws K random nodes
  (one draw per batch, from torch's seeded RNG) and builds K x patches tokens instead of N x patches; each node
  keeps its own embedding, spatial rotation and RevIN affine, and the loss reads the same K nodes
  (`Prediction.node_index`). Inference always sees every node. Null (default): all nodes in every step.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stcast.errors import StcastError
from stcast.models.base import Prediction, ProblemSpec, STModel
from stcast.nn.calendar import day_of_week, time_of_day
from stcast.nn.identity import STIdentity
from stcast.nn.transformer import apply_rope, rope_cos_sin, rope_inv_freq


class SERotary(nn.Module):
    """SE-Attention's rotary: q, k (B, H, S, hd) -> temporal RoPE on hd/2 dims, spatial RoPE on the other hd/2.

    `set_tokens(time_pos (S,), node_of_token (S,))` is called by the model before each forward of the LM; the
    cos/sin tables are computed once per forward and shared by every layer that holds this module.
    """

    def __init__(self, head_dim: int, num_nodes: int, theta: float = 10000.0, node_init: torch.Tensor | None = None):
        super().__init__()
        if head_dim % 4:
            raise StcastError(f"SE-Attention splits each head in two rotary halves: head_dim {head_dim} must "
                              "divide by 4")
        self.half, self.theta = head_dim // 2, theta
        self.register_buffer("inv_freq", rope_inv_freq(self.half, theta), persistent=False)
        init = torch.arange(num_nodes, dtype=torch.float32) if node_init is None else node_init.float()
        self.node_embedding = nn.Parameter(init.unsqueeze(1).repeat(1, self.half // 2))  # e (N, d_s/2)
        self._tokens = None
        self._tables = None

    def set_tokens(self, time_pos: torch.Tensor, node_of_token: torch.Tensor) -> None:
        self._tokens, self._tables = (time_pos, node_of_token), None

    def spatial_angles(self, node_of_token: torch.Tensor) -> torch.Tensor:
        """angle_{i,j} = e_{i,j} * inv_freq_j, (S, d_s/2)."""
        return self.node_embedding[node_of_token] * self.inv_freq

    def tables(self):
        if self._tokens is None:
            raise StcastError("SERotary.set_tokens() must be called before the LM runs")
        version = (self.node_embedding._version, torch.is_grad_enabled())
        if self._tables is None or self._tables[0] != version:  # recomputed after an optimizer step
            time_pos, node = self._tokens
            ct, st = rope_cos_sin(time_pos, self.half, self.theta)  # (S, d_t)
            ang = self.spatial_angles(node)
            ang = torch.cat([ang, ang], -1)
            self._tables = (version, ct, st, ang.cos(), ang.sin())
        return self._tables[1:]

    def forward(self, q, k, positions=None):  # positions: the stack's token index, unused here
        ct, st, cs, ss = self.tables()
        qt, qs = q.split(self.half, -1)
        kt, ks = k.split(self.half, -1)
        qt, kt = apply_rope(qt, kt, ct.to(q.dtype), st.to(q.dtype))  # temporal half
        qs, ks = apply_rope(qs, ks, cs.to(q.dtype), ss.to(q.dtype))  # spatial half
        return torch.cat([qt, qs], -1), torch.cat([kt, ks], -1)


class MRFFN(nn.Module):
    """Memory-retrieval MoE feed-forward: out = FFN(h) + MoE([h; retrieve(h); summary(h)])."""

    def __init__(self, ffn: nn.Module | None, d: int, slots: int = 64, top_k: int = 4, momentum: float = 0.1,
                 experts: int = 4, expert_k: int = 2, expert_dim: int = 128, temperature: float = 0.1):
        super().__init__()
        if not 1 <= top_k <= slots or not 1 <= expert_k <= experts:
            raise StcastError(f"MRFFN needs 1 <= top_k ({top_k}) <= slots ({slots}) and 1 <= expert_k "
                              f"({expert_k}) <= experts ({experts})")
        if not 0 < momentum <= 1:
            raise StcastError(f"EMA momentum must be in (0, 1]; got {momentum}")
        self.ffn = ffn
        self.top_k, self.momentum, self.expert_k, self.temperature = top_k, momentum, expert_k, temperature
        self.register_buffer("keys", F.normalize(torch.randn(slots, d), dim=-1))  # EMA, no gradient
        self.values = nn.Parameter(torch.randn(slots, d) * 0.02)
        self.summary_query = nn.Parameter(torch.zeros(d))
        self.inp = nn.Linear(3 * d, expert_dim)
        self.router = nn.Linear(3 * d, experts)
        self.up = nn.Parameter(torch.randn(experts, expert_dim, 2 * expert_dim) / math.sqrt(expert_dim))
        self.down = nn.Parameter(torch.zeros(experts, 2 * expert_dim, d))  # zero: starts as the plain FFN
        self.aux_loss: torch.Tensor | None = None
        self.last_routes: torch.Tensor | None = None

    def retrieve(self, h):
        """h (B, S, d) -> retrieved (B, S, d), best slot (B, S)."""
        sim = F.normalize(h, dim=-1) @ self.keys.t()  # (B, S, slots), cosine
        top, idx = sim.topk(self.top_k, -1)
        w = torch.softmax(top / self.temperature, -1)
        return (w.unsqueeze(-1) * self.values[idx]).sum(-2), idx[..., 0]

    @torch.no_grad()
    def update_keys(self, h, best):
        """EMA: k_s <- (1 - alpha) k_s + alpha mean(normalised tokens whose best slot is s)."""
        z = F.normalize(h.detach(), dim=-1).reshape(-1, h.shape[-1])
        b = best.reshape(-1)
        sums = torch.zeros_like(self.keys).index_add_(0, b, z)
        cnt = torch.bincount(b, minlength=self.keys.shape[0]).unsqueeze(1).to(z.dtype)
        hit = cnt.squeeze(1) > 0
        new = (1 - self.momentum) * self.keys[hit] + self.momentum * sums[hit] / cnt[hit]
        keys = self.keys.clone()  # a new tensor: the retrieval's backward still needs the old keys
        keys[hit] = F.normalize(new, dim=-1)
        self.keys = keys

    def forward(self, h):  # h (B, S, d)
        B, S, d = h.shape
        r, best = self.retrieve(h)
        att = torch.softmax(h @ self.summary_query / math.sqrt(d), -1)  # (B, S): attention pooling
        a = (att.unsqueeze(-1) * h).sum(1, keepdim=True).expand(B, S, d)
        z = torch.cat([h, r, a], -1).reshape(B * S, 3 * d)
        probs = torch.softmax(self.router(z), -1)  # (BS, E)
        gate, route = probs.topk(self.expert_k, -1)
        gate = gate / gate.sum(-1, keepdim=True)
        u = F.gelu(self.inp(z))
        out = torch.zeros(B * S, d, dtype=h.dtype, device=h.device)
        for e in range(self.up.shape[0]):  # one batched matmul per expert over the tokens routed to it
            tok, slot = (route == e).nonzero(as_tuple=True)
            if tok.numel():
                y = F.gelu(u[tok] @ self.up[e]) @ self.down[e]
                out.index_add_(0, tok, y * gate[tok, slot].unsqueeze(1))
        E = probs.shape[1]
        frac = torch.zeros(E, dtype=h.dtype, device=h.device).index_add_(
            0, route.reshape(-1), torch.ones(route.numel(), dtype=h.dtype, device=h.device)) / route.numel()
        self.aux_loss = E * (frac * probs.mean(0)).sum()  # Switch load balance: 1 when uniform
        self.last_routes = route.detach()
        if self.training:
            self.update_keys(h, best)
        base = self.ffn(h) if self.ffn is not None else 0
        return base + out.view(B, S, d)


def _fiedler_rank(adjacency: np.ndarray) -> torch.Tensor:
    """Each node's rank along the Fiedler vector of the symmetrised graph Laplacian."""
    a = np.abs(np.asarray(adjacency, dtype=np.float64))
    if len(a) < 2:  # one node: no second eigenvector; its rank is 0
        return torch.zeros(len(a))
    a = (a + a.T) / 2
    np.fill_diagonal(a, 0)
    lap = np.diag(a.sum(1)) - a
    vec = np.linalg.eigh(lap)[1][:, 1]
    rank = np.empty(len(vec))
    rank[np.argsort(vec, kind="stable")] = np.arange(len(vec))
    return torch.from_numpy(rank).float()


class STLINK(STModel):
    """ST-LINK: node tokens, SE-Attention (spatial RoPE) and MRFFN in the adapted blocks of a PFA backbone."""

    name = "st-link"
    tasks = ("forecast",)

    def __init__(self, spec: ProblemSpec, backbone: str = "smollm2-135m", num_layers: int = 2,
                 trainable_top: int = 1, attention: str = "full", lora_rank: int = 8, patch_len: int | None = None,
                 use_se: bool = True, use_mrffn: bool = True, use_revin: bool = True, memory_slots: int = 64,
                 memory_top_k: int = 4, ema_momentum: float = 0.1, experts: int = 4, expert_k: int = 2,
                 expert_dim: int = 128, balance_weight: float = 0.01, rope_theta: float = 10000.0,
                 causal: bool = False, backbone_config: dict | None = None, pretrained: bool = True,
                 identity: str = "legacy", node_sample: int | None = None, se_blocks: str = "all"):
        super().__init__(spec)
        from stcast.nn.adapt import AdaptPolicy, adapt
        from stcast.nn.backbones import load_backbone

        N, C, L = spec.num_nodes, spec.num_channels, spec.input_len
        patch_len = patch_len or L
        if patch_len < 1 or L % patch_len:
            raise StcastError(f"patch_len={patch_len} must be >= 1 and divide the input length {L}")
        self.patch_len, self.patches = patch_len, L // patch_len
        self.use_revin, self.balance_weight = use_revin, balance_weight
        self.lm = load_backbone(backbone, num_layers=num_layers, causal=causal, config=backbone_config,
                                pretrained=pretrained)
        self.lm.embeddings = None
        self.adapt_report = adapt(self.lm, AdaptPolicy(trainable_top=trainable_top, attention=attention,
                                                       lora_rank=lora_rank, train_norms=True))
        d, n = self.lm.hidden_size, len(self.lm.stack.layers)
        self.adapted = list(range(n - trainable_top, n))
        self.se = None
        if se_blocks not in ("all", "adapted"):
            raise StcastError(f"se_blocks={se_blocks!r}; use 'all' (every block, the component map) or 'adapted'")
        self.se_blocks = list(range(n)) if se_blocks == "all" else self.adapted
        if use_se and self.se_blocks:  # num_layers 0 ("w/o LLM"): no block to rotate in, so no spatial rotation
            init = _fiedler_rank(spec.adjacency) if spec.adjacency is not None and N <= 4000 else None
            self.se = SERotary(self.lm.stack.spec.head_dim, N, rope_theta, init)
            for i in self.se_blocks:
                self.lm.stack.set_rotary(i, self.se)
        self.mrffn = nn.ModuleList()
        if use_mrffn:
            for i in self.adapted:
                m = MRFFN(self.lm.stack.layers[i].mlp, d, memory_slots, memory_top_k, ema_momentum, experts,
                          expert_k, expert_dim)
                self.lm.stack.set_ffn(i, m)
                self.mrffn.append(m)
        self.revin_w = nn.Parameter(torch.ones(N, C))
        self.revin_b = nn.Parameter(torch.zeros(N, C))
        self.patch_embed = nn.Linear(patch_len * C, d)
        if identity not in ("legacy", "add", "concat", "none"):
            raise StcastError(f"identity={identity!r}; use legacy, add, concat or none")
        if node_sample is not None and not 1 <= node_sample:
            raise StcastError(f"node_sample={node_sample} must be >= 1 (nodes per training step), or null for all")
        self.identity, self.node_sample = identity, node_sample
        self.st_identity = None
        if identity == "legacy":  # node + calendar embeddings added at std 0.02 (the first implementation)
            self.node_emb = nn.Parameter(torch.randn(N, d) * 0.02)
            self.tod = time_of_day(spec.steps_per_day, d)  # unseen rows -> mean row at inference (nn/calendar.py)
            self.dow = day_of_week(d)
            nn.init.normal_(self.tod.weight, std=0.02)
            nn.init.normal_(self.dow.weight, std=0.02)
        elif identity in ("add", "concat"):  # the shared identity at a matched scale, or concatenated and fused
            self.st_identity = STIdentity(d, N, spec.steps_per_day, fusion=identity)
        self.head = nn.Linear(self.patches * d, spec.horizon * C)

    def _revin(self, x, mask, w, b):
        """Masked per-sample, per-node statistics over the input steps; x (B, L, N, C); w, b (N, C) affine."""
        m = mask.float()
        cnt = m.sum(1, keepdim=True).clamp(min=1)
        mean = (x * m).sum(1, keepdim=True) / cnt
        std = (((x - mean) ** 2 * m).sum(1, keepdim=True) / cnt + 1e-5).sqrt()
        xn = torch.where(mask, (x - mean) / std, torch.zeros_like(x)) * w + b
        return xn, mean, std

    def forward(self, batch) -> Prediction:
        x, mask = batch.x, batch.x_mask.bool()
        self.check_window(x)
        B, L, N, C = x.shape
        s = self.spec
        nodes = torch.arange(N, device=x.device)
        node_index = None
        if self.training and self.node_sample is not None and self.node_sample < N:
            # token reduction: this step sees K random nodes (K x patches tokens per sample, not N x patches);
            # every node keeps its own embedding, spatial rotation and RevIN affine; inference sees all nodes
            node_index = nodes = torch.randperm(N, device=x.device)[:self.node_sample].sort().values
            x, mask, N = x[:, :, nodes], mask[:, :, nodes], self.node_sample
        rw, rb = self.revin_w[nodes], self.revin_b[nodes]
        if self.use_revin:
            x, mean, std = self._revin(x, mask, rw, rb)
        P, T = self.patches, self.patch_len
        patches = x.view(B, P, T, N, C).permute(0, 3, 1, 2, 4).reshape(B, N, P, T * C)  # node-major tokens
        last = torch.arange(P, device=x.device) * T + T - 1  # each patch's last step
        tod, dow = batch.tod_x[:, last], batch.dow_x[:, last]  # (B, P)
        tokens = self.patch_embed(patches)  # (B, N, P, d)
        if self.identity == "legacy":
            tokens = tokens + self.node_emb[nodes, None] + (self.tod(tod) + self.dow(dow))[:, None]
        elif self.st_identity is not None:
            tokens = self.st_identity(tokens, tod, dow, node_index=nodes)
        tokens = tokens.reshape(B, N * P, -1)
        if self.se is not None:
            self.se.set_tokens((last + 1 - L).repeat(N), nodes.repeat_interleave(P))
        h = self.lm(tokens)  # (B, N P, d)
        y = self.head(h.reshape(B, N, -1)).view(B, N, s.horizon, C).transpose(1, 2)  # (B, H, N, C)
        if self.use_revin:
            y = (y - rb) / (rw + 1e-10) * std + mean  # de-normalise (RevIN)
        aux = {}
        if self.mrffn and self.training:
            aux["moe_balance"] = self.balance_weight * sum(m.aux_loss for m in self.mrffn)
        return Prediction(y, aux_losses=aux, node_index=node_index)
