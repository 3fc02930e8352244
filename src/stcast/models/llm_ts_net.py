"""LLM-TS Net and U-LLM-TS Net (Sakhinana et al., arXiv 2408.14387; ../shared/papers/llm-ts-net-summary.md).

The summary names the mechanisms, not their equations; where it is silent the choice is ours and said here.

1. Text trend descriptions (`stcast.data.descriptions`): a "large" LM writes about each series; offline that is
   SmolLM2-135M-Instruct (`writer="smollm2-135m"`, default) or any local causal LM; `writer="template"` is the
   deterministic control. Two scopes (`text_scope`): one description per sensor from its training-period
   statistics, and one per window kind (level x trend x volatility of the input, 51 kinds), both cached on
   disk. Written once in `fit_statistics` (training steps only), stored as token ids in the model.
2. A small LM fine-tuned with LoRA-AMR (`nn/adapt.LoRAAMRLinear`: W0, B, D frozen, only C trains) embeds the
   descriptions. Tuning happens twice, as the summary's pipeline orders it: first on the descriptions themselves
   (`text_tuning_steps` Adam steps at `text_tuning_lr` in fit_statistics: masked-token prediction for an
   encoder such as MiniLM, next-token for a causal LM, through the tied word embeddings), then through the
   forecast loss while the forecaster trains. **On by default, by measurement** (Los-loop 12 -> 12, 5 epochs,
   one seed: 3.720 with the stage vs 3.815 without, pooled MAE; docs/benchmarks.md, "LLM-TS Net: fidelity"),
   although MiniLM (a sentence encoder) ships no MLM head, so its tied-embedding MLM loss starts near uniform
   (10.64 nats, ln 30522 = 10.33) and 100 steps move it to 10.20. Cost: ~1 min on one core for 258 texts.
   Text-level embeddings by attention pooling (P learned queries over the tokens -> P vectors
   per text). Default small LM: all-MiniLM-L6-v2 (the paper: Llama2-7B), LoRA-AMR on q and v of the top
   `tune_layers` blocks; the frozen blocks below are run once and cached (their input never changes).
   `lm_adapter="lora"` (peft) or `"none"` (frozen) for the comparison; `pretrained=False` = random weights.
3. Dynamic prompting: a pool of `pool_size` key-value pairs (key (d), prompt (prompt_len, d)); the relevance of
   key k_m to the window's query q (the mean of its step tokens) is additive attention, s_m = v^T tanh(W_q q +
   W_k k_m); the top-K prompts are prepended to the node's time-series tokens, each scaled by K softmax(s_topK)
   so the scores get gradient (our choice: top-K itself has none).
4. Grouped-query multi-head attention (our `Block`: pre-norm, SwiGLU, `kv_groups` key/value heads shared by
   `heads` query heads): `layers` blocks over each node's [prompts, L step tokens] (intra-series), then
   `layers` blocks over the N node tokens (inter-series). `kv_groups == heads` is plain MHA.
5. Cross-modal fusion: multi-head attention with the node token as query and its text embeddings (sensor text,
   window text; P vectors each, a type embedding apart) as keys and values; residual + LayerNorm; a linear
   forecasting head from the fused node token.
6. U-LLM-TS Net (`u-llm-ts-net`): the head also predicts a Laplace scale b; the loss is the Laplace negative
   log-likelihood |y - mu| / b + log b (errors weighted by the predicted uncertainty); quantiles (and so CRPS
   and 80 % / 98 % coverage) follow from the Laplace distribution.

CPU choices (ours): the series enter as patches of `patch_len` steps (default 3: 12 steps -> 4 tokens, plus K
prompts; 2, else 1, where 3 does not divide the lookback: chickenpox's 4 lags); while training, each step re-embeds
`text_sample` random sensor texts and the window texts its batch reads with gradient, the other texts keep their
last embedding (every text is fresh at evaluation); descriptions read the first channel of multi-channel data.

Switches for the ablations: `use_text=False` (w/o text), `shuffle_text=True` (each node reads another node's
texts under a fixed permutation: does the text carry more than an id?), `writer`, `pool_size=0` (w/o prompt
pool), `kv_groups`, `pretrained`, `lm_adapter`, `identity` (ours: the shared node + time-of-day + day-of-week
identity added to the patch tokens; **on by default, by measurement**: full METR-LA at an equal 10-minute budget
3.515 vs 3.817 pooled MAE, Los-loop 3 seeds 3.811 +- 0.047 vs 3.957 +- 0.058; `identity=False` is the paper's
model, and the configs behind the earlier tables pin it).
"""

from __future__ import annotations

import math
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stcast.data import descriptions as D
from stcast.errors import StcastError
from stcast.models.base import Prediction, ProblemSpec, STModel
from stcast.nn.identity import STIdentity
from stcast.nn.transformer import Block, BlockSpec

SCOPES = ("node", "window", "both")
ADAPTERS = ("lora-amr", "lora", "none")
DEFAULT_LEVELS = (0.01, 0.1, 0.5, 0.9, 0.99)


class PromptPool(nn.Module):
    """Key-value prompt pool with additive-attention relevance and top-K retrieval."""

    def __init__(self, d: int, size: int, top_k: int, length: int, score_dim: int = 16):
        super().__init__()
        if not 1 <= top_k <= size:
            raise StcastError(f"prompt pool: top_k={top_k} must be between 1 and pool_size={size}")
        if length < 1:
            raise StcastError(f"prompt pool: prompt_len={length} must be >= 1")
        self.top_k = top_k
        self.keys = nn.Parameter(torch.randn(size, d))
        self.prompts = nn.Parameter(torch.randn(size, length, d) * 0.02)
        self.w_q = nn.Linear(d, score_dim, bias=False)  # additive attention in a narrow score space
        self.w_k = nn.Linear(d, score_dim)
        self.v = nn.Linear(score_dim, 1, bias=False)

    def scores(self, q: torch.Tensor) -> torch.Tensor:
        """Additive attention s_m = v^T tanh(W_q q + W_k k_m): q (..., d) -> (..., M)."""
        return self.v(torch.tanh(self.w_q(q)[..., None, :] + self.w_k(self.keys))).squeeze(-1)

    def forward(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q (B, N, d) -> the prepended prompts (B, N, K * length, d) and the chosen indices (B, N, K)."""
        top = self.scores(q).topk(self.top_k, dim=-1)
        w = torch.softmax(top.values, -1) * self.top_k
        chosen = self.prompts[top.indices] * w[..., None, None]  # (B, N, K, length, d)
        return chosen.flatten(2, 3), top.indices


class TextEncoder(nn.Module):
    """The small LM over the description bank: frozen lower blocks (cached), LoRA-AMR/LoRA top blocks,
    attention pooling to `pool_queries` vectors per text, projected to the model width."""

    def __init__(self, lm: str, num_texts: int, max_tokens: int, d_out: int, lm_layers: int | None,
                 tune_layers: int, adapter: str, rank: int, alpha: float, pretrained: bool, pool_queries: int):
        super().__init__()
        from stcast.nn.adapt import AdaptPolicy, adapt
        from stcast.nn.backbones import load_backbone, reinitialize

        if adapter not in ADAPTERS:
            raise StcastError(f"lm_adapter {adapter!r}; use one of {', '.join(ADAPTERS)}")
        if max_tokens < 2 or pool_queries < 1:
            raise StcastError(f"max_text_tokens={max_tokens} must be >= 2 and pool_queries={pool_queries} >= 1")
        bb = load_backbone(lm, lm_layers)
        if bb.embeddings is None:
            raise StcastError(f"text LM {lm!r} has no word embeddings")
        total = len(bb.stack.layers)
        tune = 0 if adapter == "none" else tune_layers
        if not 0 <= tune <= total:
            raise StcastError(f"tune_layers={tune_layers}, but the text LM has {total} blocks")
        bb.stack.causal = bb.model_type in ("llama", "gpt2")  # a decoder reads its text left to right
        if not pretrained:
            reinitialize(bb)
        adapt(bb, AdaptPolicy(trainable_top=tune, attention="frozen" if adapter == "none" else adapter,
                              lora_rank=rank, lora_alpha=alpha, lora_targets=("q_proj", "v_proj"),
                              train_norms=False, train_positions=False))
        bb.embeddings.requires_grad_(False)
        self.lm, self.split = bb, total - tune
        d_lm = bb.hidden_size
        self.pool_q = nn.Parameter(torch.randn(pool_queries, d_lm) * 0.02)
        self.pool_k = nn.Linear(d_lm, d_lm)
        self.out = nn.Linear(d_lm, d_out)
        self.register_buffer("ids", torch.full((num_texts, max_tokens), -1, dtype=torch.long))
        self._bottom: tuple[torch.Tensor, torch.Tensor] | None = None

    def set_texts(self, texts: list[str]) -> None:
        enc = self.lm.tokenizer(list(texts), truncation=True, max_length=self.ids.shape[1], padding="max_length",
                                return_tensors="pt")
        ids = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -1)
        self.ids.copy_(ids.to(self.ids.device))
        self._bottom = None

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._bottom = None

    def texts(self) -> list[str]:
        tok = self.lm.tokenizer
        return [tok.decode(row[row >= 0].tolist(), skip_special_tokens=True, clean_up_tokenization_spaces=True)
                for row in self.ids]

    def _bias(self, keep: torch.Tensor) -> torch.Tensor:
        return torch.zeros(keep.shape, device=keep.device).masked_fill(~keep, float("-inf"))[:, None, None, :]

    def bottom(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states after the frozen lower blocks (T, S, d_lm) and the token mask: computed once."""
        if self._bottom is None or self._bottom[0].device != self.ids.device:
            keep = self.ids >= 0
            with torch.no_grad():
                h = self.lm.embeddings(self.ids.clamp(min=0))
                bias, pos = self._bias(keep), torch.arange(self.ids.shape[1], device=h.device)
                for layer in self.lm.stack.layers[:self.split]:
                    h = layer(h, pos, bias, self.lm.stack.causal)
            self._bottom = (h, keep)
        return self._bottom

    def _lm_hidden(self, ids: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """The LM's last hidden states (T, S, d_lm) over `ids`; the frozen lower blocks run without gradient."""
        bias, pos = self._bias(keep), torch.arange(ids.shape[1], device=ids.device)
        with torch.no_grad():
            h = self.lm.embeddings(ids)
            for layer in self.lm.stack.layers[:self.split]:
                h = layer(h, pos, bias, self.lm.stack.causal)
        for layer in self.lm.stack.layers[self.split:]:
            h = layer(h, pos, bias, self.lm.stack.causal)
        return self.lm.stack.norm(h)

    def description_loss(self, rows: torch.Tensor, gen: torch.Generator, mask_prob: float = 0.15) -> torch.Tensor:
        """The small LM's language-modelling loss on the descriptions `rows`: next-token prediction for a causal
        LM, masked-token prediction (15 % of the tokens, BERT's objective) for an encoder."""
        ids = self.ids[rows]
        keep = ids >= 0
        ids, keep = ids[:, :int(keep.sum(1).max())], keep[:, :int(keep.sum(1).max())]  # no all-padding columns
        tokens = ids.clamp(min=0)
        if self.lm.stack.causal:
            h = self._lm_hidden(tokens, keep)[:, :-1]
            target, scored = tokens[:, 1:], keep[:, 1:]
        else:
            special = torch.zeros_like(keep)
            special[:, 0] = True  # [CLS]
            special |= tokens == (self.lm.tokenizer.sep_token_id or -1)
            hide = (torch.rand(ids.shape, generator=gen) < mask_prob).to(ids.device) & keep & ~special
            mask_id = self.lm.tokenizer.mask_token_id
            if mask_id is None:
                raise StcastError("the text LM's tokenizer has no mask token for masked-token tuning")
            h = self._lm_hidden(tokens.masked_fill(hide, mask_id), keep)
            target, scored = tokens, hide
        if not scored.any():
            return h.sum() * 0.0
        # logits through the tied word embeddings (the output layer of a tied-embedding LM; MiniLM ships none,
        # so its input table serves: our reading), at the scored positions only
        logits = h[scored] @ self.lm.embeddings.word.weight.t()
        return F.cross_entropy(logits, target[scored])

    def tune_on_descriptions(self, steps: int, lr: float = 1e-3, batch: int = 16, seed: int = 0) -> dict:
        """The paper's second step ("fine-tune the small LM on the descriptions using LoRA-AMR"): `steps` Adam
        steps of the language-modelling loss over the description bank, updating only the adapter's trainable
        weights (LoRA-AMR: C). Its own generator: the run's RNG streams are not consumed."""
        params = [p for p in self.lm.parameters() if p.requires_grad]
        if not params or steps < 1:
            return {"steps": 0}
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(params, lr=lr)
        was_training = self.lm.training
        self.lm.train()
        losses = []
        for _ in range(steps):
            rows = torch.randperm(self.ids.shape[0], generator=gen)[:batch].to(self.ids.device)
            loss = self.description_loss(rows, gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        self.lm.train(was_training)
        self._bottom = None
        head = max(1, steps // 10)
        return {"steps": steps, "loss_first": sum(losses[:head]) / head, "loss_last": sum(losses[-head:]) / head}

    def forward(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The pooled embeddings (T, pool_queries, d_out) of every text, or of `rows` only."""
        h, keep = self.bottom()
        if rows is not None:
            h, keep = h[rows], keep[rows]
        width = int(keep.sum(1).max())  # positions that are padding in every text are masked: dropped, no change
        h, keep = h[:, :width], keep[:, :width]
        bias, pos = self._bias(keep), torch.arange(h.shape[1], device=h.device)
        for layer in self.lm.stack.layers[self.split:]:
            h = layer(h, pos, bias, self.lm.stack.causal)
        h = self.lm.stack.norm(h)
        scores = torch.einsum("tsd,pd->tps", self.pool_k(h), self.pool_q) / math.sqrt(h.shape[-1])
        scores = scores.masked_fill(~keep[:, None, :], float("-inf"))
        pooled = torch.einsum("tps,tsd->tpd", torch.softmax(scores, -1), h)  # attention pooling
        return self.out(pooled)


class CrossModalFusion(nn.Module):
    """Multi-head attention from the node token (query) to its text embeddings (keys, values)."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(d)

    def forward(self, node: torch.Tensor, text: torch.Tensor, need_weights: bool = False):
        """node (B, N, d), text (B, N, T, d) -> fused (B, N, d) and the weights (B, N, T) if asked."""
        B, N, T, d = text.shape
        out, w = self.attn(node.reshape(B * N, 1, d), text.reshape(B * N, T, d), text.reshape(B * N, T, d),
                           need_weights=need_weights)
        fused = self.norm(node + out.view(B, N, d))
        return fused, (w.view(B, N, T) if need_weights else None)


class LLMTSNet(STModel):
    """LLM-TS Net: trend descriptions embedded by a small LM (LoRA-AMR), a dynamic prompt pool, grouped-query
    attention and cross-modal fusion."""

    name = "llm-ts-net"
    tasks = ("forecast",)
    uncertainty = False

    def __init__(self, spec: ProblemSpec, d_model: int = 64, heads: int = 4, kv_groups: int = 2, layers: int = 1,
                 pool_size: int = 16, top_k: int = 4, prompt_len: int = 1, use_text: bool = True,
                 text_scope: str = "both", writer: str = "smollm2-135m", shuffle_text: bool = False,
                 lm: str = "minilm-l6", lm_layers: int | None = None, tune_layers: int = 1,
                 lm_adapter: str = "lora-amr", lora_rank: int = 8, lora_alpha: float = 16.0, pretrained: bool = True,
                 pool_queries: int = 4, max_text_tokens: int = 64, text_sample: int | None = 32,
                 patch_len: int | None = None, identity: bool = True, dropout: float = 0.1,
                 text_tuning_steps: int = 100, text_tuning_lr: float = 1e-3):
        super().__init__(spec)
        N, L, C, H = spec.num_nodes, spec.input_len, spec.num_channels, spec.horizon
        if text_scope not in SCOPES:
            raise StcastError(f"text_scope {text_scope!r}; use one of {', '.join(SCOPES)}")
        if d_model < 1 or heads < 1 or d_model % heads:
            raise StcastError(f"d_model={d_model} must be a positive multiple of heads={heads}")
        if kv_groups < 1 or heads % kv_groups:
            raise StcastError(f"kv_groups={kv_groups} must divide heads={heads} (grouped-query attention)")
        patch_len = next(p for p in (3, 2, 1) if L % p == 0) if patch_len is None else patch_len
        if patch_len < 1 or L % patch_len:
            raise StcastError(f"patch_len={patch_len} must divide the input length {L}: set model_kw.{self.name}."
                              f"patch_len to one of {[p for p in range(1, L + 1) if L % p == 0]}, or an input "
                              f"length that is a multiple of {max(patch_len, 1)} (--input-len)")
        if text_sample is not None and text_sample < 1:
            raise StcastError(f"text_sample={text_sample} must be >= 1 (or null: every sensor text each step)")
        if text_tuning_steps < 0 or text_tuning_lr <= 0:
            raise StcastError(f"text_tuning_steps={text_tuning_steps}, text_tuning_lr={text_tuning_lr}: need >= 0, > 0")
        self.text_tuning_steps, self.text_tuning_lr = text_tuning_steps, text_tuning_lr
        self.text_tuning_report: dict | None = None
        if layers < 1 or pool_size < 0:
            raise StcastError(f"layers={layers} must be >= 1 and pool_size={pool_size} >= 0")
        if use_text and writer != "template":
            D.get_writer(writer)  # a missing or unknown writer fails here, before any data is read
        self.use_text, self.text_scope, self.writer, self.shuffle_text = use_text, text_scope, writer, shuffle_text
        self.patch_len, self.text_sample = patch_len, text_sample
        self.embed = nn.Linear(2 * C * patch_len, d_model)  # a patch's values + observed flags -> a token
        self.step_pos = nn.Parameter(torch.randn(L // patch_len, d_model) * 0.02)
        self.identity = STIdentity(d_model, N, spec.steps_per_day) if identity else None
        self.pool = PromptPool(d_model, pool_size, top_k, prompt_len) if pool_size else None
        gqa = BlockSpec(style="llama", hidden_size=d_model, intermediate_size=2 * d_model, num_layers=layers,
                        num_heads=heads, num_kv_heads=kv_groups, final_norm=False)
        self.temporal = nn.ModuleList(Block(gqa) for _ in range(layers))  # intra-series GQ-MHA
        self.spatial = nn.ModuleList(Block(gqa) for _ in range(layers))  # inter-series GQ-MHA
        self.to_node = nn.Linear(L // patch_len * d_model, d_model)
        self.drop = nn.Dropout(dropout)
        self.register_buffer("node_mean", torch.zeros(N))  # channel 0, scaled units, for the window kinds
        self.register_buffer("node_std", torch.ones(N))
        perm = torch.randperm(N, generator=torch.Generator().manual_seed(0)) if shuffle_text else torch.arange(N)
        self.register_buffer("text_of", perm, persistent=False)
        if use_text:
            self.text = TextEncoder(lm, N + D.NUM_KINDS, max_text_tokens, d_model, lm_layers, tune_layers,
                                    lm_adapter, lora_rank, lora_alpha, pretrained, pool_queries)
            self.text_type = nn.Parameter(torch.randn(2, d_model) * 0.02)  # sensor text, window text
            self.fusion = CrossModalFusion(d_model, heads, dropout)
        self._text_cache: torch.Tensor | None = None  # evaluation: every text embedded once
        self._stale: torch.Tensor | None = None  # training with text_sample: the last embedding of every text
        self.head = nn.Linear(d_model, H * C)
        self.scale_head = nn.Linear(d_model, H * C) if self.uncertainty else None
        if self.uncertainty:
            self.levels = tuple(spec.quantiles) if spec.quantiles else DEFAULT_LEVELS
        self.describe_report = None

    def fit_statistics(self, train_windows) -> None:
        """Sensor statistics and descriptions from the training steps only; the texts go into the model."""
        data, scaler = train_windows.data, train_windows.scaler
        stats = D.training_statistics(train_windows)
        if len(stats.mean) != self.spec.num_nodes:
            raise StcastError(f"llm-ts-net was built for {self.spec.num_nodes} nodes; the data has "
                              f"{len(stats.mean)}")
        mu, sd = float(scaler.mean[0]), float(scaler.std[0])
        self.node_mean.copy_(torch.from_numpy(np.nan_to_num((stats.mean - mu) / sd)).float())
        self.node_std.copy_(torch.from_numpy(np.nan_to_num(stats.std / sd, nan=1.0)).float().clamp(min=1e-3))
        if self.use_text:
            meta = data.meta
            questions = D.node_questions(stats, meta.name, meta.units) + D.window_questions(
                meta.name, D.duration(self.spec.input_len, meta.step_minutes),
                D.duration(self.spec.horizon, meta.step_minutes))
            texts, rep = D.describe(questions, D.get_writer(self.writer))
            self.describe_report = rep
            if rep.generated:
                print(f"llm-ts-net: {len(texts)} descriptions by {self.writer}: {rep.generated} written in "
                      f"{rep.seconds:.1f} s, {rep.cached} from the cache", file=sys.stderr)
            self.text.set_texts(texts)
            if self.text_tuning_steps:  # the paper's step 2: tune the small LM on the descriptions (LoRA-AMR)
                rep = self.text.tune_on_descriptions(self.text_tuning_steps, self.text_tuning_lr)
                self.text_tuning_report = rep
                if rep["steps"]:
                    print(f"llm-ts-net: small LM tuned on the descriptions, {rep['steps']} steps, LM loss "
                          f"{rep['loss_first']:.3f} -> {rep['loss_last']:.3f}", file=sys.stderr)
            self._text_cache = None

    def train(self, mode: bool = True):
        self._text_cache = self._stale = None
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._text_cache = self._stale = None

    def text_embeddings(self, kinds: torch.Tensor | None = None) -> torch.Tensor:
        """(N + kinds, P, d). Evaluating: every text once, reused (weights fixed). Training with `text_sample` k
        (ours, CPU cost): a step embeds k random sensor texts and the window texts `kinds` its batch reads (the
        others cannot reach its loss: same outputs and gradients) with gradient; the rest keep their last
        embedding (detached), so every text is refreshed every ~N/k steps."""
        N = self.spec.num_nodes
        if not (self.training or torch.is_grad_enabled()):
            if self._text_cache is None:
                self._text_cache = self.text()
            return self._text_cache
        if self._stale is None:
            with torch.no_grad():
                self._stale = self.text()
        device = self._stale.device
        window = torch.arange(N, N + D.NUM_KINDS, device=device) if kinds is None else N + kinds.to(device)
        k = 0 if self.text_scope == "window" else N if self.text_sample is None else min(self.text_sample, N)
        sensors = torch.arange(N, device=device)[:k] if k in (0, N) else torch.randperm(N)[:k].to(device)
        rows = torch.cat([sensors, window if self.text_scope != "node" else window[:0]])
        fresh = self.text(rows)
        self._stale[rows] = fresh.detach()
        return self._stale.index_put((rows,), fresh)

    def text_tokens(self, batch) -> torch.Tensor:
        """Each node's text embeddings (B, N, T, d): its sensor text and/or its window's text."""
        B, N = batch.x.shape[0], batch.x.shape[2]
        src = self.text_of  # shuffle_text: node n reads node src[n]'s texts
        kinds = None
        if self.text_scope in ("window", "both"):
            kinds = D.window_kinds(batch.x[..., 0], batch.x_mask[..., 0], self.node_mean, self.node_std)[:, src]
        emb = self.text_embeddings(None if kinds is None else kinds.unique())
        parts = []
        if self.text_scope in ("node", "both"):
            parts.append((emb[src] + self.text_type[0])[None].expand(B, -1, -1, -1))
        if kinds is not None:
            parts.append(emb[N + kinds] + self.text_type[1])
        return torch.cat(parts, 2)

    def encode(self, batch) -> torch.Tensor:
        """The fused node tokens (B, N, d)."""
        (x, mask), (B, L, N, C), P = (batch.x, batch.x_mask), batch.x.shape, self.patch_len
        inp = torch.cat([x, mask.to(x.dtype)], -1).permute(0, 2, 1, 3).reshape(B, N, L // P, P * 2 * C)
        tok = self.embed(inp) + self.step_pos  # (B, N, L / P, d)
        if self.identity is not None:
            tok = self.identity(tok, batch.tod_x[:, P - 1::P], batch.dow_x[:, P - 1::P])
        seq = tok
        if self.pool is not None:
            prompts, _ = self.pool(tok.mean(2))
            seq = torch.cat([prompts, tok], 2)
        d = seq.shape[-1]
        h = self.drop(seq).reshape(B * N, -1, d)
        pos = torch.arange(h.shape[1], device=h.device)
        for block in self.temporal:
            h = block(h, pos)
        node = self.to_node(h[:, -(L // P):].reshape(B, N, -1))
        pos = torch.arange(N, device=h.device)
        for block in self.spatial:
            node = block(node, pos)
        if self.use_text:
            node, _ = self.fusion(node, self.text_tokens(batch))
        return node

    def forward(self, batch) -> Prediction:
        self.check_window(batch.x)
        B, L, N, C = batch.x.shape
        node = self.drop(self.encode(batch))
        mu = self.head(node).view(B, N, -1, C).transpose(1, 2)  # (B, H, N, C)
        if self.scale_head is None:
            return Prediction(point=mu)
        b = F.softplus(self.scale_head(node)).view(B, N, -1, C).transpose(1, 2) + 1e-3
        q = torch.stack([mu + b * laplace_quantile(lv) for lv in self.levels], -1)
        return Prediction(point=mu, quantiles=q, levels=self.levels, scale=b)


def laplace_quantile(level: float) -> float:
    """The standard Laplace distribution's quantile at `level`."""
    return -math.copysign(1.0, level - 0.5) * math.log(1 - 2 * abs(level - 0.5))


class ULLMTSNet(LLMTSNet):
    """U-LLM-TS Net: a Laplace (mu, b) per output; the loss is the uncertainty-weighted Laplace NLL."""

    name = "u-llm-ts-net"
    uncertainty = True
    native_quantiles = True
