"""A pandas-HDF reader that never unpickles: the DCRNN `metr-la.h5` / `pems-bay.h5` layout read with h5py.

`pd.read_hdf` goes through PyTables, which unpickles object columns (VLArray of ObjectAtom) and any
attribute stored as a pickle (pandas writes `name`, `freq` that way): a crafted `.h5` runs code on load.
Here we read only what the published files hold, pandas' "fixed" frame format:

    /<key>            attrs pandas_type='frame', nblocks, encoding
    /<key>/axis0      column labels (kind 'string' or 'integer')
    /<key>/axis1      row index (kind 'datetime64[...]' as int64, or 'integer')
    /<key>/blockK_items, /<key>/blockK_values   the numeric blocks (stored transposed: (T, items))

Every dataset is read as raw HDF5 data (h5py never unpickles); anything that is not numeric (an object
block, object labels, the 'table' format whose column names are pickled attributes) is refused with a
clear error instead of being decoded.
"""

from __future__ import annotations

import numpy as np

from stcast.errors import StcastError

_NUMERIC = "fiub"


def _text(value) -> str:
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _labels(ds, where: str, encoding: str) -> list[str]:
    kind = _text(ds.attrs.get("kind", b""))
    arr = ds[()]
    if kind in ("string", "unicode") and arr.dtype.kind in "SU":
        return [v.decode(encoding) if isinstance(v, bytes) else str(v) for v in arr.tolist()]
    if kind == "integer" and arr.dtype.kind in "iu":
        return [str(v) for v in arr.tolist()]
    raise StcastError(f"{where}: labels of kind {kind or '?'} ({arr.dtype}) are not plain strings or integers; "
                      "stcast does not unpickle object labels (re-save the frame with string column names)")


def _index(ds, where: str) -> np.ndarray:
    kind = _text(ds.attrs.get("kind", b""))
    arr = ds[()]
    if kind.startswith("datetime64") and arr.dtype.kind == "i":
        unit = kind[len("datetime64"):].strip("[]") or "ns"  # old pandas wrote plain 'datetime64' (ns)
        try:
            return arr.astype(f"datetime64[{unit}]").astype("datetime64[ns]")
        except TypeError as e:
            raise StcastError(f"{where}: unknown datetime unit {unit!r}") from e
    raise StcastError(f"{where}: the row index has kind {kind or '?'} ({arr.dtype}); expected a DatetimeIndex "
                      "(timestamps per row)")


def read_pandas_hdf(path, key: str | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(values (T, N) float32, timestamps (T,) datetime64[ns], column labels) of a fixed-format pandas HDF."""
    try:
        import h5py
    except ImportError as e:
        raise StcastError("reading .h5 needs h5py: pip install 'stcast[h5]'") from e
    try:
        fh = h5py.File(path, "r")
    except OSError as e:
        raise StcastError(f"{path} is not a readable HDF5 file ({e})") from e
    with fh:
        groups = [k for k in fh.keys() if isinstance(fh[k], h5py.Group)]
        if key is None:
            key = "df" if "df" in groups else (groups[0] if len(groups) == 1 else None)
        if key is None or key not in fh:
            raise StcastError(f"{path}: no frame key {'df' if key is None else key!r} (groups: {groups}); "
                              "expected the DCRNN layout written by DataFrame.to_hdf(key='df')")
        g = fh[key]
        where = f"{path}:/{key}"
        ptype = _text(g.attrs.get("pandas_type", b""))
        if ptype == "frame_table" or "table" in g:
            raise StcastError(f"{where} is in pandas' 'table' format, whose column names are pickled; "
                              "re-save it with DataFrame.to_hdf(..., format='fixed')")
        if ptype != "frame":
            raise StcastError(f"{where}: pandas_type {ptype or 'missing'!r}; expected a DataFrame ('frame')")
        try:
            nblocks = int(g.attrs["nblocks"])
            encoding = _text(g.attrs.get("encoding", b"UTF-8"))
            if encoding in ("None", "N."):
                encoding = "utf-8"
            columns = _labels(g["axis0"], f"{where}/axis0", encoding)
            index = _index(g["axis1"], f"{where}/axis1")
            T, N = len(index), len(columns)
            out = np.full((T, N), np.nan, dtype=np.float32)
            position = {c: i for i, c in enumerate(columns)}
            filled = np.zeros(N, bool)
            for b in range(nblocks):
                items = _labels(g[f"block{b}_items"], f"{where}/block{b}_items", encoding)
                ds = g[f"block{b}_values"]
                cls = _text(ds.attrs.get("CLASS", b""))
                if cls == "VLARRAY" or ds.dtype.kind not in _NUMERIC or "value_type" in ds.attrs:
                    held = "objects" if cls == "VLARRAY" else ds.dtype
                    raise StcastError(f"{where}: columns {items[:5]} hold {held} data; stcast reads numeric "
                                      "columns only and never unpickles objects")
                block = np.asarray(ds[()], dtype=np.float32)
                if block.ndim != 2:
                    raise StcastError(f"{where}/block{b}_values has rank {block.ndim}; expected 2")
                if not int(ds.attrs.get("transposed", 0)):  # stored (items, T) by writers that did not transpose
                    block = block.T
                if block.shape != (T, len(items)):
                    raise StcastError(f"{where}/block{b}_values is {block.shape}; expected ({T}, {len(items)})")
                unknown = [c for c in items if c not in position]
                if unknown:
                    raise StcastError(f"{where}: block {b} names columns {unknown[:5]} missing from axis0")
                cols = np.asarray([position[c] for c in items], dtype=np.int64)
                out[:, cols] = block
                filled[cols] = True
        except KeyError as e:
            raise StcastError(f"{where}: missing part {e} of the pandas fixed-frame layout") from e
        if not filled.all():
            raise StcastError(f"{where}: columns {[c for c, f in zip(columns, filled) if not f][:5]} have no data")
    return out, index, columns
