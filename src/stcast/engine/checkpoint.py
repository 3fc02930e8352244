"""Self-describing model files: weights + model name + hyper-parameters + problem spec + scaler.

Loaded with `torch.load(weights_only=True)`: only tensors and plain containers, never arbitrary
pickled objects, so a model file from elsewhere cannot run code on load.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from stcast.data.windows import StandardScaler
from stcast.errors import StcastError
from stcast.models.base import ProblemSpec, STModel, build_model

FORMAT = "stcast-model-1"


def save_model(path, model: STModel, hparams: dict, scaler: StandardScaler, dataset: str, task: str) -> Path:
    spec = {k: v for k, v in asdict(model.spec).items() if k != "adjacency"}
    spec["quantiles"] = list(spec["quantiles"])
    adj = model.spec.adjacency
    state = {"format": FORMAT, "model": model.name, "hparams": dict(hparams), "spec": spec,
             "adjacency": None if adj is None else torch.as_tensor(np.asarray(adj, dtype=np.float32)),
             "scaler": scaler.state_dict(), "dataset": dataset, "task": task, "state_dict": model.state_dict()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return path


def load_model(path, map_location="cpu") -> tuple[STModel, StandardScaler, dict]:
    path = Path(path)
    if not path.is_file():
        raise StcastError(f"model file {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise StcastError(f"{path} is not a readable stcast model file ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise StcastError(f"{path} is not an stcast model file (expected format {FORMAT!r})")
    spec_kw = dict(state["spec"])
    spec_kw["quantiles"] = tuple(spec_kw["quantiles"])
    adj = state["adjacency"]
    spec = ProblemSpec(**spec_kw, adjacency=None if adj is None else adj.numpy())
    model = build_model(state["model"], spec, **state["hparams"])
    model.load_state_dict(state["state_dict"])
    model.eval()
    info = {k: state[k] for k in ("model", "hparams", "dataset", "task")}
    return model, StandardScaler.from_state_dict(state["scaler"]), info
