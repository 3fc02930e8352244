"""Model hyper-parameters: each model's config dataclass is its constructor.

`model_config_class(cls)` turns the typed keyword arguments of `cls.__init__` (after `spec`) into a dataclass, so a
model declares its hyper-parameters once, in code that also documents and defaults them. Unknown keys are errors
with a did-you-mean; values are checked against the annotations (`conforms`, the one type check of every config
value) before any data is loaded; model files save the full config (every default spelled out).
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from functools import cache

from stcast.config.fields import conforms, type_name
from stcast.errors import StcastError, did_you_mean


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
        if not conforms(value, known[key].type):
            raise StcastError(f"bad hyper-parameters for {model!r}: {source}: {key}={value!r} is not a "
                              f"{type_name(known[key].type)}")
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
