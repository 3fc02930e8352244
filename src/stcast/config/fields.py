"""Settings declared on their fields: type from the annotation, range and wording in the field's metadata.

    epochs: int = setting(100, lambda v: v >= 0, "an integer >= 0")

`check_fields` is the one checker of every settings dataclass (training, benchmark, placement): the value must
fit the annotation (`conforms`: a bool is not a number, an int is a float) and pass the field's check, else an
error naming the setting and what it asks for; never a value silently changed. `from_mapping` builds a dataclass
from a YAML mapping with unknown keys refused (one did-you-mean, `stcast.errors.did_you_mean`).
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from functools import cache

from stcast.errors import StcastError, did_you_mean


def setting(default=dataclasses.MISSING, check=None, asks: str = "", *, factory=None):
    """A dataclass field with its range (`check(value) -> bool`) and what it asks for, in words."""
    meta = {"check": check, "asks": asks}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _allows(hint, typ) -> bool:
    return hint is typ or typ in typing.get_args(hint)


def check_fields(obj, what: str) -> None:
    """Type (annotation) and range (metadata) of every field; ints become floats where a float is asked for."""
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        v, hint = getattr(obj, f.name), hints[f.name]
        if v is None and _allows(hint, type(None)):
            continue
        check, asks = f.metadata.get("check"), f.metadata.get("asks") or type_name(hint)
        if not conforms(v, hint) or (check is not None and not check(v)):
            raise StcastError(f"{what} {f.name}={v!r} is invalid: expected {asks}")
        if _allows(hint, float) and not _allows(hint, int) and isinstance(v, int):
            setattr(obj, f.name, float(v))


def from_mapping(cls, raw, source: str, what: str):
    """`cls(**raw)` with unknown keys refused by name (did-you-mean) and every value checked by the class."""
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise StcastError(f"{source}: expected a mapping of {what}s, got {type(raw).__name__}")
    known = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in known:
            raise StcastError(f"{source}: unknown {what} {key!r}{did_you_mean(key, known)}")
    return cls(**raw)


def conforms(value, hint) -> bool:
    """Whether a YAML value fits an annotation (ints where floats are asked for; a bool is not a number)."""
    if hint is typing.Any or hint is inspect.Parameter.empty:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, a) for a in args)
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
            return len(value) == len(args) and all(conforms(v, a) for v, a in zip(value, args))
        return not args or all(conforms(v, args[0]) for v in value)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return True  # tensors, modules and other objects are only passed from Python: not checked here


def type_name(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
