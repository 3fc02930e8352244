"""One config shape for every command: YAML reading, `--set` overrides and validation.

A config file has the benchmark shape (`stcast.bench.runner.BenchConfig`): `train:` holds training settings
(`TrainConfig`), `model_kw:` hyper-parameters keyed by model name (`model_kw.stid.embed_dim`), `model_train:`
per-model training overrides. `stcast train` reads the same file for its one model (so `train --config
demo.yaml` works); there `model_kw.embed_dim` is accepted as shorthand for the model being trained.

Each model's config dataclass is its constructor: `model_config_class(cls)` turns the typed keyword arguments
of `cls.__init__` (after `spec`) into a dataclass, so a model declares its hyper-parameters once, in code that
also documents and defaults them. Unknown keys are errors with a did-you-mean; values are checked against the
annotations before any data is loaded; model files save the full config (every default spelled out).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import re
import types
import typing
from functools import cache
from pathlib import Path

import yaml

from stcast.errors import StcastError, did_you_mean


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, reading `1e-3` as the number users mean (YAML 1.1 wants `1.0e-3`, else a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def safe_load(text: str):
    """yaml.safe_load with `1e-3` read as a float: no tags, no objects, nothing runs."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


def read_yaml(path) -> dict:
    """A YAML mapping from `path` ({} for no path); clear errors for a missing file, bad YAML, a non-mapping."""
    if not path:
        return {}
    if not Path(path).is_file():
        raise StcastError(f"config file {path} does not exist")
    try:
        raw = safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as e:
        raise StcastError(f"{path} is not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise StcastError(f"{path} must hold a mapping of settings")
    return raw


def parse_value(text: str):
    """A `--set` value as YAML reads it (8 -> int, 1e-3 -> float, [1, 2] -> list, abc -> str)."""
    try:
        return safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(raw: dict, sets: list[str]) -> dict:
    """`key=value` or `a.b.c=value` (YAML-parsed values) applied onto a nested dict."""
    for item in sets or []:
        if "=" not in item:
            raise StcastError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        node = raw
        parts = key.split(".")
        if not all(parts):
            raise StcastError(f"--set {item!r}: empty key part")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise StcastError(f"--set {key}: {p} is not a section")
        node[parts[-1]] = parse_value(value)
    return raw


def load(path=None, sets: list[str] | None = None) -> dict:
    """A config file with `--set` overrides applied: the raw mapping every command starts from."""
    return apply_overrides(read_yaml(path), sets or [])


def check_keys(raw: dict, known, source: str) -> None:
    """Top-level keys of a config: each must be known; a training setting written at the top level is told
    to go under `train:`."""
    from stcast.engine.trainer import TrainConfig

    train_keys = [f.name for f in dataclasses.fields(TrainConfig)]
    for key in raw:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), train_keys, n=1)
        if close and not difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.8):
            hint = f"; training settings go under train: (did you mean train.{close[0]}?)"
        else:
            hint = did_you_mean(key, known)
        raise StcastError(f"{source}: unknown key {key!r}{hint}")


# ------------------------------------------------------------------------------------------ model configs


@cache
def model_config_class(cls) -> type:
    """The dataclass of `cls`'s hyper-parameters: every keyword argument of `__init__` after `spec`, with its
    annotation and default."""
    sig = inspect.signature(cls.__init__)
    try:
        hints = typing.get_type_hints(cls.__init__)
    except (NameError, TypeError):  # an annotation that cannot be resolved: values are not type-checked
        hints = {}
    specs = []
    for name, p in list(sig.parameters.items())[2:]:  # self, spec
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = p.default if p.default is not p.empty else dataclasses.MISSING
        if isinstance(default, list | dict | set):
            specs.append((name, hints.get(name, typing.Any), dataclasses.field(default_factory=lambda d=default: d)))
        else:
            specs.append((name, hints.get(name, typing.Any), dataclasses.field(default=default)))
    return dataclasses.make_dataclass(f"{cls.__name__}Config", specs)


def _conforms(value, hint) -> bool:
    """Whether a YAML value fits an annotation (ints where floats are asked for; a bool is not a number)."""
    if hint is typing.Any or hint is inspect.Parameter.empty:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is typing.Literal:
        return value in args
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (tuple, list, typing.Sequence) or hint in (tuple, list):
        if not isinstance(value, list | tuple):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_conforms(v, a) for v, a in zip(value, args))
        return not args or all(_conforms(v, args[0]) for v in value)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return True  # tensors, modules and other objects are only passed from Python: not checked here


def _type_name(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def check_model_kw(model: str, kw: dict, source: str) -> dict:
    """Validate hyper-parameters of a registered model: names (did-you-mean) and types; returns `kw` as is."""
    from stcast.models.registry import get_model_class

    if not isinstance(kw, dict):
        raise StcastError(f"{source}: model_kw.{model} must be a mapping of {model}'s hyper-parameters")
    config = model_config_class(get_model_class(model))
    known = {f.name: f for f in dataclasses.fields(config)}
    for key, value in kw.items():
        if key not in known:
            raise StcastError(f"{source}: {model} has no hyper-parameter {key!r}{did_you_mean(key, known)}")
        if not _conforms(value, known[key].type):
            raise StcastError(f"bad hyper-parameters for {model!r}: {source}: {key}={value!r} is not a "
                              f"{_type_name(known[key].type)}")
    return kw


def full_model_config(model: str, kw: dict) -> dict:
    """Every hyper-parameter of `model` with `kw` applied: what a model file saves."""
    from stcast.models.registry import get_model_class

    config = model_config_class(get_model_class(model))
    values = dataclasses.asdict(config(**kw))
    return {k: v for k, v in values.items() if _plain(v)}


def _plain(v) -> bool:
    """Values a `weights_only` model file can hold (no tensors or objects from Python callers)."""
    if v is None or isinstance(v, bool | int | float | str):
        return True
    if isinstance(v, list | tuple):
        return all(_plain(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _plain(x) for k, x in v.items())
    return False


def split_model_kw(model_kw, model: str, source: str) -> dict:
    """The hyper-parameters of `model` from a `model_kw` section keyed by model name; keys that are not model
    names are shorthand for `model` (one model is being trained)."""
    from stcast.models.registry import model_names

    if model_kw is None:
        return {}
    if not isinstance(model_kw, dict):
        raise StcastError(f"{source}: model_kw must be a mapping keyed by model name")
    names = set(model_names())
    flat = {k: v for k, v in model_kw.items() if k not in names}
    for other, kw in model_kw.items():
        if other in names:
            check_model_kw(other, kw, source)  # every model's section is checked, used or not
    return check_model_kw(model, {**flat, **model_kw.get(model, {})}, source)
