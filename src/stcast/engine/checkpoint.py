"""Self-describing model files: weights + model name + hyper-parameters + problem spec + scaler.

Loaded with `torch.load(weights_only=True)`: only tensors and plain containers, never arbitrary
pickled objects, so a model file from elsewhere cannot run code on load.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from stcast.data.files import check_writable
from stcast.data.scaler import StandardScaler
from stcast.engine.distributed import is_global_zero
from stcast.engine.environment import environment
from stcast.errors import StcastError
from stcast.models.base import ProblemSpec, STModel
from stcast.models.registry import build_model
from stcast.task import Task

FORMAT = "stcast-model-1"


def save_model(path, model: STModel, hparams: dict, scaler: StandardScaler, dataset: str, task: str,
               protocol: dict | None = None) -> Path:
    """`protocol` records how the model was trained and must be evaluated: split, protocol, missing pattern,
    few-shot fraction and where the dataset came from (a registry name or the user's table path)."""
    path = Path(path)
    if not is_global_zero():  # a distributed run: rank 0 writes
        return path
    check_writable(path, "model file")  # a clear error naming the path, never a traceback from torch.save
    spec = {k: v for k, v in asdict(model.spec).items() if k != "adjacency"}
    spec["quantiles"] = list(spec["quantiles"])
    spec["task"] = Task.parse(spec["task"]).value  # a plain string: `weights_only` files hold no enum objects
    adj = model.spec.adjacency
    from stcast.config import full_model_config

    state = {"format": FORMAT, "model": model.name, "hparams": full_model_config(model.name, hparams), "spec": spec,
             "adjacency": None if adj is None else torch.as_tensor(np.asarray(adj, dtype=np.float32)),
             "scaler": scaler.state_dict(), "dataset": dataset, "task": Task.parse(task).value,
             "state_dict": model.state_dict(),
             "protocol": dict(protocol or {}), "backbones": backbones_of(model),
             "quantiles_untrained": bool(model.quantiles_untrained),
             "environment": environment()}  # where it was trained: `evaluate --errors-out` passes it on
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        torch.save(state, tmp)
        tmp.replace(path)
    except OSError as e:  # e.g. the disk filled up while writing: no half-written file is left behind
        tmp.unlink(missing_ok=True)
        raise StcastError(f"model file {path} could not be written ({e.strerror or e})") from e
    return path


def backbones_of(model) -> dict:
    """Which language-model backbone each LLM method was built on: {module path: {backbone, revision, source}}."""
    from stcast.nn.backbones import Backbone

    return {name: {"backbone": m.name, "revision": m.revision, "source": m.source}
            for name, m in model.named_modules() if isinstance(m, Backbone)}


_KEYS = {"model": str, "hparams": dict, "spec": dict, "scaler": dict, "dataset": str, "task": str, "state_dict": dict}
_SPEC_INTS = ("num_nodes", "num_channels", "input_len", "horizon", "steps_per_day")


def load_model(path, map_location="cpu") -> tuple[STModel, StandardScaler, dict]:
    """A model file back as (model, scaler, info). Everything in it is checked before anything is allocated:
    the settings are rebuilt on the meta device (no memory) and every stored tensor must have the shape they
    imply, so a file with edited or absurd sizes fails with a message, not a 25 GB allocation."""
    path = Path(path)
    if not path.is_file():
        raise StcastError(f"model file {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise StcastError(f"{path} is not a readable stcast model file ({type(e).__name__}: {first})") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise StcastError(f"{path} is not an stcast model file (expected format {FORMAT!r})")
    for key, typ in _KEYS.items():
        if not isinstance(state.get(key), typ):
            raise StcastError(f"model file {path}: entry {key!r} is missing or not a {typ.__name__}")
    spec_kw = dict(state["spec"])
    for key in _SPEC_INTS:
        v = spec_kw.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise StcastError(f"model file {path}: spec.{key}={v!r} is not a positive integer")
    try:
        spec_kw["quantiles"] = tuple(float(q) for q in spec_kw.get("quantiles", ()))
        adj = state.get("adjacency")
        spec = ProblemSpec(**spec_kw, adjacency=None if adj is None else np.asarray(adj, dtype=np.float32))
    except (TypeError, ValueError) as e:
        raise StcastError(f"model file {path}: unreadable problem spec ({e})") from e
    if spec.adjacency is not None and spec.adjacency.shape != (spec.num_nodes, spec.num_nodes):
        raise StcastError(f"model file {path}: adjacency is {spec.adjacency.shape} for {spec.num_nodes} nodes")
    stored = state["state_dict"]
    _check_shapes(path, state["model"], spec, state["hparams"], stored)
    model = build_model(state["model"], spec, **state["hparams"])
    _check_backbones(path, state.get("backbones") or {}, backbones_of(model))
    model.load_state_dict(stored)
    model.eval()
    if state.get("quantiles_untrained"):  # trained on the point loss only: its intervals are not reported
        model.quantiles_untrained = True
    try:
        scaler = StandardScaler.from_state_dict(state["scaler"])
    except (KeyError, AttributeError, TypeError) as e:
        raise StcastError(f"model file {path}: unreadable scaler ({e})") from e
    if scaler.mean.shape != (spec.num_channels,) or scaler.std.shape != (spec.num_channels,):
        raise StcastError(f"model file {path}: the scaler has {scaler.mean.shape} statistics for "
                          f"{spec.num_channels} channels")
    info = {k: state[k] for k in ("model", "hparams", "dataset", "task")}
    info["protocol"] = dict(state.get("protocol") or {})
    env = state.get("environment")  # where it was trained (files written before it was recorded: None)
    info["environment"] = env if isinstance(env, dict) else None
    return model, scaler, info


def _check_backbones(path, saved: dict, here: dict) -> None:
    """The backbone a model file was trained on vs the one this machine built: another name is an error (the
    weights would not fit it); another revision is a warning (the file's own weights are restored either way)."""
    for where, rec in saved.items():
        now = here.get(where)
        if not isinstance(rec, dict) or now is None:
            continue
        if rec.get("backbone") != now["backbone"]:
            raise StcastError(f"model file {path} was trained on backbone {rec.get('backbone')!r}, but its settings "
                              f"build {now['backbone']!r} here")
        if rec.get("revision") != now["revision"] and "random init" not in (rec.get("revision"), now["revision"]):
            warnings.warn(f"model file {path} was trained on {rec['backbone']} {rec.get('revision')}; this machine "
                          f"has {now['revision']} (the file's own weights are used)", stacklevel=3)


def _check_shapes(path, name: str, spec: ProblemSpec, hparams: dict, stored: dict) -> None:
    """Build the model on the meta device (no memory) and compare every tensor shape with the file's."""
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")  # copying pretrained weights into meta tensors warns that it is a no-op
        try:
            skeleton = build_model(name, spec, **hparams)
        except StcastError as e:
            raise StcastError(f"model file {path}: {e}") from e
    flexible = set(getattr(skeleton, "flexible_state", ()))
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items() if k.rsplit(".", 1)[-1] not in flexible}
    stored = {k: v for k, v in stored.items() if k.rsplit(".", 1)[-1] not in flexible}
    # `*.seen` (CalendarEmbedding) is absent from files written before it existed; loading fills it in
    missing = sorted(k for k in set(expected) - set(stored) if not k.endswith(".seen"))
    extra = sorted(set(stored) - set(expected))
    if missing or extra:
        raise StcastError(f"model file {path} does not match a {name} model with its stored settings: missing "
                          f"{missing[:3]}, unexpected {extra[:3]}")
    for k, shape in expected.items():
        if k not in stored:
            continue
        got = stored[k]
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != shape:
            got_shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise StcastError(f"model file {path}: {k} is {got_shape} but the stored settings build {shape} "
                              "(edited or corrupt file)")


def check_data_fits(model, data, info: dict | None = None) -> None:
    """The data must be what the model was trained on: node count, channels, the same node ids in the same
    order (a reordered table would silently give each sensor another's forecast) and the same time step."""
    if model.spec.num_nodes != data.num_nodes or model.spec.num_channels != data.num_channels:
        raise StcastError(f"the model was trained on {model.spec.num_nodes} nodes x {model.spec.num_channels} "
                          f"channels; {data.meta.name} has {data.num_nodes} x {data.num_channels}")
    if model.spec.steps_per_day != data.meta.steps_per_day:
        raise StcastError(f"the model was trained on data with {model.spec.steps_per_day} steps a day; "
                          f"{data.meta.name} has {data.meta.steps_per_day} ({data.meta.step_minutes}-minute steps): "
                          "resample it to the model's step")
    _check_graph_fits(model, data)
    trained_ids = (info or {}).get("protocol", {}).get("node_ids")
    if trained_ids and data.node_ids and list(trained_ids) != list(data.node_ids):
        if sorted(trained_ids) == sorted(data.node_ids):
            raise StcastError(f"{data.meta.name} has the model's nodes in another order; reorder its columns to "
                              f"the training order ({', '.join(trained_ids[:3])}, ...)")
        diff = sorted(set(data.node_ids) - set(trained_ids))[:3]
        raise StcastError(f"{data.meta.name}'s node ids differ from the ones the model was trained on "
                          f"(e.g. {', '.join(diff)} is new); a model only forecasts the sensors it was trained on")


def _check_graph_fits(model, data) -> None:
    """A model keeps the graph it was trained with (its supports are weights of the file). A graph given with the
    data that differs is refused when the user named it (`--adjacency`), and said when the dataset brought it."""
    import warnings

    kept, given = model.spec.adjacency, data.adjacency
    if kept is None or given is None or (np.shape(kept) == np.shape(given) and np.allclose(kept, given)):
        return
    changed = int((~np.isclose(np.asarray(kept), np.asarray(given))).sum()) if np.shape(kept) == np.shape(given) else -1
    what = f"{changed} of its {np.size(kept)} entries differ" if changed >= 0 else "another shape"
    source = data.extra.get("adjacency_file")
    if source:
        raise StcastError(f"--adjacency {source}: the model was trained with another graph ({what}) and keeps "
                          "its own; leave --adjacency out, or train a model on the new graph")
    warnings.warn(f"{data.meta.name}'s graph differs from the one the model was trained with ({what}); the model "
                  "uses its own", stacklevel=3)
