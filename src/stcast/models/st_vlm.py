"""ST-VLM (Zhao et al.): spatial relations drawn as a correlation image, fused with a task prompt and per-node
temporal tokens in a vision-language transformer (../shared/papers/st-vlm.txt).

Per input window (L steps, N nodes):
- Spatial-to-image (eqs. 1-2 + the spectral correlation, `stcast.nn.correlation`): DTW, time-lagged cross-
  correlation and FFT-amplitude Pearson between every node pair -> a 3 x N x N image, each channel standardised;
  the multi-dimensional channel fusion layer is a learned 1 x 1 convolution over the channels (identity at
  init). Images are cached by window (start index + a fingerprint of its values), so later epochs reuse them;
  `image_cache_mb` bounds each of the two caches (this model's training images, the process's eval images);
  `image_cache_dir` (off by default) also keeps them on disk, shared by rows and processes (`DiskImages`).
- Task prompt and temporal encoder: the paper's prompt ("This is a spatial-temporal prediction task, forecast
  the next H steps in N nodes; ...") tokenised and embedded by the backbone's own tokenizer and (frozen) word
  embeddings; an LSTM per node over its L steps (eq. 3), its last state mapped to the backbone width (the paper
  pads it to the input size: a linear map is our reading); M_concat = [E_t, E_p].
- Backbone: ViLT (`backbone="vilt"`, when its files are on the machine) or, offline by default,
  all-MiniLM-L6-v2: a bidirectional BERT encoder with ViLT's WordPiece vocabulary. ViLT's layers are pre-LN
  (transformers' ViltLayer: layernorm_before / layernorm_after, as in ViT) with a final LayerNorm, and we run
  them so (a parity test against transformers' ViltModel: tests/nn/test_backbones.py); MiniLM's are BERT's
  post-LN, as it was pretrained. The offline default thus differs from ViLT in layout as well as in size.
  The image enters ViLT-style as linear "patch" tokens, one per node row
  (the row's 3N pixels -> d); modality-type embeddings mark temporal, text and image tokens.
- Attention-based adaptive fine-tuning: in the first F layers (default 1) the attention is cross-modal: Q from
  M_concat through LoRA (eq. 4), K from the image tokens through LoRA (eq. 5), V from the image tokens (eq. 6,
  frozen), scores biased by A_bias = PadConv(image) (eqs. 7-8: a 1-D convolution over each node's image row,
  zero-padded for the text queries, standardised, scaled by a learned gain). The following U layers run
  self-attention over M_concat with LoRA on q and k only (eqs. 9-10); every pretrained weight is frozen.
- Predictor: an LSTM decoder over the H output steps (input: the node's fused token, mapped to the decoder
  width, plus a learned step embedding) and a linear map to the channels (eq. 11); the engine's masked MAE is
  eq. 12.
- Time-lagged cross-correlation over every lag of eq. 2 (|tau| <= I - 1, `max_lag=None`); `max_lag=3` is our
  earlier cap (cheaper images: 7 lags instead of 23 on 12 steps), measured in docs/benchmarks.md.
- Recipe: Adam at batch 32 with the paper's plateau scheduler (`lr_schedule: plateau`, patience 10, x 0.5) is
  what ST-VLM's configs set; the paper splits PEMS 6:2:2, the field's METR-LA / Los-loop tables use 7:1:2.
- CPU defaults (ours; the paper trains ViLT's 12 layers on a GPU): F = 1 cross-modal layer and U = 2 LoRA
  layers of MiniLM's 6 (`lora_layers=None` keeps every layer), LSTM widths 64. Costs: docs/benchmarks.md.

Switches (the paper's ablation, Fig. 3, and ours): `use_bias=False` is "w/o SAF" (no bias, and the first layer
is plain self-attention over [temporal, text, image] tokens); `finetune=False` is "w/o FT" (no LoRA: frozen
backbone); `use_image=False` drops the image (prompt + temporal tokens only); `channels=("dtw",)` etc. keep one
channel; `use_prompt=False` drops the text; `pretrained=False` is the same backbone with random weights;
`identity=True` (ours) adds the shared node + calendar identity (nn/identity.py) to the temporal tokens.
Missing inputs enter the correlations as the scaled mean (0), as they enter every other model.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from stcast.errors import StcastError
from stcast.models.base import Prediction, ProblemSpec, STModel
from stcast.nn.correlation import CHANNELS, correlation_image, standardise
from stcast.nn.identity import STIdentity

PROMPT = ("This is a spatial-temporal prediction task, forecast the next {horizon} steps in {nodes} nodes; the "
          "image depicts the temporal correlation among nodes, with color blocks representing correlation levels.")


class ImageCache:
    """Correlation images of fixed windows, keyed by (start, fingerprint of the window's values), stored as
    float16 on the CPU up to `limit_mb`; beyond it images are recomputed (nothing is evicted). Models with the
    same image settings in one process share one cache for the images they draw in eval mode
    (`ImageCache.shared`): a benchmark's few-shot, ablation or seed rows draw the validation and test images once
    (on METR-LA at 1 thread that is ~30 min per model). Training images stay in each model's own cache: a row
    with a wall-clock budget pays for the images it trains on, whatever ran before it in the process (with one
    shared cache a second row trained on the first row's images and made 38 % more steps in the same 5 min)."""

    _shared: dict[tuple, ImageCache] = {}

    @classmethod
    def shared(cls, limit_mb: float, *settings, disk: DiskImages | None = None) -> ImageCache:
        """The process's cache for images drawn with these settings (channels, max_lag, window shape)."""
        key = (float(limit_mb), *settings, disk.root if disk is not None else None)
        if key not in cls._shared:
            cls._shared[key] = cls(limit_mb, disk)
        return cls._shared[key]

    def __init__(self, limit_mb: float, disk: DiskImages | None = None):
        self.limit = int(limit_mb * 2 ** 20)
        self.store: dict[tuple[int, float], torch.Tensor] = {}
        self.bytes = 0
        self.hits = self.misses = self.disk_hits = 0
        self.disk = disk

    @staticmethod
    def keys(start: torch.Tensor, x: torch.Tensor) -> list[tuple[int, float]]:
        fp = x.detach().double().flatten(1)
        fp = (fp.sum(1) + (fp * torch.arange(1, fp.shape[1] + 1, dtype=fp.dtype, device=fp.device)).sum(1) * 1e-6)
        return list(zip(start.tolist(), fp.tolist()))

    def get_or_make(self, start, x, make) -> torch.Tensor:
        """Images are rounded to float16 whether cached or not: a window's image is the same in every epoch."""
        if self.limit <= 0 and self.disk is None:
            return make(torch.arange(x.shape[0], device=x.device)).half().float()
        keys = self.keys(start, x)
        missing = [i for i, k in enumerate(keys) if k not in self.store]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        fresh = {}
        if missing and self.disk is not None:  # drawn before, by this run or another process
            for i in missing:
                img = self.disk.get(keys[i])
                if img is not None:
                    fresh[i] = img.to(x.device, torch.float32)
            self.disk_hits += len(fresh)
            missing = [i for i in missing if i not in fresh]
        if missing:
            made = make(torch.tensor(missing, device=x.device)).half().float()
            fresh.update(zip(missing, made))
            if self.disk is not None:
                for i, img in zip(missing, made):
                    self.disk.put(keys[i], img)
        for i, img in fresh.items():
            if self.bytes + img.numel() * 2 <= self.limit:
                self.store[keys[i]] = img.to("cpu", torch.float16)  # exact: already float16 values
                self.bytes += img.numel() * 2
        return torch.stack([fresh[i] if i in fresh else self.store[k].to(x.device, torch.float32)
                            for i, k in enumerate(keys)])


class DiskImages:
    """Correlation images kept on disk, float16, one .npy per window (start, fingerprint of its values), under
    `root/<settings>/`: shared by epochs, rows and processes (issue 28: ST-VLM draws each image once per dataset
    and window, not once per run). Written atomically (a temporary file renamed), read without pickle. Bounded:
    past `limit_mb` on disk nothing more is written (images are then drawn as before). Off by default
    (`image_cache_dir`): a row under a wall-clock budget must pay for its own training images."""

    def __init__(self, root, settings: tuple, limit_mb: float):
        import hashlib
        from pathlib import Path

        tag = hashlib.sha256(repr(settings).encode()).hexdigest()[:16]
        self.root = str(Path(root))
        self.dir = Path(root) / tag
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StcastError(f"image_cache_dir {root}: cannot create it ({e})") from e
        self.limit = int(limit_mb * 2 ** 20)
        self.bytes = sum(f.stat().st_size for f in self.dir.glob("*.npy"))

    def _path(self, key):
        import struct

        start, fp = key
        return self.dir / f"{start}_{struct.pack('>d', fp).hex()}.npy"

    def get(self, key) -> torch.Tensor | None:
        import numpy as np

        path = self._path(key)
        if not path.is_file():
            return None
        try:
            return torch.from_numpy(np.load(path, allow_pickle=False))
        except (OSError, ValueError):  # a file cut short by a crash elsewhere: drawn again and rewritten
            return None

    def put(self, key, img: torch.Tensor) -> None:
        import os

        import numpy as np

        arr = img.detach().to("cpu", torch.float16).numpy()
        if self.bytes + arr.nbytes > self.limit:
            return
        path = self._path(key)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, arr, allow_pickle=False)
        os.replace(tmp, path)
        self.bytes += arr.nbytes


def cross_modal_block(block: nn.Module, h_q: torch.Tensor, h_img: torch.Tensor,
                      bias: torch.Tensor | None) -> torch.Tensor:
    """A pretrained block run cross-modally (eqs. 4-7): queries from M_concat, keys and values from the image
    tokens, scores + A_bias; its own projections (LoRA-wrapped where fine-tuned), norms and FFN."""
    attn = block.self_attn
    B, Sq, _ = h_q.shape
    Sk = h_img.shape[1]
    nh, hd = attn.n_head, attn.head_dim
    q_in, kv_in = (h_q, h_img) if block.post_norm else (block.norm1(h_q), block.norm1(h_img))
    q = attn.q_proj(q_in).view(B, Sq, nh, hd).transpose(1, 2)  # eq. 4
    k = attn.k_proj(kv_in).view(B, Sk, attn.n_kv, hd).transpose(1, 2)  # eq. 5
    v = attn.v_proj(kv_in).view(B, Sk, attn.n_kv, hd).transpose(1, 2)  # eq. 6
    mask = None if bias is None else bias[:, None] / math.sqrt(hd)  # eq. 7: (QK^T + A_bias) / sqrt(d_k)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=attn.n_kv != nh)
    out = attn.o_proj(out.transpose(1, 2).reshape(B, Sq, -1))
    if block.post_norm:
        x = block.norm1(h_q + out)
        return block.norm2(x + block.mlp(x))
    x = h_q + out
    return x + block.mlp(block.norm2(x))


class STVLM(STModel):
    name = "st-vlm"
    flexible_state = ("prompt_ids",)  # its length follows the tokenizer: checked by value at load, not by shape
    tasks = ("forecast",)

    def __init__(self, spec: ProblemSpec, backbone: str = "minilm-l6", pretrained: bool = True,
                 cross_layers: int = 1, lora_layers: int | None = 2, lora_rank: int = 8, lora_alpha: float = 16.0,
                 finetune: bool = True, use_image: bool = True, channels: tuple[str, ...] = CHANNELS,
                 use_bias: bool = True, use_prompt: bool = True, prompt: str | None = None,
                 max_lag: int | None = None,
                 encoder_hidden: int = 64, decoder_hidden: int = 64, identity: bool = False,
                 image_cache_mb: float = 4096.0, image_cache_dir: str | None = None,
                 image_disk_mb: float = 16384.0, dropout: float = 0.1):
        super().__init__(spec)
        from stcast.nn.adapt import AdaptPolicy, adapt
        from stcast.nn.backbones import load_backbone, reinitialize

        N, L, C = spec.num_nodes, spec.input_len, spec.num_channels
        channels = tuple(channels)
        max_lag = L - 1 if max_lag is None else max_lag  # eq. 2: tau in [-I + 1, I - 1]
        if use_image and (not channels or any(c not in CHANNELS for c in channels)):
            raise StcastError(f"channels {list(channels)}: choose one or more of {', '.join(CHANNELS)}")
        if use_image and "xcorr" in channels and not 0 <= max_lag < L:
            raise StcastError(f"max_lag={max_lag} needs a window longer than the lags: the input has {L} steps "
                              f"(use max_lag <= {L - 1})")
        if cross_layers < (1 if use_image else 0):
            raise StcastError(f"cross_layers={cross_layers}: the image needs at least one cross-modal layer")
        bb = load_backbone(backbone, None)
        total = len(bb.stack.layers)
        lora_layers = total - cross_layers if lora_layers is None else lora_layers
        if lora_layers < 0 or cross_layers + lora_layers > total:
            raise StcastError(f"cross_layers {cross_layers} + lora_layers {lora_layers} exceed the {total} layers "
                              f"of {backbone}")
        keep = cross_layers + lora_layers
        bb.stack.layers = bb.stack.layers[:keep]  # Algorithm 1: F cross-modal layers, then U LoRA layers
        if not pretrained:
            reinitialize(bb)
        if bb.embeddings is None:
            raise StcastError(f"backbone {backbone!r} has no word embeddings for the task prompt")
        d = bb.hidden_size
        self.backbone, self.d = bb, d
        self.cross_layers, self.use_image, self.channels = cross_layers, use_image, channels
        self.use_bias, self.use_prompt, self.max_lag = use_bias, use_prompt, max_lag
        # eqs. 4-5, 9-10: LoRA on q and k of every kept layer; nothing else of the backbone trains
        policy = AdaptPolicy(trainable_top=keep if finetune else 0, attention="lora", lora_rank=lora_rank,
                             lora_alpha=lora_alpha, lora_targets=("q_proj", "k_proj"), train_norms=False,
                             train_positions=False)
        adapt(bb, policy)
        bb.embeddings.requires_grad_(False)
        text = (prompt or PROMPT).format(horizon=spec.horizon, nodes=N)
        ids = bb.tokenizer(text)["input_ids"] if use_prompt else []
        # saved in model files: a loaded model reads the prompt it was trained on, whatever tokenizer this machine has
        self.register_buffer("prompt_ids", torch.tensor(ids, dtype=torch.long))
        self.modality = nn.Embedding(3, d)  # temporal, text, image
        nn.init.normal_(self.modality.weight, std=0.02)
        self.encoder = nn.LSTM(2 * C, encoder_hidden, batch_first=True)  # eq. 3, input: values + observed flag
        self.to_d = nn.Linear(encoder_hidden, d)
        self.identity = STIdentity(d, N, spec.steps_per_day) if identity else None
        if use_image:
            k = len(channels)
            self.fuse = nn.Conv2d(k, k, 1)  # multi-dimensional channel fusion
            with torch.no_grad():
                self.fuse.weight.copy_(torch.eye(k).view(k, k, 1, 1))
                self.fuse.bias.zero_()
            self.patch = nn.Linear(k * N, d)  # one image token per node row (ViLT-style linear patch embedding)
            self.pad_conv = nn.Conv1d(k, 1, 3, padding=1) if use_bias else None  # eq. 8
            self.bias_gain = nn.Parameter(torch.ones(())) if use_bias else None
            self.cross = cross_layers if use_bias else 0  # the first F backbone layers run cross-modally
            settings = (channels, max_lag, (L, N, C))
            disk = DiskImages(image_cache_dir, settings, image_disk_mb) if image_cache_dir else None
            self.cache = ImageCache.shared(image_cache_mb, *settings, disk=disk)  # eval images
            self.train_cache = ImageCache(image_cache_mb, disk)  # this model's own: budgets stay equal across rows
        self.drop = nn.Dropout(dropout)
        self.dec_in = nn.Linear(d, decoder_hidden)  # the fused token, narrowed before the recurrence
        self.step = nn.Parameter(torch.zeros(spec.horizon, decoder_hidden))
        self.decoder = nn.LSTM(decoder_hidden, decoder_hidden, batch_first=True)  # eq. 11
        self.head = nn.Linear(decoder_hidden, C)

    # ------------------------------------------------------------------------------------------ pieces

    def image(self, batch) -> torch.Tensor:
        """The window's correlation image (B, k, N, N), from the cache where it was drawn before."""
        series = batch.x.permute(0, 2, 1, 3)  # (B, N, L, C)

        def make(index):
            return correlation_image(series[index], self.channels, self.max_lag)

        return (self.train_cache if self.training else self.cache).get_or_make(batch.start, batch.x, make)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """The saved prompt token ids replace the ones this machine's tokenizer just produced (a warning when they
        differ: another tokenizer); files written before the ids were saved keep the rebuilt ones."""
        key = prefix + "prompt_ids"
        saved = state_dict.get(key)
        if saved is None:
            state_dict[key] = self.prompt_ids
        elif saved.shape != self.prompt_ids.shape or not torch.equal(saved.cpu(), self.prompt_ids.cpu()):
            if self.prompt_ids.device.type != "meta":
                warnings.warn("st-vlm: this backbone's tokenizer gives other token ids for the task prompt than the "
                              "model was trained with; the trained ids are used", stacklevel=2)
            self.prompt_ids = saved.to(self.prompt_ids.device).clone()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def temporal_tokens(self, batch) -> torch.Tensor:
        B, L, N, C = batch.x.shape
        seq = torch.cat([batch.x, batch.x_mask.to(batch.x.dtype)], -1).permute(0, 2, 1, 3).reshape(B * N, L, 2 * C)
        _, (h, _) = self.encoder(seq)
        tokens = self.to_d(h[-1]).view(B, N, self.d)
        if self.identity is not None:
            tokens = self.identity(tokens[:, :, None], batch.tod_x[:, -1:], batch.dow_x[:, -1:])[:, :, 0]
        return tokens + self.modality.weight[0]

    def attention_bias(self, img: torch.Tensor, text_len: int) -> torch.Tensor:
        """A_bias = PadConv(image) (eq. 8): each node's image row (k, N) through a 1-D convolution, standardised;
        zero rows for the text queries. (B, N + T, N)."""
        B, k, N, _ = img.shape
        rows = self.pad_conv(img.permute(0, 2, 1, 3).reshape(B * N, k, N)).view(B, N, N)
        rows = standardise(rows)  # per sample over its N x N cells, as the image (a single node's 1 x 1: 0)
        return F.pad(rows * self.bias_gain, (0, 0, 0, text_len))

    # ------------------------------------------------------------------------------------------ forward

    def forward(self, batch) -> Prediction:
        self.check_window(batch.x)
        B, L, N, C = batch.x.shape
        h = self.temporal_tokens(batch)
        if self.use_prompt:
            text = self.backbone.embeddings(self.prompt_ids[None]) + self.modality.weight[1]
            h = torch.cat([h, text.expand(B, -1, -1)], 1)  # M_concat = [E_t, E_p]
        h = self.drop(h)
        layers = self.backbone.stack.layers
        first = 0
        if self.use_image:
            img = self.fuse(self.image(batch))
            img_tokens = self.patch(img.permute(0, 2, 1, 3).reshape(B, N, -1)) + self.modality.weight[2]
            if self.cross:  # eqs. 4-8 in the first F layers
                bias = self.attention_bias(img, h.shape[1] - N)
                for block in layers[:self.cross]:
                    h = cross_modal_block(block, h, img_tokens, bias)
                first = self.cross
            else:  # w/o SAF: the image tokens join the sequence; plain self-attention everywhere
                h = torch.cat([h, img_tokens], 1)
        positions = torch.arange(h.shape[1], device=h.device)
        for layer in layers[first:]:  # eqs. 9-10: LoRA on q/k, bidirectional self-attention
            h = layer(h, positions, None, False)
        fused = self.backbone.stack.norm(h)[:, :N]  # E_multi-modal of the N node tokens
        dec_in = self.dec_in(fused).reshape(B * N, 1, -1) + self.step[None]  # (B N, H, decoder_hidden)
        out, _ = self.decoder(dec_in)
        y = self.head(out).view(B, N, -1, C).transpose(1, 2)  # (B, H, N, C)
        return Prediction(point=y)
