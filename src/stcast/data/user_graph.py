"""The user's own graph (`--adjacency`, `adjacency=`) for a table of sensors, aligned to the table's sensors.

A graph a user hands us names its sensors in one of four ways, and each is matched to the table's node ids by
name, never by position alone:

- a matrix CSV with a header row and/or a first column of sensor ids (what `DataFrame.to_csv()` writes; ids may
  be text or numbers such as METR-LA's 773869): rows and columns are reordered to the table's order;
- an edge list CSV with a header `from,to,cost` (also `source/target`, `src/dst`, `distance`, `weight`), as
  PEMS's distance.csv: ids are sensor ids of the table (or row indices 0..N-1 when the table's ids are those);
  a `cost` / `distance` column becomes DCRNN's thresholded Gaussian kernel (as the PEMS loaders build it), a
  `weight` column is used as the weights;
- DCRNN's `adj_mx.pkl` ([sensor_ids, id_to_index, adj], read with the restricted unpickler);
- a pandas DataFrame (the Python API) with sensor ids as index / columns.

A bare matrix (.npy, .npz, a CSV of numbers only, a numpy array) carries no names: it is taken in the table's
column order. Labels that do not name exactly the table's sensors are an error naming the difference: before,
a header row was dropped and the matrix used by position, so a graph saved in another sensor order silently
connected the wrong sensors.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from stcast.data.core import check_adjacency
from stcast.data.files import need_file, sniff_table
from stcast.data.graphs import gaussian_kernel_adjacency
from stcast.errors import StcastError

FROM_NAMES = ("from", "source", "src", "origin", "start")
TO_NAMES = ("to", "target", "dst", "destination", "end")
DISTANCE_NAMES = ("cost", "distance", "dist", "length")
WEIGHT_NAMES = ("weight", "w", "value")
NPZ_KEYS = ("adj_mx", "adj", "adjacency", "A", "W")  # the names published .npz graphs use for the matrix


def _canonical(label) -> str:
    """One spelling per sensor id: '773869', ' 773869', 773869 and '773869.0' are the same sensor."""
    text = str(label).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() and abs(number) < 2 ** 53 else text


def align_to_nodes(adj: np.ndarray, labels: list, node_ids, source: str) -> np.ndarray:
    """The (N, N) matrix whose rows and columns are labelled `labels` (one list for both axes), reordered to
    `node_ids`; an error names labels that are not sensors, sensors without a label and repeated labels."""
    keys = [_canonical(x) for x in labels]
    seen, repeated = set(), []
    for k in keys:
        (repeated.append(k) if k in seen else seen.add(k))
    if repeated:
        raise StcastError(f"{source}: sensor id {repeated[0]!r} labels more than one row/column of the graph")
    if node_ids is None:  # a caller without a table (load_adjacency_file alone): the file's order
        return adj
    ids = [_canonical(n) for n in node_ids]
    known = set(ids)
    unknown = [k for k in keys if k not in known]
    unlabelled = [i for i in ids if i not in seen]
    if unknown or unlabelled:
        parts = []
        if unknown:
            parts.append(f"{len(unknown)} label(s) that are not sensors of the table (e.g. {', '.join(unknown[:3])})")
        if unlabelled:
            parts.append(f"{len(unlabelled)} sensor(s) of the table it does not name (e.g. "
                         f"{', '.join(unlabelled[:3])})")
        raise StcastError(f"{source}: the graph's sensor ids do not match the table's: " + "; ".join(parts)
                          + ". Give a graph over exactly the table's sensors (any order), or a bare matrix in the "
                          "table's column order")
    order = _positions(keys, ids)
    return np.ascontiguousarray(adj[np.ix_(order, order)])


def _positions(keys: list[str], ids: list[str]) -> np.ndarray:
    where = {k: j for j, k in enumerate(keys)}
    return np.array([where[i] for i in ids])


def adjacency_from_frame(frame: pd.DataFrame, num_nodes: int, node_ids, name: str) -> np.ndarray:
    """A DataFrame graph (the Python API): labelled axes are matched to the sensors by name; axes that are both
    0..N-1 in order (pandas' default) mean the table's column order."""
    source = f"adjacency for {name}"
    try:
        values = frame.to_numpy(dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise StcastError(f"{source} is not a numeric matrix ({e})") from e
    rows, cols = list(frame.index), list(frame.columns)
    positions = list(range(len(rows)))  # 0..N-1 on both axes (RangeIndex or not, as read_csv(header=None) gives)
    plain = len(rows) == len(cols) and list(rows) == positions and list(cols) == positions
    if not plain:
        if [_canonical(r) for r in rows] != [_canonical(c) for c in cols]:
            # reorder the columns to the rows' order first (both must name the same sensors)
            if sorted(map(_canonical, rows)) != sorted(map(_canonical, cols)):
                raise StcastError(f"{source}: its index and its columns name different sensors")
            where = {_canonical(c): j for j, c in enumerate(cols)}
            values = values[:, [where[_canonical(r)] for r in rows]]
        check_adjacency(values, num_nodes, name)
        values = align_to_nodes(values, rows, node_ids, source)
    return warn_if_edgeless(check_adjacency(values, num_nodes, name), name)


def load_adjacency_file(path, num_nodes: int, name: str = "dataset", node_ids=None) -> np.ndarray:
    """An (N, N) adjacency for a table of `num_nodes` sensors (ids `node_ids`, in the table's order) from a
    matrix CSV (bare or labelled), an edge list CSV, .npy, .npz, or DCRNN's adj_mx.pkl. Never unpickles
    anything but numpy arrays and plain containers."""
    path = need_file(path)
    suffix = path.suffix.lower()
    labels = None
    try:
        if suffix == ".npy":
            adj = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            adj = _npz_matrix(path)
        elif suffix in (".pkl", ".pickle"):
            from stcast.data.loaders import load_dcrnn_adjacency

            labels, adj = load_dcrnn_adjacency(path)
        else:
            adj, labels = _csv_graph(path, num_nodes, node_ids)
    except StcastError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:  # object arrays, truncated or foreign files
        raise StcastError(f"adjacency file {path} is not a readable numeric matrix ({str(e).splitlines()[0]}); "
                          "expected .npy/.npz of numbers, a CSV matrix or edge list, or DCRNN's adj_mx.pkl") from e
    adj = np.asarray(adj)
    if adj.dtype.kind not in "fiub":
        raise StcastError(f"adjacency file {path} holds {adj.dtype} data; expected numbers")
    where = f"{name} (from {path})"
    adj = check_adjacency(adj.astype(np.float32), num_nodes, where)
    if labels is not None:
        adj = align_to_nodes(adj, labels, node_ids, f"adjacency file {path}")
    return warn_if_edgeless(adj, where)


def warn_if_edgeless(adj: np.ndarray, name: str) -> np.ndarray:
    """A graph of zeros (or of self-loops only) is a valid matrix that carries nothing: graph models would train
    without neighbours and nobody would know. Said, not refused (a user may mean it, e.g. an ablation)."""
    n = adj.shape[0]
    if n > 1 and not np.any(adj[~np.eye(n, dtype=bool)]):
        warnings.warn(f"the adjacency of {name} has no edges between sensors (every off-diagonal weight is 0): "
                      "graph models get no neighbour information from it", stacklevel=3)
    return adj


def _npz_matrix(path: Path) -> np.ndarray:
    with np.load(path, allow_pickle=False) as z:
        if not z.files:
            raise StcastError(f"adjacency file {path} holds no array")
        if len(z.files) == 1:
            return z[z.files[0]]
        named = [k for k in NPZ_KEYS if k in z.files]
        if len(named) != 1:
            raise StcastError(f"adjacency file {path} holds {len(z.files)} arrays ({', '.join(z.files)}); which is "
                              f"the graph is unclear: save the matrix alone, or under one of {', '.join(NPZ_KEYS)}")
        return z[named[0]]


def _csv_graph(path: Path, num_nodes: int, node_ids) -> tuple[np.ndarray, list | None]:
    try:
        # a blank cell is empty; 'NA' or 'n/a' is text, named as written
        dialect = sniff_table(path)
        raw = pd.read_csv(path, header=None, dtype=str, skipinitialspace=True, keep_default_na=False, na_values=[""],
                          sep=dialect.get("sep", ","))
        if dialect.get("decimal") == ",":  # '0,5' in a semicolon file: the cells are read as text, then as numbers
            raw = raw.apply(lambda col: col.str.replace(",", ".", regex=False))
    except pd.errors.EmptyDataError as e:
        raise StcastError(f"adjacency file {path} is empty") from e
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise StcastError(f"adjacency file {path} could not be parsed as CSV ({str(e).splitlines()[0]})") from e
    head = [str(h).strip().lower() for h in raw.iloc[0, :3]]
    if raw.shape[1] >= 3 and head[0] in FROM_NAMES and head[1] in TO_NAMES and head[2] in DISTANCE_NAMES + WEIGHT_NAMES:
        return _edge_list(path, raw, num_nodes, node_ids), None
    return _csv_matrix(path, raw, num_nodes, node_ids)


def _is_label_row(cells: pd.Series, num_nodes: int, node_ids, extra_line: bool) -> bool:
    """A row (or column) of sensor ids: text ids, or, where the file has one line more than the table has
    sensors (`extra_line`), exactly the table's ids (numeric ids such as METR-LA's 773869)."""
    text = pd.to_numeric(cells, errors="coerce").isna() & cells.notna()
    if text.sum() >= max(1, len(cells) - 1):
        return True
    if not extra_line or node_ids is None or len(cells) < num_nodes:
        return False
    return sorted(_canonical(c) for c in cells.iloc[-num_nodes:]) == sorted(_canonical(n) for n in node_ids)


def _csv_matrix(path: Path, raw: pd.DataFrame, num_nodes: int, node_ids) -> tuple[np.ndarray, list | None]:
    """A matrix CSV: bare, or with a header row and/or a first column of sensor ids (the corner cell may be
    blank or name the index); the labels are returned for alignment, the matrix is the numbers."""
    rows, cols = raw.shape
    corner_empty = pd.isna(raw.iat[0, 0])
    header = rows > 1 and (_is_label_row(raw.iloc[0], num_nodes, node_ids, rows == num_nodes + 1)
                           or (corner_empty and rows == cols))  # to_csv() of a labelled matrix
    body = raw.iloc[1:] if header else raw
    first = body.iloc[:, 0]
    index = cols > 1 and (_is_label_row(first, num_nodes, node_ids, cols == num_nodes + 1)
                          or cols == len(body) + 1)
    col_labels = raw.iloc[0, 1 if index else 0:].tolist() if header else None
    row_labels = first.tolist() if index else None
    body = body.iloc[:, 1:] if index else body
    num = body.apply(pd.to_numeric, errors="coerce")
    text = num.isna() & body.notna()
    if text.any().any():
        r, c = np.argwhere(text.to_numpy())[0]
        raise StcastError(f"adjacency file {path}: cell (row {r + 1 + header}, column {c + 1 + index}) is "
                          f"{body.iat[r, c]!r}, not a number")
    if num.isna().any().any():
        r, c = np.argwhere(num.isna().to_numpy())[0]
        raise StcastError(f"adjacency file {path}: cell (row {r + 1 + header}, column {c + 1 + index}) is empty")
    adj = num.to_numpy(np.float32)
    if col_labels is not None and row_labels is not None:
        check_adjacency(adj, num_nodes, str(path))  # the shape, before labels are paired
        rk, ck = [_canonical(x) for x in row_labels], [_canonical(x) for x in col_labels]
        if rk != ck:
            if sorted(rk) != sorted(ck):
                raise StcastError(f"adjacency file {path}: its header row and its first column name different "
                                  "sensors")
            adj = adj[:, _positions(ck, rk)]  # columns in the rows' order
    return adj, (row_labels if row_labels is not None else col_labels)


def _edge_list(path: Path, raw: pd.DataFrame, num_nodes: int, node_ids) -> np.ndarray:
    """`from,to,cost|weight` rows; every pair once. Directed as written: list both directions for a symmetric
    graph (DCRNN's distances are directed road lengths)."""
    kind = str(raw.iat[0, 2]).strip().lower()
    body = raw.iloc[1:, :3]
    if body.empty:
        raise StcastError(f"edge list {path} has a header but no edges")
    ids = [_canonical(n) for n in node_ids] if node_ids is not None else [str(i) for i in range(num_nodes)]
    where = {k: i for i, k in enumerate(ids)}
    ends = []
    for col in (0, 1):
        keys = [_canonical(x) for x in body.iloc[:, col]]
        unknown = sorted({k for k in keys if k not in where})
        if unknown:
            raise StcastError(f"edge list {path} names {len(unknown)} sensor(s) that are not in the table (e.g. "
                              f"{', '.join(unknown[:3])}); ids must be the table's sensor ids")
        ends.append(np.array([where[k] for k in keys], dtype=np.int64))
    src, dst = ends
    cost = pd.to_numeric(body.iloc[:, 2], errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(cost)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise StcastError(f"edge list {path}: line {r + 2} has {kind} {body.iat[r, 2]!r}; expected a finite number")
    pair = src * num_nodes + dst
    if len(np.unique(pair)) < len(pair):
        _, first = np.unique(pair, return_index=True)
        r = int(np.setdiff1d(np.arange(len(pair)), first)[0])
        raise StcastError(f"edge list {path}: line {r + 2} repeats the edge {body.iat[r, 0]} -> {body.iat[r, 1]}")
    if kind in DISTANCE_NAMES:
        if (cost < 0).any():
            raise StcastError(f"edge list {path}: negative {kind} ({cost.min():g}); distances must be >= 0")
        return gaussian_kernel_adjacency(src, dst, cost, num_nodes)
    adj = np.zeros((num_nodes, num_nodes), dtype=np.float32)
    adj[src, dst] = cost
    return adj
