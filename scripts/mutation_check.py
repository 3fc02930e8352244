"""Mutation check: does each paper mechanism have a test that fails when the mechanism is removed?

For every model, each mechanism is replaced in turn by identity / zero / a constant (a monkeypatch applied before
the tests are collected) and the model's fast tests run; a mechanism is "caught" when at least one test fails.

    python scripts/mutation_check.py                     # every model, the table on stdout (and --out FILE)
    python scripts/mutation_check.py --models st-link    # one model
    python scripts/mutation_check.py --list              # the mechanisms, nothing run

Each run is `python -m pytest <the model's test file> -x -m "not slow" -p mutation_check` with
STCAST_MUTATION=<model>/<index>: this module is also the pytest plugin that applies the patch. `-x` stops at
the first failing test, so a caught mutation costs little. Exit status 1 when any mechanism survives.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------------ the mutants
# each mutant: (mechanism as the paper names it, "module:Owner.attr" or "module:attr", make(original) -> new)


def _ones_scale(orig):
    return lambda self, x, mask: x.new_ones(x.shape[0], 1, 1, 1)


def _zeros_like_first(orig):
    def mutant(self, x, *args, **kwargs):
        out = orig(self, x, *args, **kwargs)
        return out * 0
    return mutant


def _after_init(change):
    """A mutant __init__: the original, then `change(self)`."""
    def make(orig):
        def mutant(self, *args, **kwargs):
            orig(self, *args, **kwargs)
            change(self)
        return mutant
    return make


def _with_kw(**forced):
    """A mutant __init__ that forces keyword settings."""
    def make(orig):
        def mutant(self, *args, **kwargs):
            orig(self, *args, **{**kwargs, **forced})
        return mutant
    return make


def _zero_group_conv(ste):
    import torch

    class Zero(torch.nn.Module):
        def forward(self, x):
            return x.new_zeros(x.shape[0], ste.groups, x.shape[-1])

    ste.group_conv = Zero()


def _all_bias_layers(model):
    model.lm.stack.bias_layers = set(range(len(model.lm.stack.layers)))


def _file_order(orig):
    import numpy as np

    return lambda feats, groups, seed=0: np.arange(len(feats))


def _argru_no_keep(orig):
    def mutant(self, xs, mask):
        B, L, N, C = xs.shape
        x = xs.permute(0, 2, 1, 3).reshape(B * N, L, C)
        m = mask.permute(0, 2, 1, 3).reshape(B * N, L, C).float()
        est = (self._run(x, m, 0) + self._run(x, m, 1)) / 2  # observed entries not kept
        return est.view(B, N, L, C).transpose(1, 2)
    return mutant


def _lambda_zero(orig):
    import torch

    return property(lambda self: None if self.fusion_logit is None else torch.zeros_like(self.fusion_logit))


def _identity_graph(orig):
    import numpy as np

    return lambda values, observed, tod, steps_per_day: np.eye(values.shape[1], dtype=np.float32)


def _no_shown(orig):
    return lambda self: self


def _no_guidance_input(orig):
    def mutant(self, xs, extra=None):
        return orig(self, xs * 0, None if extra is None else extra * 0)
    return mutant


def _zero_angles(orig):
    return lambda self, node_of_token: orig(self, node_of_token) * 0


def _no_retrieval(orig):
    def mutant(self, h):
        r, best = orig(self, h)
        return r * 0, best
    return mutant


def _no_ema(orig):
    return lambda self, h, best: None


def _no_revin(orig):
    def mutant(self, x, mask, w, b):
        z = x.new_zeros(x.shape[0], 1, *x.shape[2:])
        return x, z, z + 1
    return mutant


def _no_balance(orig):
    def mutant(self, h):
        out = orig(self, h)
        self.aux_loss = self.aux_loss * 0
        return out
    return mutant


def _no_instance_norm(orig):
    import torch

    def mutant(x, mask, eps=1e-5):
        return torch.where(mask, x, torch.zeros_like(x)), x.new_zeros(x.shape[0], 1), x.new_ones(x.shape[0], 1)
    return mutant


def _no_random_mask(orig):
    def mutant(self, x, mask, horizon, mask_patches=None):
        return orig(self, x, mask, horizon, None)
    return mutant


def _full_rotary(orig):
    def mutant(self, *args, **kwargs):
        kwargs["fraction"] = 1.0
        orig(self, *args, **kwargs)
    return mutant


def _no_gate(orig):
    return lambda self: None


def _stf_off(orig):
    return lambda self, ist, en, et, hist=None, node_index=None: ist


def _no_lag(orig):
    return lambda self, ist, hist, node_index=None: ist.new_zeros(ist.shape[:3])


def _no_prompts(orig):
    return lambda self, h: h


def _no_replay(orig):
    return lambda self, windows: windows


def _no_identifiers(orig):
    def mutant(self, *args, **kwargs):
        ist, en, et = orig(self, *args, **kwargs)
        return ist * 0, en * 0, et * 0
    return mutant


def _zero_dtw(orig):
    return lambda a, b: a.new_zeros(a.shape[0])


def _lag_zero_only(orig):
    return lambda series, max_lag: orig(series, 0)


def _zero_fft(orig):
    return lambda series: series.new_zeros(series.shape[0], series.shape[1], series.shape[1])


def _no_image_bias(orig):
    return lambda self, img, text_len: orig(self, img, text_len) * 0


def _no_standardise(orig):
    return lambda img: img


def _bias_unscaled(orig):
    import math

    return lambda block, h_q, h_img, bias: orig(block, h_q, h_img, None if bias is None else
                                                bias * math.sqrt(block.self_attn.head_dim))


def _image_tokens_averaged(orig):
    """cross_modal_block with every image token replaced by their mean: keys and values no longer tell the nodes'
    image rows apart (eqs. 5-6)."""
    def mutant(block, h_q, h_img, bias):
        return orig(block, h_q, h_img * 0 + h_img.mean(1, keepdim=True), bias)
    return mutant


def _first_k_prompts(orig):
    import torch

    def mutant(self, q):
        idx = torch.arange(self.top_k, device=q.device).expand(*q.shape[:-1], -1)
        return self.prompts[idx].flatten(2, 3), idx
    return mutant


def _lora_amr_off(orig):
    return lambda self, x: self.base(x)


def _no_tuning(orig):
    return lambda self, steps, lr=1e-3, batch=16, seed=0: {"steps": 0}


def _no_fusion(orig):
    return lambda self, node, text, need_weights=False: orig(self, node, text * 0, need_weights)


def _blank_texts(orig):
    return lambda self, texts: orig(self, ["" for _ in texts])


def _statistics_from_every_step(orig):
    import copy

    def mutant(train_windows):
        every = copy.copy(train_windows)
        every.fit_steps = slice(None)
        return orig(every)
    return mutant


def _mha(orig):
    def mutant(self, *args, **kwargs):
        orig(self, *args, **{**kwargs, "kv_groups": kwargs.get("heads", 4)})
    return mutant


M = "stcast.models."
def _grin_self_loops(self):
    self.neighbours = self.supports  # the decoder's messages include the node itself


def _grin_no_graph(self):
    self.supports.zero_()
    self.neighbours.zero_()


def _brits_self_regression(self):
    for rits in (self.fwd, self.bwd):
        rits.feat.offdiag.fill_(1.0)


MUTATIONS: dict[str, tuple[str, list[tuple[str, str, object]]]] = {
    "ust-sllm": ("tests/models/test_ust_sllm.py", [
        ("eq. 1 conditional input scaling (s = 1)", M + "ust_sllm:ConditionalInputScaling.forward", _ones_scale),
        ("eq. 4 grouped conv over nodes (zeroed)", M + "ust_sllm:SpatioTemporalEmbedding.__init__",
         _after_init(_zero_group_conv)),
        ("Sec. IV-A spatial node order (file order)", M + "ust_sllm:spatial_order", _file_order),
        ("eq. 7 forecast guidance reads the input (zeroed input)", M + "ust_sllm:ForecastGuidance.forward",
         _no_guidance_input),
        ("eq. 7 ARGRU keeps observed entries", M + "ust_sllm:ARGRU.forward", _argru_no_keep),
        ("eqs. 8-9 dynamic attention bias (zero)", M + "ust_sllm:DynamicAttentionBias.forward", _zeros_like_first),
        ("eq. 8 functional graph (identity)", M + "ust_sllm:functional_graph", _identity_graph),
        ("eq. 12 bias in the top U blocks only (all blocks)", M + "ust_sllm:USTSLLM.__init__",
         _after_init(_all_bias_layers)),
        ("eq. 14 gated fusion (lambda = 0)", M + "ust_sllm:USTSLLM.fusion_lambda", _lambda_zero),
        ("eq. 15 prediction reads the unmasked window", "stcast.data.batch:Batch.shown", _no_shown),
    ]),
    "st-link": ("tests/models/test_st_link.py", [
        ("SE-Attention spatial rotation (angle 0)", M + "st_link:SERotary.spatial_angles", _zero_angles),
        ("SE-Attention in every block (adapted only)", M + "st_link:STLINK.__init__", _with_kw(se_blocks="adapted")),
        ("MRFFN top-k memory retrieval (nothing retrieved)", M + "st_link:MRFFN.retrieve", _no_retrieval),
        ("MRFFN EMA key update (keys fixed)", M + "st_link:MRFFN.update_keys", _no_ema),
        ("MoE load-balancing loss (zero)", M + "st_link:MRFFN.forward", _no_balance),
        ("RevIN per node (no normalisation)", M + "st_link:STLINK._revin", _no_revin),
    ]),
    "factost": ("tests/models/test_factost.py", [
        ("eq. 1 instance normalisation (none)", M + "factost_utp:instance_norm", _no_instance_norm),
        ("eq. 2 random sequence masking (no mask)", M + "factost:UTPBackbone.forward", _no_random_mask),
        ("eq. 4 p-RoPE (every pair rotates)", "stcast.nn.transformer:Rotary.__init__", _full_rotary),
        ("eq. 5 gated attention (no gate)", "stcast.nn.transformer:Attention.enable_gate", _no_gate),
        ("eq. 7 STMF identifiers (zero)", M + "factost:STMF.forward", _no_identifiers),
        ("eq. 8 STF gate (identity)", M + "factost:STF.forward", _stf_off),
        ("eq. 8 STF lagged affinity across nodes (zero)", M + "factost:STF.lagged", _no_lag),
        ("eqs. 9-10 DSPA prompts (none)", M + "factost:DSPA.forward", _no_prompts),
        ("eq. 11 CMR replay (plain windows)", M + "factost:FactoST.training_windows", _no_replay),
        ("Sec. III-A full horizon, truncated (short)", M + "factost:FactoST.__init__", _with_kw(full_horizon=False)),
    ]),
    "st-vlm": ("tests/models/test_st_vlm.py", [
        ("eq. 1 DTW (zero)", "stcast.nn.correlation:dtw_pairs", _zero_dtw),
        ("eq. 2 time-lagged cross-correlation (lag 0 only)", "stcast.nn.correlation:lagged_xcorr", _lag_zero_only),
        ("spectral correlation (zero)", "stcast.nn.correlation:fft_pearson", _zero_fft),
        ("image standardisation (none)", "stcast.nn.correlation:standardise", _no_standardise),
        ("eqs. 7-8 PadConv image bias (zero)", M + "st_vlm:STVLM.attention_bias", _no_image_bias),
        ("eq. 7 bias inside the 1 / sqrt(d_k) scaling", M + "st_vlm:cross_modal_block", _bias_unscaled),
        ("eqs. 5-6 keys and values from the image tokens (their mean)", M + "st_vlm:cross_modal_block",
         _image_tokens_averaged),
    ]),
    "grin": ("tests/models/baselines/test_grin.py", [
        ("spatial decoder over the neighbours only (self-loops kept)", M + "baselines.grin:GRIN.__init__",
         _after_init(_grin_self_loops)),
        ("MPGRU graph convolutions (no graph)", M + "baselines.grin:GRIN.__init__", _after_init(_grin_no_graph)),
        ("bidirectional (forward only)", M + "baselines.grin:GRIN.__init__", _with_kw(bidirectional=False)),
    ]),
    "brits": ("tests/models/baselines/test_brits.py", [
        ("eq. 3 diagonal input decay (a full W)", M + "baselines.brits:BRITS.__init__", _with_kw(diag_decay=False)),
        ("eq. 5 feature regression without itself (self kept)", M + "baselines.brits:BRITS.__init__",
         _after_init(_brits_self_regression)),
        ("consistency loss (weight 0)", M + "baselines.brits:BRITS.__init__", _with_kw(consistency=0.0)),
        ("the paper's objective on the observed inputs (stcast's hidden-entry loss)",
         M + "baselines.brits:BRITS.__init__", _with_kw(objective="hidden")),
    ]),
    "llm-ts-net": ("tests/models/test_llm_ts_net.py", [
        ("dynamic prompt pool top-K by additive score (first K)", M + "llm_ts_net:PromptPool.forward",
         _first_k_prompts),
        ("LoRA-AMR adapter (W0 only)", "stcast.nn.adapt:LoRAAMRLinear.forward", _lora_amr_off),
        ("description tuning stage (skipped)", M + "llm_ts_net:TextEncoder.tune_on_descriptions", _no_tuning),
        ("cross-modal fusion reads the text (zeroed text)", M + "llm_ts_net:CrossModalFusion.forward", _no_fusion),
        ("text content (blank descriptions)", M + "llm_ts_net:TextEncoder.set_texts", _blank_texts),
        ("descriptions from the training steps only (every step)", "stcast.data.descriptions:training_statistics",
         _statistics_from_every_step),
        ("grouped-query attention (plain MHA)", M + "llm_ts_net:LLMTSNet.__init__", _mha),
    ]),
}


def _resolve(target: str):
    module, _, path = target.partition(":")
    owner = importlib.import_module(module)
    *parents, attr = path.split(".")
    for p in parents:
        owner = getattr(owner, p)
    return owner, attr


def apply(model: str, index: int) -> None:
    """Install mutant `index` of `model` (the plugin does this before collection)."""
    _, target, make = MUTATIONS[model][1][index]
    owner, attr = _resolve(target)
    original = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
    fn = original.fget if isinstance(original, property) else original
    setattr(owner, attr, make(fn))


def pytest_configure(config):  # the plugin side: STCAST_MUTATION=<model>/<index>
    spec = os.environ.get("STCAST_MUTATION")
    if spec:
        model, _, index = spec.rpartition("/")
        apply(model, int(index))


def run_one(model: str, index: int, timeout: float) -> tuple[str, str, float]:
    """(caught | survived | error, the first failing test, seconds)."""
    test_file = MUTATIONS[model][0]
    env = {**os.environ, "STCAST_MUTATION": f"{model}/{index}", "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "scripts"), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "pytest", test_file, "-x", "-q", "-m", "not slow", "-p", "mutation_check",
           "-p", "no:cacheprovider", "--no-header", "-rf"]
    t0 = time.time()
    try:
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "error", f"timed out after {timeout:.0f} s", time.time() - t0
    seconds = time.time() - t0
    failed = [line.split(" ", 2)[1] for line in out.stdout.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    if out.returncode == 0:
        return "survived", "", seconds
    if failed:
        return "caught", failed[0].split("::")[-1], seconds
    return "error", (out.stdout + out.stderr).strip().splitlines()[-1][:100], seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MUTATIONS), help="comma-separated")
    ap.add_argument("--list", action="store_true", help="list the mechanisms and stop")
    ap.add_argument("--out", help="also write the table (Markdown) to this file")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per mutant")
    args = ap.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MUTATIONS]
    if unknown:
        print(f"stcast: error: unknown model {unknown[0]!r}; choose from {', '.join(MUTATIONS)}", file=sys.stderr)
        return 2
    rows = []
    for model in models:
        for i, (mechanism, target, _) in enumerate(MUTATIONS[model][1]):
            if args.list:
                print(f"{model:11s} {mechanism}  [{target}]")
                continue
            verdict, test, seconds = run_one(model, i, args.timeout)
            rows.append((model, mechanism, verdict, test, seconds))
            print(f"{model:11s} {verdict:8s} {seconds:5.0f}s  {mechanism}  <- {test}", flush=True)
    if args.list:
        return 0
    table = ["| model | mechanism removed | verdict | first failing test |", "|---|---|---|---|"]
    table += [f"| {m} | {mech} | {v} | `{t}` |" if t else f"| {m} | {mech} | {v} | |" for m, mech, v, t, _ in rows]
    print("\n".join(table))
    if args.out:
        Path(args.out).write_text("\n".join(table) + "\n")
    survived = [r for r in rows if r[2] != "caught"]
    print(f"{len(rows) - len(survived)} of {len(rows)} mechanisms caught")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
