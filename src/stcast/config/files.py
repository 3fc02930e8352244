"""Config files: YAML read safely (no tags, nothing runs), `--set key.path=value` overrides."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from stcast.errors import StcastError


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


class DuplicateKey(yaml.YAMLError):
    """A mapping that names one key twice (YAML keeps the last silently; a config must not)."""


def _unique_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise DuplicateKey(f"the key {key!r} appears twice in one mapping (lines {seen[key] + 1} and "
                               f"{key_node.start_mark.line + 1}); keep one")
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)

MAX_CONFIG_BYTES = 1 << 20  # configs are a few kilobytes: a larger file is refused before it is parsed


def safe_load(text: str):
    """yaml.safe_load with `1e-3` read as a float: no tags, no objects, nothing runs."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


def read_yaml(path) -> dict:
    """A YAML mapping from `path` ({} for no path); clear errors for a missing file, bad YAML, a non-mapping."""
    if not path:
        return {}
    if not Path(path).is_file():
        raise StcastError(f"config file {path} does not exist")
    size = Path(path).stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise StcastError(f"config file {path} is {size / 2**20:.1f} MB; a config is at most "
                          f"{MAX_CONFIG_BYTES >> 20} MB (is it the right file?)")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise StcastError(f"config file {path} is not UTF-8 text ({e.reason} at byte {e.start}): is it the right "
                          "file?") from e
    try:
        raw = safe_load(text)
    except yaml.YAMLError as e:
        raise StcastError(f"{path} is not valid YAML: {e}") from e
    if raw is None:  # an empty (or comments-only) file: most likely a truncated or wrong file, never a wish
        raise StcastError(f"config file {path} sets nothing (it is empty or only comments); give its settings, "
                          "or leave --config out for the defaults")
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
