"""A restricted unpickler for DCRNN's adj_mx.pkl: only numpy array reconstruction is allowed."""

from __future__ import annotations

import io
import pickle

from stcast.errors import StcastError

# Exactly what the published adj_mx.pkl / adj_mx_bay.pkl reference (checked with a logging Unpickler);
# plain containers (list, dict, str, float) need no global lookup at all.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    # Python 3 writes bytes under protocol 2 as _codecs.encode(str, 'latin1'): a pure str->bytes call,
    # needed to read an adj_mx.pkl re-saved by Python 3 with protocol 2.
    ("_codecs", "encode"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise StcastError(f"refusing to unpickle forbidden class {module}.{name}: only numpy arrays, "
                              "lists, dicts and strings are allowed in an adjacency pickle")
        return super().find_class(module, name)


def restricted_load(path) -> object:
    """Load a (possibly Python-2) pickle that may only contain containers and numpy arrays."""
    try:
        data = open(path, "rb").read()
    except FileNotFoundError as e:
        raise StcastError(f"pickle file not found: {path}") from e
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except StcastError:
        raise
    except Exception as e:  # truncated or not a pickle at all
        raise StcastError(f"{path} is not a readable pickle ({type(e).__name__}: {e})") from e
