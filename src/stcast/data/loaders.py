"""Loaders for the published formats (the user's own tables: data/user_tables.py). Each returns SpatioTemporalData.

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
from stcast.data.files import need_file, read_csv
from stcast.data.graphs import binary_adjacency, gaussian_kernel_adjacency, read_edge_list, station_adjacency
from stcast.data.safe_pickle import restricted_load
from stcast.errors import StcastError


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
    df = read_csv(speed_csv)  # pandas reads .gz transparently
    meta = DatasetMeta("los-loop", 5, 288, ("speed",), "mph", null_value=0.0,
                       notes="timestamps assumed from 2012-03-01 00:00 (METR-LA's first week)")
    adj = None if adj_csv is None else read_csv(adj_csv, header=None).to_numpy(np.float32)
    return SpatioTemporalData.from_array(df.to_numpy(np.float32), _regular_index("2012-03-01", len(df), 5),
                                         meta, adjacency=adj, node_ids=list(df.columns))


def load_pems_npz(npz_path, name: str, start: str, edges_csv=None, id_txt=None,
                  adjacency: str = "gaussian") -> SpatioTemporalData:
    """PEMS03/04/07/08 `.npz` with key `data` (T, N, C), 5-minute steps; zeros are missing.

    The graph comes from the distance CSV (PEMS03 maps raw ids via PEMS03.txt), as a thresholded
    Gaussian kernel (DCRNN) or binary connectivity (ASTGCN).
    """
    path = need_file(npz_path)
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
            ids = [line.strip() for line in open(need_file(id_txt)) if line.strip()]
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

    values, index, ids = read_pandas_hdf(need_file(h5_path))
    return _speed_matrix(values, index, ids, name, str(h5_path), adj_pkl)


def load_metr_la_npz(npz_path, adj_pkl=None) -> SpatioTemporalData:
    """The shared full METR-LA copy: keys `speed` (T, 207) with 0 = missing, `sensor_ids`, `timestamps`."""
    path = need_file(npz_path)
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
            frames.append(pd.read_csv(need_file(p), sep="\t", header=None, names=MILAN_COLUMNS))
        except pd.errors.EmptyDataError as e:
            raise StcastError(f"{p} is empty") from e
    df = pd.concat(frames, ignore_index=True)
    if df.empty:
        raise StcastError(f"no rows in {paths}")
    agg = df.groupby(["time_interval", "square_id"])[MILAN_COLUMNS[3:]].sum(min_count=1)
    return _grid_from_long(agg, name, tuple(MILAN_COLUMNS[3:]))


def load_milan_processed(csv_path, name: str = "milan-sample") -> SpatioTemporalData:
    """The processed sample (square_id, time_interval ms, internet_total): (T, squares, 1)."""
    df = read_csv(csv_path)
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
        tensor = loadmat(need_file(mat_path))["tensor"].astype(np.float32)
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
        with np.load(need_file(p), allow_pickle=False) as z:
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
        with np.load(need_file(adj_npz), allow_pickle=False) as z:
            adj = z["adj_mx"].astype(np.float32)
    meta = DatasetMeta("nycbike1", 60, 24, ("inflow", "outflow"), "trips/hour")
    return SpatioTemporalData.from_array(series, ts, meta, adjacency=adj, nan_as_missing=True)


# ----------------------------------------------------------------------------- environment/other


def load_aqi36(ground_txt, missing_txt, latlng_txt=None) -> SpatioTemporalData:
    """AQI-36 (Beijing PM2.5, 36 stations, hourly). mask = observed in ground truth; eval_mask = observed
    in ground but NaN in pm25_missing (the simulated failures the GRIN/CSDI/PriSTI protocol scores)."""
    ground = read_csv(ground_txt, index_col=0, parse_dates=True)
    missing = read_csv(missing_txt, index_col=0, parse_dates=True)
    if ground.shape != missing.shape or not ground.index.equals(missing.index):
        raise StcastError(f"{ground_txt} and {missing_txt} differ in shape or time index")
    g = ground.to_numpy(np.float32)
    eval_mask = ~np.isnan(g) & np.isnan(missing.to_numpy(np.float32))
    coords = adj = None
    if latlng_txt is not None:  # the stations' places: GRIN's distance graph
        ll = read_csv(latlng_txt, dtype={"sensor_id": str})
        if len(ll) != g.shape[1] or not {"latitude", "longitude"} <= set(ll.columns):
            raise StcastError(f"{latlng_txt}: expected latitude and longitude for each of the {g.shape[1]} stations; "
                              f"got {len(ll)} rows with columns {list(ll.columns)}")
        coords = ll[["latitude", "longitude"]].to_numpy(np.float32)
        if not np.isfinite(coords).all():
            raise StcastError(f"{latlng_txt}: a station's latitude or longitude is missing or not a number")
        adj = station_adjacency(coords)
    meta = DatasetMeta("aqi36", 60, 24, ("pm25",), "ug/m3")
    return SpatioTemporalData.from_array(g, ground.index.to_numpy("datetime64[ns]"), meta, coords=coords,
                                         adjacency=adj, node_ids=[str(c) for c in ground.columns],
                                         eval_mask=eval_mask[:, :, None])


def load_wide_table(path, name: str, step_minutes: int, units: str = "") -> SpatioTemporalData:
    """ETT / exchange / illness style: a date column then one column per series (each series a node)."""
    df = read_csv(path)
    ts = pd.to_datetime(df.iloc[:, 0], format="mixed").to_numpy("datetime64[ns]")
    values = df.iloc[:, 1:].to_numpy(np.float32)
    meta = DatasetMeta(name, step_minutes, max(1, 1440 // step_minutes), ("value",), units)
    return SpatioTemporalData.from_array(values, ts, meta, node_ids=list(df.columns[1:]))


def load_pygt_json(path, name: str) -> SpatioTemporalData:
    """PyTorch Geometric Temporal JSON (chickenpox: FX; pedalme: X + weights; england_covid: y +
    per-day edges, averaged into one static graph)."""
    try:
        d = json.load(open(need_file(path)))
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
