"""Model names -> classes: a table of "module:Class" strings resolved on first use with importlib.

The contract (`models/base.py`) knows nothing of the models; no model imports this file. Adding a model is one
line here (as transformers' auto classes and neuralforecast's model maps do); `stcast models` lists the table.
"""

from __future__ import annotations

import importlib

from stcast.errors import StcastError, did_you_mean
from stcast.models.base import ProblemSpec, STModel

MODELS: dict[str, str] = {
    # statistical and deep baselines
    "last-value": "stcast.models.baselines.naive:LastValue",
    "seasonal-naive": "stcast.models.baselines.naive:SeasonalNaive",
    "ha": "stcast.models.baselines.naive:HistoricalAverage",
    "lookback-average": "stcast.models.baselines.lookback:LookbackAverage",
    "statsforecast": "stcast.models.baselines.lookback:StatsForecastModel",
    "mean-impute": "stcast.models.baselines.naive:MeanImputer",
    "interpolate": "stcast.models.baselines.naive:LinearInterpolation",
    "dlinear": "stcast.models.baselines.dlinear:DLinear",
    "lstm": "stcast.models.baselines.lstm:LSTMForecaster",
    "stid": "stcast.models.baselines.stid:STID",
    "gwnet": "stcast.models.baselines.gwnet:GraphWaveNet",
    "staeformer": "stcast.models.baselines.staeformer:STAEformer",
    "brits": "stcast.models.baselines.brits:BRITS",
    "grin": "stcast.models.baselines.grin:GRIN",
    # the field's imputers from PyPOTS (optional extra stcast[peers]; models/baselines/pypots_imputers.py)
    "saits": "stcast.models.baselines.pypots_imputers:SAITS",
    "imputeformer": "stcast.models.baselines.pypots_imputers:ImputeFormer",
    "csdi": "stcast.models.baselines.pypots_imputers:CSDI",
    "pypots-brits": "stcast.models.baselines.pypots_imputers:PyPOTSBRITS",
    # the language-model methods
    "ust-sllm": "stcast.models.ust_sllm:USTSLLM",
    "st-link": "stcast.models.st_link:STLINK",
    "st-vlm": "stcast.models.st_vlm:STVLM",
    "factost": "stcast.models.factost:FactoST",
    "llm-ts-net": "stcast.models.llm_ts_net:LLMTSNet",
    "u-llm-ts-net": "stcast.models.llm_ts_net:ULLMTSNet",
}


def model_names() -> list[str]:
    return sorted(MODELS)


def get_model_class(name: str) -> type[STModel]:
    if not isinstance(name, str) or name not in MODELS:
        raise StcastError(f"unknown model {name!r}{did_you_mean(name, MODELS)}")
    module, _, cls_name = MODELS[name].partition(":")
    cls = getattr(importlib.import_module(module), cls_name)
    if cls.name != name:  # the table and the class must agree: model files and tables record `cls.name`
        raise StcastError(f"model registry: {MODELS[name]} is named {cls.name!r}, not {name!r}")
    return cls


def build_model(name: str, spec: ProblemSpec, **hparams) -> STModel:
    cls = get_model_class(name)
    shown = ", ".join(f"{k}={v!r}" for k, v in hparams.items()) or "defaults"
    try:
        model = cls(spec, **hparams)
    except StcastError:
        raise
    except (TypeError, ValueError, RuntimeError, ZeroDivisionError, OverflowError) as e:
        # wrong names, types or sizes in hyper-parameters (e.g. embed_dim: abc, or -4)
        raise StcastError(f"bad hyper-parameters for {name!r} ({shown}): {str(e).splitlines()[0][:200]}") from e
    # a width of 0 (embed_dim: 0) builds a layer with no weights, which torch accepts and only fails on in the
    # first forward pass, deep in training: refused here, naming the layer
    empty = next((n for n, p in model.named_parameters() if p.numel() == 0), None)
    if empty is not None:
        raise StcastError(f"bad hyper-parameters for {name!r} ({shown}): they leave layer {empty!r} with no weights "
                          f"(a size of 0 somewhere)")
    return model
