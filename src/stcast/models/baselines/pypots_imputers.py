"""The field's imputation baselines from PyPOTS (Du et al., the maintained library of SAITS, CSDI, BRITS and
ImputeFormer), behind an adapter that speaks stcast's windows, masks and metrics (issue 29).

Install: `pip install stcast[peers]` (PyPOTS 1.3: later releases pin transformers <= 4.57.6, which would
replace the transformers the LLM methods use; 1.3 installs beside it and touches neither torch nor transformers).

What the adapter does, and nothing more:
- It builds the library's own model core (`pypots.imputation.<m>.core._<M>`): the same module PyPOTS's
  `fit()` trains. Features are the window's nodes x channels, as in the papers' AQI-36 / METR-LA runs.
- Inputs are stcast's: `X` is the scaled window with every missing *and* every hidden entry 0, `missing_mask` is
  stcast's `x_mask` (observed and not hidden). The hidden entries are the ones stcast's missingness pattern drew
  (`--missing point|block`, the AQI-36 protocol's simulated failures): the library never draws its own.
- Training minimises the library's own objective (`Prediction.own_loss`), in the scaled space the library
  expects: SAITS / ImputeFormer ORT + MIT (MAE on the observed inputs + MAE on exactly stcast's hidden entries,
  `indicating_mask = eval_mask`), BRITS reconstruction + consistency (ORT only: the BRITS paper's loss), CSDI the
  denoising loss on the hidden entries with the observed ones as the condition (`cond_mask = x_mask`).
- Scoring is stcast's: the point is the library's `imputation` (observed entries copied, the rest predicted),
  scored by the engine on `eval_mask` only, in original units, like every other row. CSDI's point is the median
  of `n_samples` samples (the CSDI paper), its quantiles come from the same samples (CRPS, coverage).

Differences from the libraries' defaults / the papers, with the reason:
- Sizes are CPU-sized and written here (SAITS 2 layers, d_model 64; ImputeFormer 3 layers; CSDI 4 layers, 64
  channels, 50 diffusion steps, 16 samples against the paper's 100); every one is a constructor argument.
- Optimiser, epochs, early stopping and the time budget are stcast's trainer's (the same for every row of a
  table) instead of the library's `fit()` loop.
"""

from __future__ import annotations

import torch

from stcast.errors import StcastError
from stcast.models.base import Prediction, ProblemSpec
from stcast.models.baselines.brits import _deltas
from stcast.models.baselines.scaled_targets import ScaledTargetsImputer


def _pypots():
    """Import PyPOTS quietly (its ai4ts dependency prints a banner on import; PyPOTS checks stdout's encoding)."""
    import contextlib
    import io

    quiet = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    try:
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            import pypots  # noqa: F401
            import pypots.imputation  # noqa: F401
    except ImportError as e:
        raise StcastError("the PyPOTS imputers need the optional extra: pip install 'stcast[peers]' "
                          "(PyPOTS 1.3)") from e
    from pypots.nn.modules.loss import MAE

    return MAE


class _PyPOTSImputer(ScaledTargetsImputer):
    """Shared plumbing: the scaled window in, the library's core in the middle, stcast's Prediction out."""

    def __init__(self, spec: ProblemSpec):
        super().__init__(spec)
        self.n_features = spec.num_nodes * spec.num_channels

    def _flat(self, batch):
        """X (B, L, D) scaled, missing and hidden 0; missing_mask (B, L, D); X_ori the scaled window with its hidden
        entries shown (0 where never observed); indicating_mask (B, L, D) = stcast's hidden-and-observed entries."""
        B, L, N, C = batch.x.shape
        self.check_window(batch.x)
        m = batch.x_mask.float()
        x = batch.x * m
        out = {"X": x.reshape(B, L, N * C), "missing_mask": m.reshape(B, L, N * C)}
        if batch.eval_mask is not None and self.training:
            hid = batch.eval_mask.float()
            y = self.scaled_truth(batch)
            out["X_ori"] = torch.where(hid.bool(), y, x).reshape(B, L, N * C)
            out["indicating_mask"] = hid.reshape(B, L, N * C)
        return out

    def _point(self, flat: torch.Tensor, batch) -> torch.Tensor:
        B, L, N, C = batch.x.shape
        return flat.reshape(B, L, N, C)

    def forward(self, batch) -> Prediction:
        inputs = self._flat(batch)
        if self.training and "indicating_mask" in inputs:
            res = self.core(self._library_inputs(inputs), calc_criterion=True)
            return Prediction(self._point(res["imputation"], batch), own_loss=res["loss"])
        res = self.core(self._library_inputs(inputs))
        return Prediction(self._point(res["imputation"], batch))

    def _library_inputs(self, inputs: dict) -> dict:
        return inputs


class SAITS(_PyPOTSImputer):
    """SAITS (Du, Cote, Liu, ESWA 2023): two diagonally-masked self-attention blocks, a weighted combination,
    the joint ORT + MIT objective. The library's `_SAITS` core."""

    name = "saits"

    def __init__(self, spec: ProblemSpec, n_layers: int = 2, d_model: int = 64, n_heads: int = 4, d_ffn: int = 128,
                 dropout: float = 0.1, ort_weight: float = 1.0, mit_weight: float = 1.0):
        super().__init__(spec)
        mae = _pypots()
        from pypots.imputation.saits.core import _SAITS

        if d_model % n_heads:
            raise StcastError(f"saits: d_model={d_model} must be a multiple of n_heads={n_heads}")
        if spec.input_len < 2:  # the diagonal mask hides each step from itself: one step would attend to nothing
            raise StcastError(f"saits masks each step from its own attention (its diagonal mask): a window of "
                              f"{spec.input_len} step leaves it nothing to read; use input_len >= 2")
        self.core = _SAITS(n_layers, spec.input_len, self.n_features, d_model, n_heads, d_model // n_heads,
                           d_model // n_heads, d_ffn, dropout, 0.0, True, ort_weight, mit_weight, mae(), mae())


class ImputeFormer(_PyPOTSImputer):
    """ImputeFormer (Nie et al., KDD 2024): projected temporal attention, embedded spatial attention over the
    nodes, ORT + MIT. The library's `_ImputeFormer` core (its note: no timestamp encoding)."""

    name = "imputeformer"

    def __init__(self, spec: ProblemSpec, n_layers: int = 3, d_input_embed: int = 32, d_learnable_embed: int = 32,
                 d_proj: int = 8, d_ffn: int = 64, n_temporal_heads: int = 4, dropout: float = 0.0,
                 ort_weight: float = 1.0, mit_weight: float = 1.0):
        super().__init__(spec)
        mae = _pypots()
        from pypots.imputation.imputeformer.core import _ImputeFormer

        self.core = _ImputeFormer(spec.input_len, self.n_features, n_layers, d_input_embed, d_learnable_embed,
                                  d_proj, d_ffn, n_temporal_heads, dropout, 1, 1, ort_weight, mit_weight, mae(),
                                  mae())


class PyPOTSBRITS(_PyPOTSImputer):
    """PyPOTS's BRITS (Cao et al., NeurIPS 2018), to check stcast's own `brits` against the library's on the
    same scored entries (issue 29)."""

    name = "pypots-brits"

    def __init__(self, spec: ProblemSpec, hidden: int = 64):
        super().__init__(spec)
        mae = _pypots()
        from pypots.imputation.brits.core import _BRITS

        self.core = _BRITS(spec.input_len, self.n_features, hidden, mae(), mae())

    def _library_inputs(self, inputs: dict) -> dict:
        # delta (steps since the last observation, GRU-D's definition) vectorised: PyPOTS's own `parse_delta`
        # loops over samples and steps in Python; tests check the two agree
        x, m = inputs["X"], inputs["missing_mask"]
        fwd = {"X": x, "missing_mask": m, "deltas": _deltas(m)}
        xb, mb = x.flip(1), m.flip(1)
        return {"forward": fwd, "backward": {"X": xb, "missing_mask": mb, "deltas": _deltas(mb)}}


class CSDI(_PyPOTSImputer):
    """CSDI (Tashiro et al., NeurIPS 2021): a conditional score-based diffusion model over (feature, step), with
    temporal and feature transformers; trained on the denoising loss of the hidden entries given the observed
    ones; imputes by sampling. The library's `_CSDI` core. Natively probabilistic: its quantiles are read from
    the samples, the point is their median."""

    name = "csdi"
    native_quantiles = True

    def __init__(self, spec: ProblemSpec, n_layers: int = 4, n_heads: int = 8, n_channels: int = 64,
                 d_time_embedding: int = 128, d_feature_embedding: int = 16, d_diffusion_embedding: int = 128,
                 n_diffusion_steps: int = 50, n_samples: int = 16, schedule: str = "quad"):
        super().__init__(spec)
        _pypots()
        from pypots.imputation.csdi.core import _CSDI

        if n_samples < 1 or n_diffusion_steps < 1:
            raise StcastError(f"csdi: n_samples={n_samples} and n_diffusion_steps={n_diffusion_steps} must be >= 1")
        self.n_samples = n_samples
        self.levels = tuple(spec.quantiles) or (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
        self.core = _CSDI(self.n_features, n_layers, n_heads, n_channels, d_time_embedding, d_feature_embedding,
                          d_diffusion_embedding, False, n_diffusion_steps, schedule, 1e-4, 0.5)

    def forward(self, batch) -> Prediction:
        inputs = self._flat(batch)
        B, L, N, C = batch.x.shape
        tp = torch.arange(L, dtype=torch.float32, device=batch.x.device).expand(B, L)
        cond = inputs["missing_mask"].transpose(1, 2)
        if self.training and "indicating_mask" in inputs:
            res = self.core({"X_ori": inputs["X_ori"].transpose(1, 2), "cond_mask": cond, "observed_tp": tp,
                             "indicating_mask": inputs["indicating_mask"].transpose(1, 2)}, calc_criterion=True)
            return Prediction(self._point(inputs["X"], batch).detach(), own_loss=res["loss"])
        res = self.core({"X": inputs["X"].transpose(1, 2), "cond_mask": cond, "observed_tp": tp},
                        n_sampling_times=self.n_samples)
        samples = res["imputation"]  # (B, S, L, D)
        q = torch.quantile(samples, torch.tensor(self.levels, device=samples.device), dim=1)  # (Q, B, L, D)
        q = q.permute(1, 2, 3, 0).reshape(B, L, N, C, len(self.levels))
        return Prediction(samples.median(1).values.reshape(B, L, N, C), quantiles=q, levels=self.levels)
