"""Loaders for the published formats and for the user's own files. Each returns SpatioTemporalData.

Loaders only read files: resolving names and locations is the registry's job (registry.py).
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from stcast.data.core import DatasetMeta, SpatioTemporalData, check_adjacency
from stcast.data.graphs import binary_adjacency, gaussian_kernel_adjacency, read_edge_list
from stcast.data.safe_pickle import restricted_load
from stcast.errors import StcastError


def _need(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise StcastError(f"file not found: {path}")
    return path


def _read_csv(path, **kw) -> pd.DataFrame:
    path = _need(path)
    try:
        df = pd.read_csv(path, **kw)
    except pd.errors.EmptyDataError as e:
        raise StcastError(f"{path} is empty") from e
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as e:
        raise StcastError(f"{path} could not be parsed as CSV: {e}") from e
    if df.empty:
        raise StcastError(f"{path} has a header but no rows")
    return df


def _regular_index(start: str, periods: int, step_minutes: int) -> np.ndarray:
    return (np.datetime64(start, "m") + np.arange(periods) * np.timedelta64(step_minutes, "m")).astype(
        "datetime64[ns]")


# ----------------------------------------------------------------------------------------- traffic


def load_los_loop(speed_csv, adj_csv=None) -> SpatioTemporalData:
    """T-GCN's Los-loop: one week of METR-LA speeds (mph), 207 sensors, 5-minute steps.

    The CSV carries no timestamps; we place it at METR-LA's first week (2012-03-01 00:00, a Thursday).
    This is an assumption (the file has no time column): it fixes the calendar features only.
    Zeros are missing readings (null value 0), as in METR-LA.
    """
    df = _read_csv(speed_csv)  # pandas reads .gz transparently
    meta = DatasetMeta("los-loop", 5, 288, ("speed",), "mph", null_value=0.0,
                       notes="timestamps assumed from 2012-03-01 00:00 (METR-LA's first week)")
    adj = None if adj_csv is None else _read_csv(adj_csv, header=None).to_numpy(np.float32)
    return SpatioTemporalData.from_array(df.to_numpy(np.float32), _regular_index("2012-03-01", len(df), 5),
                                         meta, adjacency=adj, node_ids=list(df.columns))


def load_pems_npz(npz_path, name: str, start: str, edges_csv=None, id_txt=None,
                  adjacency: str = "gaussian") -> SpatioTemporalData:
    """PEMS03/04/07/08 `.npz` with key `data` (T, N, C), 5-minute steps; zeros are missing.

    The graph comes from the distance CSV (PEMS03 maps raw ids via PEMS03.txt), as a thresholded
    Gaussian kernel (DCRNN) or binary connectivity (ASTGCN).
    """
    path = _need(npz_path)
    try:
        with np.load(path, allow_pickle=False) as z:
            if "data" not in z.files:
                raise StcastError(f"{path}: no key 'data' (keys: {z.files}); expected the PEMS layout")
            values = np.asarray(z["data"], dtype=np.float32)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise StcastError(f"{path} is not a readable .npz file ({e})") from e
    if values.ndim == 2:
        values = values[:, :, None]
    if values.ndim != 3:
        raise StcastError(f"{path}: 'data' has rank {values.ndim}; expected (T, N, C)")
    channels = ("flow", "occupancy", "speed")[: values.shape[2]] if values.shape[2] <= 3 else ()
    meta = DatasetMeta(name, 5, 288, channels, "vehicles/5min", null_value=0.0)
    adj = None
    if edges_csv is not None:
        ids = None
        if id_txt is not None:
            ids = [line.strip() for line in open(_need(id_txt)) if line.strip()]
            if len(ids) != values.shape[1]:
                raise StcastError(f"{id_txt} lists {len(ids)} sensors; {path} has {values.shape[1]} nodes")
        src, dst, cost = read_edge_list(edges_csv, ids)
        adj = (gaussian_kernel_adjacency(src, dst, cost, values.shape[1]) if adjacency == "gaussian"
               else binary_adjacency(src, dst, values.shape[1]))
    return SpatioTemporalData.from_array(values, _regular_index(start, len(values), 5), meta, adjacency=adj)


def load_dcrnn_adjacency(pkl_path) -> tuple[list[str], np.ndarray]:
    """DCRNN's adj_mx.pkl: [sensor_ids, id_to_index, adj (N, N) float32], via a restricted unpickler."""
    obj = restricted_load(pkl_path)
    if not (isinstance(obj, (list, tuple)) and len(obj) == 3):
        raise StcastError(f"{pkl_path}: expected [sensor_ids, id_to_index, adj]; got {type(obj).__name__}")
    ids, _, adj = obj
    adj = np.asarray(adj, dtype=np.float32)
    check_adjacency(adj, len(ids), str(pkl_path))
    return [str(i) for i in ids], adj


def load_dcrnn_h5(h5_path, name: str, adj_pkl=None) -> SpatioTemporalData:
    """METR-LA / PEMS-BAY: pandas HDF with a DataFrame (DatetimeIndex, one column per sensor).

    Read with h5py from the published fixed-frame layout (stcast.data.hdf): nothing is unpickled, so a
    crafted file cannot run code; object columns are refused."""
    from stcast.data.hdf import read_pandas_hdf

    values, index, ids = read_pandas_hdf(_need(h5_path))
    return _speed_matrix(values, index, ids, name, str(h5_path), adj_pkl)


def load_metr_la_npz(npz_path, adj_pkl=None) -> SpatioTemporalData:
    """The shared full METR-LA copy: keys `speed` (T, 207) with 0 = missing, `sensor_ids`, `timestamps`."""
    path = _need(npz_path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = {"speed", "sensor_ids", "timestamps"} - set(z.files)
            if missing:
                raise StcastError(f"{path}: missing keys {sorted(missing)}; expected speed, sensor_ids, timestamps")
            values, ids, ts = z["speed"], [str(s) for s in z["sensor_ids"]], z["timestamps"]
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise StcastError(f"{path} is not a readable .npz file ({e})") from e
    return _speed_matrix(values, np.asarray(ts).astype("datetime64[ns]"), ids, "metr-la", str(path), adj_pkl)


def _speed_matrix(values, index, ids, name: str, source: str, adj_pkl) -> SpatioTemporalData:
    values = np.asarray(values)
    if values.ndim != 2 or values.shape != (len(index), len(ids)):
        raise StcastError(f"{source}: values {values.shape} do not match {len(index)} timestamps x {len(ids)} sensors")
    if len(index) < 2:
        raise StcastError(f"{source}: need at least two time steps")
    adj = None
    if adj_pkl is not None:
        graph_ids, adj = load_dcrnn_adjacency(adj_pkl)
        if graph_ids != ids:
            raise StcastError(f"{adj_pkl} lists {len(graph_ids)} sensors that do not match the {len(ids)} "
                              f"columns of {source} (same ids in the same order are required)")
    steps = np.diff(np.asarray(index).astype("datetime64[m]").astype(np.int64))
    if (steps <= 0).any():
        raise StcastError(f"{source}: timestamps are not strictly increasing")
    uniq, counts = np.unique(steps, return_counts=True)
    step = int(uniq[counts.argmax()])
    if step <= 0 or 1440 % step:
        raise StcastError(f"{source}: a time step of {step} minutes does not divide a day")
    meta = DatasetMeta(name, step, 1440 // step, ("speed",), "mph", null_value=0.0)
    return SpatioTemporalData.from_array(values.astype(np.float32, copy=False), index, meta, adjacency=adj,
                                         node_ids=list(ids))


# ------------------------------------------------------------------------------------ telecom/mobility

MILAN_COLUMNS = ["square_id", "time_interval", "country_code", "sms_in", "sms_out", "call_in", "call_out",
                 "internet"]


def load_milan_files(paths, name: str = "milan") -> SpatioTemporalData:
    """Telecom Italia Milan/Trento daily files (TSV, no header, one row per square x interval x country),
    summed over countries into (T, squares, 5) at 10-minute steps, in local (Europe/Rome) time."""
    frames = []
    for p in [paths] if isinstance(paths, (str, Path)) else paths:
        try:
            frames.append(pd.read_csv(_need(p), sep="\t", header=None, names=MILAN_COLUMNS))
        except pd.errors.EmptyDataError as e:
            raise StcastError(f"{p} is empty") from e
    df = pd.concat(frames, ignore_index=True)
    if df.empty:
        raise StcastError(f"no rows in {paths}")
    agg = df.groupby(["time_interval", "square_id"])[MILAN_COLUMNS[3:]].sum(min_count=1)
    return _grid_from_long(agg, name, tuple(MILAN_COLUMNS[3:]))


def load_milan_processed(csv_path, name: str = "milan-sample") -> SpatioTemporalData:
    """The processed sample (square_id, time_interval ms, internet_total): (T, squares, 1)."""
    df = _read_csv(csv_path)
    agg = df.groupby(["time_interval", "square_id"])[["internet_total"]].sum(min_count=1)
    return _grid_from_long(agg, name, ("internet",))


def _grid_from_long(agg: pd.DataFrame, name: str, channels: tuple[str, ...]) -> SpatioTemporalData:
    times = np.sort(agg.index.get_level_values(0).unique().to_numpy())
    squares = np.sort(agg.index.get_level_values(1).unique().to_numpy())
    full_times = np.arange(times[0], times[-1] + 1, 600_000)  # fill missing 10-minute intervals as NaN
    if len(full_times) != len(times):
        warnings.warn(f"{name}: {len(full_times) - len(times)} missing 10-minute intervals filled as missing",
                      stacklevel=3)
    cube = agg.reindex(pd.MultiIndex.from_product([full_times, squares])).to_numpy(np.float32)
    cube = cube.reshape(len(full_times), len(squares), len(channels))
    ts = (pd.to_datetime(full_times, unit="ms", utc=True).tz_convert("Europe/Rome").tz_localize(None)
          .to_numpy("datetime64[ns]"))
    meta = DatasetMeta(name, 10, 144, channels, "CDR activity")
    return SpatioTemporalData.from_array(cube, ts, meta, node_ids=[str(s) for s in squares])


def load_hangzhou_metro(mat_path) -> SpatioTemporalData:
    """transdim's Hangzhou metro tensor (80 stations x 25 days x 108 ten-minute slots from 05:30),
    January 2019. Its graph.csv is 81x81 (the raw station list) and cannot be aligned to the 80
    stations without the dropped station's id, so no adjacency is attached."""
    from scipy.io import loadmat

    try:
        tensor = loadmat(_need(mat_path))["tensor"].astype(np.float32)
    except (KeyError, ValueError, OSError) as e:
        raise StcastError(f"{mat_path} is not the Hangzhou tensor.mat ({e})") from e
    stations, days, slots = tensor.shape
    values = tensor.transpose(1, 2, 0).reshape(days * slots, stations)
    day0 = np.datetime64("2019-01-01T05:30", "m")
    ts = (day0 + np.repeat(np.arange(days), slots) * np.timedelta64(1, "D")
          + np.tile(np.arange(slots), days) * np.timedelta64(10, "m")).astype("datetime64[ns]")
    meta = DatasetMeta("hangzhou-metro", 10, slots, ("passengers",), "passengers/10min",
                       day_start_minutes=330, notes="service hours only: consecutive days join at night")
    return SpatioTemporalData.from_array(values, ts, meta, nan_as_missing=True)


def load_nycbike1(val_npz, test_npz, adj_npz=None) -> SpatioTemporalData:
    """ST-SSL NYCBike1 (16x8 grid, inflow/outflow, hourly). Only the validation and test windows are
    public; they are consecutive hours, so the series they cover is rebuilt exactly from the offset-0
    input step and the last target. Placed on 2014-04-01 + k hours (the 4392-hour source: the split
    sizes 3023/431/864 match it), which fixes calendar features."""
    xs, ys = [], []
    for p in (val_npz, test_npz):
        with np.load(_need(p), allow_pickle=False) as z:
            xs.append(z["x"])
            ys.append(z["y"])
    x, y = np.concatenate(xs), np.concatenate(ys)
    if not np.array_equal(x[1:, -1], y[:-1, 0]):
        raise StcastError("NYCBike1 windows are not consecutive; cannot rebuild the series")
    series = np.concatenate([x[0, -4:-1], x[:, -1], y[-1:, 0]]).astype(np.float32)  # (T, 128, 2)
    first = 73 + 3023 - 3  # hour index of the first rebuilt step in the 4392-hour series
    ts = _regular_index("2014-04-01", 4392, 60)[first:first + len(series)]
    adj = None
    if adj_npz is not None:
        with np.load(_need(adj_npz), allow_pickle=False) as z:
            adj = z["adj_mx"].astype(np.float32)
    meta = DatasetMeta("nycbike1", 60, 24, ("inflow", "outflow"), "trips/hour")
    return SpatioTemporalData.from_array(series, ts, meta, adjacency=adj, nan_as_missing=True)


# ----------------------------------------------------------------------------- environment/other


def load_aqi36(ground_txt, missing_txt, latlng_txt=None) -> SpatioTemporalData:
    """AQI-36 (Beijing PM2.5, 36 stations, hourly). mask = observed in ground truth; eval_mask = observed
    in ground but NaN in pm25_missing (the simulated failures the GRIN/CSDI/PriSTI protocol scores)."""
    ground = _read_csv(ground_txt, index_col=0, parse_dates=True)
    missing = _read_csv(missing_txt, index_col=0, parse_dates=True)
    if ground.shape != missing.shape or not ground.index.equals(missing.index):
        raise StcastError(f"{ground_txt} and {missing_txt} differ in shape or time index")
    g = ground.to_numpy(np.float32)
    eval_mask = ~np.isnan(g) & np.isnan(missing.to_numpy(np.float32))
    coords = None
    if latlng_txt is not None:
        ll = _read_csv(latlng_txt, dtype={"sensor_id": str})
        coords = ll[["latitude", "longitude"]].to_numpy(np.float32)
    meta = DatasetMeta("aqi36", 60, 24, ("pm25",), "ug/m3")
    return SpatioTemporalData.from_array(g, ground.index.to_numpy("datetime64[ns]"), meta, coords=coords,
                                         node_ids=[str(c) for c in ground.columns],
                                         eval_mask=eval_mask[:, :, None])


def load_wide_table(path, name: str, step_minutes: int, units: str = "") -> SpatioTemporalData:
    """ETT / exchange / illness style: a date column then one column per series (each series a node)."""
    df = _read_csv(path)
    ts = pd.to_datetime(df.iloc[:, 0], format="mixed").to_numpy("datetime64[ns]")
    values = df.iloc[:, 1:].to_numpy(np.float32)
    meta = DatasetMeta(name, step_minutes, max(1, 1440 // step_minutes), ("value",), units)
    return SpatioTemporalData.from_array(values, ts, meta, node_ids=list(df.columns[1:]))


def load_pygt_json(path, name: str) -> SpatioTemporalData:
    """PyTorch Geometric Temporal JSON (chickenpox: FX; pedalme: X + weights; england_covid: y +
    per-day edges, averaged into one static graph)."""
    try:
        d = json.load(open(_need(path)))
    except json.JSONDecodeError as e:
        raise StcastError(f"{path} is not valid JSON ({e})") from e
    key = next((k for k in ("FX", "X", "y") if k in d), None)
    if key is None:
        raise StcastError(f"{path}: no series key (FX, X or y) among {list(d)}")
    values = np.asarray(d[key], dtype=np.float32)
    n = values.shape[1]
    if "edges" in d:
        e = np.asarray(d["edges"], dtype=np.int64)
        w = np.asarray(d.get("weights", np.ones(len(e))), dtype=np.float32)
        adj = np.zeros((n, n), np.float32)
        adj[e[:, 0], e[:, 1]] = w
    else:
        adj = np.zeros((n, n), np.float32)
        idx, wts = d["edge_mapping"]["edge_index"], d["edge_mapping"]["edge_weight"]
        for t in idx:
            e = np.asarray(idx[t], dtype=np.int64)
            adj[e[:, 0], e[:, 1]] += np.asarray(wts[t], np.float32) / len(idx)
    step = {"chickenpox": 10080, "pedalme": 10080, "england-covid": 1440}.get(name, 1440)
    ts = _regular_index("2005-01-03" if name == "chickenpox" else "2020-03-03", len(values), step)
    meta = DatasetMeta(name, step, max(1, 1440 // step), ("value",), "", notes="timestamps are nominal")
    return SpatioTemporalData.from_array(values, ts, meta, adjacency=adj)


# --------------------------------------------------------------------------------- the user's own


def load_user_table(path, name: str | None = None, layout: str = "auto", time_col: str | None = None,
                    node_col: str = "node", value_col: str = "value", channel_col: str = "channel",
                    adjacency=None, null_value: float | None = None,
                    step_minutes: int | None = None) -> SpatioTemporalData:
    """The user's CSV or Parquet: `wide` (timestamp + one column per node) or `long` (timestamp, node,
    value[, channel]). Gaps in the time index are filled as missing and reported, never shifted."""
    path = _need(path)
    name = name or path.stem
    if path.suffix in (".parquet", ".pq"):
        try:
            df = pd.read_parquet(path)
        except ImportError as e:
            raise StcastError("reading Parquet needs pyarrow: pip install 'stcast[parquet]'") from e
        except Exception as e:
            raise StcastError(f"{path} is not a readable Parquet file ({e})") from e
        if df.empty:
            raise StcastError(f"{path} has no rows")
    else:
        df = _read_csv(path)
    return frame_to_data(df, name, layout=layout, time_col=time_col, node_col=node_col, value_col=value_col,
                         channel_col=channel_col, adjacency=adjacency, null_value=null_value,
                         step_minutes=step_minutes, source=str(path))


def frame_to_data(df: pd.DataFrame, name: str, layout: str = "auto", time_col: str | None = None,
                  node_col: str = "node", value_col: str = "value", channel_col: str = "channel", adjacency=None,
                  null_value: float | None = None, step_minutes: int | None = None,
                  source: str | None = None) -> SpatioTemporalData:
    """A DataFrame (wide or long, as `load_user_table` reads it) as a dataset; `adjacency` is a path or an
    (N, N) array. The same checks and messages as for a file."""
    path = source or "the table"
    if not isinstance(df, pd.DataFrame) or df.empty:
        raise StcastError(f"{path} has no rows")
    time_col = time_col or df.columns[0]
    if time_col not in df.columns:
        raise StcastError(f"{path}: no time column {time_col!r}; columns are {list(df.columns)[:10]}")
    try:
        times = pd.to_datetime(df[time_col], format="mixed")
    except (ValueError, TypeError) as e:
        raise StcastError(f"{path}: column {time_col!r} does not hold timestamps ({e})") from e
    if times.isna().any():
        raise StcastError(f"{path}: {int(times.isna().sum())} rows have no timestamp in column {time_col!r} "
                          f"(e.g. row {int(np.flatnonzero(times.isna().to_numpy())[0]) + 2})")
    if getattr(times.dt, "tz", None) is not None:  # one clock: aware timestamps become naive UTC
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    if layout == "auto":
        layout = "long" if {node_col, value_col} <= set(df.columns) else "wide"
    if layout == "long":
        absent = [c for c in (node_col, value_col) if c not in df.columns]
        if absent:
            raise StcastError(f"{path}: a long table needs columns {node_col!r} and {value_col!r}; missing "
                              f"{absent} among {list(df.columns)[:10]} (name yours with --node-col/--value-col)")
        if not pd.api.types.is_numeric_dtype(df[value_col]):
            bad = pd.to_numeric(df[value_col], errors="coerce").isna() & df[value_col].notna()
            if bad.any():
                raise StcastError(f"{path}: value column {value_col!r} holds text, e.g. {df[value_col][bad].iloc[0]!r} "
                                  f"in row {int(np.flatnonzero(bad.to_numpy())[0]) + 2}")
            df = df.assign(**{value_col: pd.to_numeric(df[value_col], errors="coerce")})
        if df[node_col].isna().any():
            raise StcastError(f"{path}: {int(df[node_col].isna().sum())} rows have no node id in {node_col!r}")
        df = df.assign(**{time_col: times})
        channels = sorted(df[channel_col].astype(str).unique()) if channel_col in df.columns else ["value"]
        if channel_col not in df.columns:
            df = df.assign(**{channel_col: "value"})
        dup = df.duplicated([time_col, node_col, channel_col])
        if dup.any():
            raise StcastError(f"{path}: {int(dup.sum())} duplicate (time, node, channel) rows")
        table = df.pivot(index=time_col, columns=[node_col, channel_col], values=value_col)
        nodes = sorted(df[node_col].unique(), key=str)
        table = table.reindex(columns=pd.MultiIndex.from_product([nodes, channels]))
    elif layout == "wide":
        table = df.drop(columns=[time_col]).set_index(times)
        nodes, channels = list(table.columns), ["value"]
        non_numeric = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
        if non_numeric:
            raise StcastError(f"{path}: non-numeric node columns {non_numeric[:5]} in a wide table; a long table "
                              "(time, node, value) needs --layout long --node-col NAME --value-col NAME")
        if table.shape[1] == 0:
            raise StcastError(f"{path}: no node columns besides the time column {time_col!r}")
    else:
        raise StcastError(f"unknown layout {layout!r}; use 'wide', 'long' or 'auto'")
    table = table.sort_index()
    if table.index.has_duplicates:
        hint = ("" if layout == "long" else "; if this is a long table (time, node, value) pass --layout long "
                "--node-col NAME --value-col NAME")
        raise StcastError(f"{path}: duplicate timestamps, e.g. {table.index[table.index.duplicated()][0]}{hint}")
    diffs = pd.Series(table.index).diff().dropna()
    if diffs.empty:
        raise StcastError(f"{path}: need at least two time steps")
    step = pd.Timedelta(minutes=step_minutes) if step_minutes else diffs.mode().iloc[0]
    full = pd.date_range(table.index[0], table.index[-1], freq=step)
    off_grid = table.index.difference(full)
    if len(off_grid):
        raise StcastError(f"{path}: {len(off_grid)} timestamps are off the {step} grid, e.g. {off_grid[0]}")
    gaps = full.difference(table.index)
    if len(gaps):
        warnings.warn(f"{name}: {len(gaps)} missing time steps (e.g. {gaps[0]}) filled as missing values",
                      stacklevel=2)
    table = table.reindex(full)
    values = table.to_numpy(np.float32).reshape(len(full), len(nodes), len(channels))
    step_min = int(step / pd.Timedelta(minutes=1))
    meta = DatasetMeta(name, step_min, max(1, 1440 // step_min), tuple(map(str, channels)), "",
                       null_value=null_value)
    if adjacency is None:
        adj = None
    elif isinstance(adjacency, str | Path):
        adj = load_adjacency_file(adjacency, len(nodes), name)
    else:
        try:
            arr = np.asarray(adjacency, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise StcastError(f"adjacency for {name} is not a numeric matrix ({e})") from e
        adj = check_adjacency(arr, len(nodes), name)
    data = SpatioTemporalData.from_array(values, full.to_numpy("datetime64[ns]"), meta,
                                         node_ids=[str(n) for n in nodes], adjacency=adj)
    data.extra["gaps"] = full.difference(table.dropna(how="all").index).size if len(gaps) else 0
    observed = data.mask
    zero_share = float((observed & (data.values == 0)).sum() / max(int(observed.sum()), 1))
    if null_value is None and zero_share > 0.05:
        warnings.warn(f"{name}: {zero_share:.1%} of the observed cells are exactly 0 and are scored as real zeros; "
                      "if 0 means 'no reading' (loop detectors, sensors that drop out) pass --null-value 0",
                      stacklevel=2)
    never = ~data.mask.any(axis=(0, 2))
    if never.any():
        ids = [data.node_ids[i] for i in np.flatnonzero(never)[:5]]
        warnings.warn(f"{name}: {int(never.sum())} node(s) have no observed value at all (e.g. {', '.join(ids)}); "
                      "they are kept but nothing can be learned or scored for them", stacklevel=2)
    return data


def load_adjacency_file(path, num_nodes: int, name: str = "dataset") -> np.ndarray:
    """An (N, N) adjacency from .npy, .npz (first array) or a CSV (headerless; a header row of node ids
    and/or a first column of node ids are recognised and dropped). Never unpickles."""
    path = _need(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            adj = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if not z.files:
                    raise StcastError(f"adjacency file {path} holds no array")
                adj = z[z.files[0]]
        else:
            adj = _numeric_csv_matrix(path)
    except StcastError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:  # object arrays, truncated or foreign files
        raise StcastError(f"adjacency file {path} is not a readable numeric matrix ({str(e).splitlines()[0]}); "
                          "expected .npy/.npz of numbers or a CSV of numbers") from e
    adj = np.asarray(adj)
    if adj.dtype.kind not in "fiub":
        raise StcastError(f"adjacency file {path} holds {adj.dtype} data; expected numbers")
    return check_adjacency(adj.astype(np.float32), num_nodes, f"{name} (from {path})")


def _numeric_csv_matrix(path: Path) -> np.ndarray:
    try:
        raw = pd.read_csv(path, header=None, dtype=str, skipinitialspace=True)
    except pd.errors.EmptyDataError as e:
        raise StcastError(f"adjacency file {path} is empty") from e
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise StcastError(f"adjacency file {path} could not be parsed as CSV ({str(e).splitlines()[0]})") from e
    num = raw.apply(pd.to_numeric, errors="coerce")
    text = num.isna() & raw.notna()
    if len(raw) > 1 and text.iloc[0].sum() >= max(1, raw.shape[1] - 1) and not text.iloc[1:, 1:].any().any():
        raw, num, text = raw.iloc[1:], num.iloc[1:], text.iloc[1:]  # a header row (node ids)
    labels_first = text.iloc[:, 0].all() or raw.shape[1] == len(raw) + 1
    if raw.shape[1] > 1 and labels_first and not text.iloc[:, 1:].any().any():
        raw, num, text = raw.iloc[:, 1:], num.iloc[:, 1:], text.iloc[:, 1:]  # a first column of node ids
    if text.any().any():
        r, c = np.argwhere(text.to_numpy())[0]
        raise StcastError(f"adjacency file {path}: cell (row {r + 1}, column {c + 1}) is {raw.iat[r, c]!r}, "
                          "not a number")
    if num.isna().any().any():
        r, c = np.argwhere(num.isna().to_numpy())[0]
        raise StcastError(f"adjacency file {path}: cell (row {r + 1}, column {c + 1}) is empty")
    return num.to_numpy(np.float32)
