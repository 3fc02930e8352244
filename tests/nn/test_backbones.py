"""Named backbones load offline with their real pretrained weights, match transformers, and fail clearly."""

import json

import pytest
import torch
import transformers

from stcast.errors import StcastError
from stcast.nn.backbones import available, load_backbone, minilm_dir
from stcast.nn.gguf_cache import find_gguf, read_gguf_llama

TEXTS = ["The quick brown fox jumps over the lazy dog.",
         "Traffic on the highway was heavy this morning because of an accident near the bridge.",
         "Paris is the capital of France, and Berlin is the capital of Germany."]


@pytest.fixture(scope="module")
def smollm2():
    return load_backbone("smollm2-135m")


@pytest.mark.slow
def test_smollm2_matches_transformers_own_gguf_load(smollm2):
    """Catches a wrong q/k un-permutation: transformers dequantises the same GGUF its own way."""
    g = find_gguf()
    ref = transformers.AutoModelForCausalLM.from_pretrained(str(g.parent), gguf_file=g.name, dtype=torch.float32)
    ids = torch.tensor([smollm2.tokenizer(TEXTS[1])["input_ids"]])
    smollm2.stack.causal = True
    try:
        with torch.no_grad():
            want = ref(input_ids=ids).logits
            got = smollm2.lm_logits(smollm2(smollm2.embeddings(ids)))
    finally:
        smollm2.stack.causal = False
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()


def test_smollm2_is_truly_pretrained(smollm2):
    ppl = smollm2.perplexity(TEXTS)
    torch.manual_seed(0)
    rnd = load_backbone("smollm2-135m", pretrained=False)
    rnd._tokenizer = smollm2.tokenizer
    ppl_random = rnd.perplexity(TEXTS)
    print(f"SmolLM2-135M perplexity: pretrained {ppl:.1f}, random init {ppl_random:.0f}")
    assert ppl < 100 and ppl_random > 100 * ppl


def test_truncation_keeps_the_first_layers(smollm2):
    six = load_backbone("smollm2-135m", num_layers=6)
    assert len(six.stack.layers) == 6 and six.spec.num_layers == 6
    for name, p in six.stack.layers.named_parameters():
        assert torch.equal(p, smollm2.stack.layers.get_parameter(name))
    with pytest.raises(StcastError, match="has 30 layers"):
        load_backbone("smollm2-135m", num_layers=31)
    removed = load_backbone("smollm2-135m", num_layers=0)  # the language model removed: no block at all
    assert len(removed.stack.layers) == 0 and removed.hidden_size == 576
    with pytest.raises(StcastError, match="num_layers=-1"):
        load_backbone("smollm2-135m", num_layers=-1)


def test_minilm_matches_transformers_and_embeds_meaning():
    bb = load_backbone("minilm-l6")
    ref = transformers.BertModel.from_pretrained(str(minilm_dir()), add_pooling_layer=False).eval()
    enc = bb.tokenizer(TEXTS, padding=True, return_tensors="pt")
    keep = enc["attention_mask"].bool()
    bias = torch.zeros(keep.shape).masked_fill(~keep, float("-inf"))[:, None, None, :]
    with torch.no_grad():
        want = ref(**enc).last_hidden_state
        got = bb(bb.embeddings(enc["input_ids"]), attn_bias=bias)
    assert torch.allclose(got[keep], want[keep], atol=1e-4), (got[keep] - want[keep]).abs().max()
    e = bb.encode_text(["traffic is congested on the freeway", "the highway has a heavy traffic jam",
                        "I baked a chocolate cake"])
    sim = e @ e.t()
    assert sim[0, 1] > sim[0, 2] + 0.2  # two traffic sentences are closer than traffic vs cake


def test_local_directory_in_hugging_face_layout(tmp_path):
    cfg = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=32, vocab_size=50)
    torch.manual_seed(0)
    ref = transformers.GPT2Model(cfg).eval()
    ref.save_pretrained(tmp_path / "st")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "config.json").write_text(cfg.to_json_string())
    torch.save(ref.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    x = torch.randn(1, 7, 32)
    with torch.no_grad():
        want = ref(inputs_embeds=x).last_hidden_state
        for sub in ("st", "bin"):
            bb = load_backbone(str(tmp_path / sub), causal=True)
            assert torch.allclose(bb(x), want, atol=1e-5)
            assert bb.pretrained_params == {id(p) for p in bb.parameters()}
        one = load_backbone(str(tmp_path / "st"), num_layers=1)
    assert len(one.stack.layers) == 1


def test_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(StcastError, match="unknown backbone 'gpt5'"):
        load_backbone("gpt5")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(StcastError, match="not on this machine.*huggingface-cli download openai-community/gpt2"):
        load_backbone("gpt2")
    ok, why = available("gpt2")
    assert not ok and "not on this machine" in why
    assert available("minilm-l6")[0]
    (tmp_path / "noconfig").mkdir()
    with pytest.raises(StcastError, match="no config.json"):
        load_backbone(str(tmp_path / "noconfig"))
    d = tmp_path / "noweights"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": 32, "n_layer": 1, "n_head": 4}))
    with pytest.raises(StcastError, match="lacks 'vocab_size'"):
        load_backbone(str(d))
    (d / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": 32, "n_layer": 1, "n_head": 4,
                                               "vocab_size": 10}))
    with pytest.raises(StcastError, match="no model.safetensors"):
        load_backbone(str(d))
    (d / "pytorch_model.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(StcastError, match="not a readable weights file"):
        load_backbone(str(d))
    (d / "config.json").write_text(json.dumps({"model_type": "mamba"}))
    with pytest.raises(StcastError, match="'mamba' is not supported"):
        load_backbone(str(d))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 20)
    with pytest.raises(StcastError, match="not a readable GGUF"):
        read_gguf_llama(bad)


def test_smollm2_cache_is_built_atomically(tmp_path, monkeypatch):
    from stcast.nn import gguf_cache

    monkeypatch.setenv("STCAST_CACHE", str(tmp_path))
    d = gguf_cache.smollm2_dir()
    assert d == tmp_path / "backbones" / "smollm2-135m"
    assert {"config.json", "model.safetensors", "SOURCE"} <= {p.name for p in d.iterdir()}
    assert not [p for p in d.parent.iterdir() if p.name.startswith(".smollm2-")]  # no temp dir left behind
    stamp = (d / "model.safetensors").stat().st_mtime_ns
    assert gguf_cache.smollm2_dir() == d and (d / "model.safetensors").stat().st_mtime_ns == stamp  # reused


def test_vilt_encoder_matches_transformers_vilt_model(tmp_path):
    """ViLT's layers are pre-norm (layernorm_before / layernorm_after, as in ViT) with a final LayerNorm: our
    ViLT stack, loaded from a ViltModel's files (random weights from its config), gives transformers' encoder
    output on the same token embeddings."""
    cfg = transformers.ViltConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                                  vocab_size=60, max_position_embeddings=40, image_size=32, patch_size=16)
    torch.manual_seed(0)
    ref = transformers.ViltModel(cfg, add_pooling_layer=False).eval()
    with torch.no_grad():  # make the norms non-trivial, so pre- and post-norm layouts cannot agree by chance
        for name, p in ref.named_parameters():
            if "layernorm" in name.lower():
                p.add_(0.3 * torch.randn_like(p))
    ref.save_pretrained(tmp_path / "vilt")
    bb = load_backbone(str(tmp_path / "vilt"))
    assert not bb.stack.layers[0].post_norm
    x = torch.randn(2, 9, 32)
    with torch.no_grad():
        want = ref.layernorm(ref.encoder(x).last_hidden_state)
        got = bb(x)
        assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
        for layer in bb.stack.layers:  # the BERT (post-norm) layout gives another output
            layer.post_norm = True
        assert not torch.allclose(bb(x), want, atol=1e-3)
