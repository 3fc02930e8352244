"""The one config home: YAML files and `--set` overrides, and every typed settings class with its ranges.

A config file has the benchmark shape (`BenchConfig`): `train:` holds training settings (`TrainConfig`),
`model_kw:` hyper-parameters keyed by model name (`model_kw.stid.embed_dim`), `model_train:` per-model training
overrides. `stcast train` reads the same file for its one model (so `train --config demo.yaml` works); there
`model_kw.embed_dim` is accepted as shorthand for the model being trained.

    files.py   YAML read safely, `--set` overrides
    fields.py  settings declared on their fields (type, range, wording) and the one checker
    train.py   TrainConfig and the placement choices (accelerator, strategy, precision)
    bench.py   BenchConfig and the table options
    models.py  each model's hyper-parameters, read from its constructor

This package sits below the engine: it imports the model and dataset registries (to check names) and nothing above.
"""

from __future__ import annotations

import difflib

from stcast.config.bench import CONFIG_KEYS, TABLE_OPTIONS, BenchConfig
from stcast.config.fields import check_fields, conforms, from_mapping, setting
from stcast.config.files import apply_overrides, load, parse_value, read_yaml, safe_load
from stcast.config.models import check_model_kw, full_model_config, model_config_class, split_model_kw
from stcast.config.train import ACCELERATORS, PRECISIONS, STRATEGIES, TRAIN_KEYS, TrainConfig
from stcast.errors import StcastError, did_you_mean

__all__ = ["ACCELERATORS", "CONFIG_KEYS", "PRECISIONS", "STRATEGIES", "TABLE_OPTIONS", "TRAIN_KEYS", "BenchConfig",
           "TrainConfig", "apply_overrides", "check_fields", "check_keys", "check_model_kw", "conforms",
           "did_you_mean", "from_mapping", "full_model_config", "load", "model_config_class", "parse_value",
           "read_yaml", "safe_load", "setting", "split_model_kw"]


def check_keys(raw: dict, known, source: str) -> None:
    """Top-level keys of a config: each must be known; a training setting written at the top level is told
    to go under `train:`."""
    for key in raw:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), TRAIN_KEYS, n=1)
        if close and not difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.8):
            hint = f"; training settings go under train: (did you mean train.{close[0]}?)"
        else:
            hint = did_you_mean(key, known)
        raise StcastError(f"{source}: unknown key {key!r}{hint}")
