"""Our blocks against transformers' reference implementations (random small configs), and the injection points."""

import pytest
import torch
import transformers

from stcast.nn.backbones import convert_state, load_backbone
from stcast.nn.transformer import BlockSpec, TransformerStack


def _ours_from(ref, model_type, causal):
    cfg = ref.config.to_dict()
    bb = load_backbone("test", config=cfg, causal=causal).eval()
    state = convert_state(model_type, ((k, lambda v=v: v) for k, v in ref.state_dict().items()), bb.spec.num_layers)
    own = bb.state_dict()
    assert set(own) <= set(state), set(own) - set(state)
    bb.load_state_dict({k: state[k] for k in own})
    return bb


def _llama(causal=True, seed=0):
    cfg = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                                   num_key_value_heads=2, vocab_size=100, rope_theta=10000.0,
                                   max_position_embeddings=256)
    torch.manual_seed(seed)
    ref = transformers.LlamaModel(cfg).eval()
    return ref, _ours_from(ref, "llama", causal)


def test_llama_parity():
    ref, ours = _llama()
    x = torch.randn(2, 17, 64)
    with torch.no_grad():
        want = ref(inputs_embeds=x).last_hidden_state
        got = ours(x)
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()


def test_llama_gradients_match_transformers():
    """The fused RMSNorm and RoPE backwards give transformers' gradients: input, norm weights, projections."""
    ref, ours = _llama()
    x = torch.randn(2, 17, 64)
    xr, xo = x.clone().requires_grad_(), x.clone().requires_grad_()
    ref(inputs_embeds=xr).last_hidden_state.pow(2).mean().backward()
    ours(xo).pow(2).mean().backward()
    assert torch.allclose(xo.grad, xr.grad, atol=1e-5), (xo.grad - xr.grad).abs().max()
    for theirs, mine in ((ref.layers[0].input_layernorm, ours.stack.layers[0].norm1),
                         (ref.layers[1].self_attn.q_proj, ours.stack.layers[1].self_attn.q_proj),
                         (ref.layers[2].self_attn.k_proj, ours.stack.layers[2].self_attn.k_proj),
                         (ref.norm, ours.stack.norm)):
        assert torch.allclose(mine.weight.grad, theirs.weight.grad, atol=1e-5), type(mine).__name__


def test_fused_backwards_pass_gradcheck():
    from stcast.nn.transformer import _RMSNormFn, _RopeFn, rotate_half

    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 8, dtype=torch.double, requires_grad=True)
    w = torch.randn(8, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: _RMSNormFn.apply(x, w, 1e-5), (x, w))
    q = torch.randn(2, 3, 5, 8, dtype=torch.double, requires_grad=True)
    k = torch.randn(2, 1, 5, 8, dtype=torch.double, requires_grad=True)
    # any cos/sin tables, not only true rotations: the backward must not rely on cos^2 + sin^2 = 1
    cos, sin = torch.randn(5, 8, dtype=torch.double), torch.randn(5, 8, dtype=torch.double)
    assert torch.autograd.gradcheck(lambda q, k: _RopeFn.apply(q, k, cos, sin), (q, k))
    got_q, got_k = _RopeFn.apply(q, k, cos, sin)
    assert torch.allclose(got_q, q * cos + rotate_half(q) * sin)
    assert torch.allclose(got_k, k * cos + rotate_half(k) * sin)


def test_gpt2_parity():
    cfg = transformers.GPT2Config(n_embd=64, n_layer=3, n_head=4, n_positions=64, vocab_size=100)
    torch.manual_seed(0)
    ref = transformers.GPT2Model(cfg).eval()
    ours = _ours_from(ref, "gpt2", causal=True)
    x = torch.randn(2, 13, 64)
    with torch.no_grad():
        want = ref(inputs_embeds=x).last_hidden_state
        got = ours(x)
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()
    ids = torch.randint(0, 100, (2, 9))
    with torch.no_grad():  # the text path too: word embeddings + learned positions
        assert torch.allclose(ours(ours.embeddings(ids)), ref(input_ids=ids).last_hidden_state, atol=1e-4)


def test_bert_parity_post_norm():
    cfg = transformers.BertConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                  vocab_size=100, max_position_embeddings=64)
    torch.manual_seed(0)
    ref = transformers.BertModel(cfg, add_pooling_layer=False).eval()
    ours = _ours_from(ref, "bert", causal=False)
    ids = torch.randint(0, 100, (2, 11))
    with torch.no_grad():
        want = ref(input_ids=ids).last_hidden_state
        got = ours(ours.embeddings(ids))
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()


def test_vilt_encoder_parity():
    cfg = transformers.ViltConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
    torch.manual_seed(0)
    ref = transformers.ViltModel(cfg, add_pooling_layer=False).eval()
    ours = _ours_from(ref, "vilt", causal=False)
    h = torch.randn(2, 10, 64)
    with torch.no_grad():
        want = ref.layernorm(ref.encoder(h)[0])
        got = ours(h)
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()
    ids = torch.randint(0, cfg.vocab_size, (2, 7))  # ViLT's text side: BERT embeddings (ST-VLM's prompt)
    with torch.no_grad():
        want = ref.embeddings.text_embeddings(input_ids=ids)
        got = ours.embeddings(ids)
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()


def test_causal_flag_controls_what_earlier_tokens_see():
    _, ours = _llama(causal=False)
    x = torch.randn(1, 6, 64)
    x2 = x.clone()
    x2[:, -1] += 1.0  # perturb the last token only
    with torch.no_grad():
        assert not torch.allclose(ours(x)[:, 0], ours(x2)[:, 0], atol=1e-4)  # bidirectional: token 0 sees it
        ours.stack.causal = True
        assert torch.allclose(ours(x)[:, 0], ours(x2)[:, 0], atol=1e-6)  # causal: token 0 cannot


def test_attention_bias_reaches_only_the_chosen_layers():
    _, ours = _llama(causal=False)
    stack = ours.stack
    x = torch.randn(2, 9, 64)
    bias = torch.randn(2, 1, 9, 9)
    seen = []
    for i, layer in enumerate(stack.layers):
        layer.self_attn.register_forward_hook(lambda m, args, out, i=i: seen.append((i, args[2] is not None)))
    stack.bias_layers = {2}
    with torch.no_grad():
        base = stack(x)
        assert torch.allclose(stack(x, attn_bias=torch.zeros(2, 1, 9, 9)), base, atol=1e-6)  # zero bias: no-op
        seen.clear()
        biased = stack(x, attn_bias=bias)
    assert seen == [(0, False), (1, False), (2, True)]
    assert not torch.allclose(biased, base, atol=1e-3)
    with pytest.raises(ValueError, match="does not match 9 tokens"):
        stack(x, attn_bias=torch.zeros(2, 1, 8, 8))


def test_rotary_ffn_and_gate_injection():
    _, ours = _llama(causal=False)
    stack = ours.stack
    x = torch.randn(1, 8, 64)
    with torch.no_grad():
        base = stack(x)
        rot = stack.layers[0].self_attn.rotary
        stack.set_rotary(0, None)  # no rotation in layer 0: the output changes
        assert not torch.allclose(stack(x), base, atol=1e-4)
        stack.set_rotary(0, rot)
        assert torch.allclose(stack(x), base, atol=1e-6)
        mlp = stack.layers[1].mlp
        calls = []
        stack.set_ffn(1, torch.nn.Sequential(mlp, torch.nn.Identity()))
        stack.layers[1].mlp.register_forward_hook(lambda *a: calls.append(1))
        assert torch.allclose(stack(x), base, atol=1e-6) and calls == [1]  # the replacement is what runs
        stack.set_ffn(1, torch.nn.Identity())
        assert not torch.allclose(stack(x), base, atol=1e-4)
        stack.set_ffn(1, mlp)
        attn = stack.layers[0].self_attn
        attn.enable_gate()
        assert not torch.allclose(stack(x), base, atol=1e-4)  # sigmoid(3) = 0.95 scales the attention output
        torch.nn.init.constant_(attn.gate.bias, 60.0)  # a fully open gate is the identity
        assert torch.allclose(stack(x), base, atol=1e-5)
        torch.nn.init.constant_(attn.gate.bias, -60.0)  # a closed gate removes the attention branch
        ref = attn.o_proj.bias
        assert ref is None
        closed = stack(x)
    attn.gate = None
    stack.layers[0].self_attn.forward = lambda x, *a, **k: torch.zeros_like(x)
    with torch.no_grad():
        assert torch.allclose(stack(x), closed, atol=1e-5)


def test_spec_validation_and_position_limit():
    with pytest.raises(ValueError, match="block style"):
        BlockSpec(style="mamba")
    with pytest.raises(ValueError, match="divide"):
        BlockSpec(hidden_size=64, num_heads=5, num_kv_heads=5)
    stack = TransformerStack(BlockSpec(style="gpt2", hidden_size=32, intermediate_size=64, num_layers=1, num_heads=4,
                                       num_kv_heads=4, learned_positions=8, act="gelu_tanh", bias=True))
    with pytest.raises(ValueError, match="learned positions"):
        stack(torch.randn(1, 9, 32))
