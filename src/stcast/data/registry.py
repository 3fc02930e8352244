"""Named datasets: metadata, where their files live, and how to load them."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from stcast.data import loaders
from stcast.data.core import SpatioTemporalData
from stcast.data.download import data_dir, download, verify
from stcast.errors import StcastError, did_you_mean

# Standard-benchmark sources. Digests could not be pinned from this offline machine, so the first
# download records the digest beside the file (download.verify checks it afterwards); pass
# `sha256=` / `--sha256` to pin one yourself.
_ASTGNN = "https://raw.githubusercontent.com/guoshnBJTU/ASTGNN/main/data"


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    files: tuple[str, ...]  # relative to the folder the data lives in
    loader: Callable[..., SpatioTemporalData]
    location: str  # "bundled" (inside the package), "shared" (../shared/data), "download" (data dir)
    step_minutes: int
    steps_per_day: int
    channels: tuple[str, ...]
    units: str
    null_value: float | None
    split: tuple[float, ...] = (0.7, 0.1, 0.2)
    input_len: int = 12
    horizon: int = 12
    tasks: tuple[str, ...] = ("forecast", "impute")
    optional_files: tuple[str, ...] = ()
    urls: dict[str, str] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)
    folder: str = ""
    shared_copy: str = ""  # a file under ../shared/data used when `files` are not in the data dir


def shared_data_dir() -> Path | None:
    """../shared/data beside the project (or $STCAST_SHARED_DATA)."""
    candidates = [os.environ.get("STCAST_SHARED_DATA"),
                  Path(__file__).resolve().parents[3].parent / "shared" / "data",
                  Path.cwd().parent / "shared" / "data", Path.cwd() / "shared" / "data"]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    return None


def _pems(name, start, nodes):
    num = name[-2:]
    edge_files = (f"PEMS{num}.csv",) + (("PEMS03.txt",) if num == "03" else ())
    return DatasetInfo(
        name=name, description=f"Caltrans PeMS district {num}: {nodes} sensors, flow (5 min), split 6:2:2",
        files=(f"PEMS{num}.npz",), optional_files=edge_files,
        loader=lambda p, o: loaders.load_pems_npz(p[0], name, start, *_edge_args(o, num)),
        location="download", step_minutes=5, steps_per_day=288, channels=("flow",), units="vehicles",
        null_value=0.0, split=(0.6, 0.2, 0.2), urls={f"PEMS{num}.npz": f"{_ASTGNN}/PEMS{num}/PEMS{num}.npz"},
        folder="pems")


def _edge_args(optional: list, num: str):
    csv = next((p for p in optional if p.name == f"PEMS{num}.csv"), None)
    if csv is None:  # fall back to the graphs in ../shared/data/pems-graphs
        shared = shared_data_dir()
        if shared and (shared / "pems-graphs" / f"PEMS{num}.csv").exists():
            csv = shared / "pems-graphs" / f"PEMS{num}.csv"
    txt = None
    if num == "03" and csv is not None:
        txt = csv.with_name("PEMS03.txt")
    return csv, txt


_REGISTRY: dict[str, DatasetInfo] = {}


def register(info: DatasetInfo) -> DatasetInfo:
    _REGISTRY[info.name] = info
    return info


for _info in [
    DatasetInfo("los-loop", "T-GCN Los-loop: one real week of METR-LA speeds, 207 sensors (bundled)",
                ("los_speed.csv.gz",), lambda p, o: loaders.load_los_loop(p[0], o[0] if o else None),
                "bundled", 5, 288, ("speed",), "mph", 0.0, optional_files=("los_adj.csv.gz",)),
    DatasetInfo("aqi36", "Beijing PM2.5, 36 stations, hourly, with the simulated-failure evaluation mask",
                ("pm25_ground.txt", "pm25_missing.txt"),
                lambda p, o: loaders.load_aqi36(p[0], p[1], o[0] if o else None), "shared", 60, 24,
                ("pm25",), "ug/m3", None, input_len=36, horizon=36, tasks=("impute",),
                optional_files=("pm25_latlng.txt",), folder="aqi36"),
    DatasetInfo("nycbike1", "ST-SSL NYCBike1 16x8 grid in/outflow, hourly (val+test hours rebuilt)",
                ("val.npz", "test.npz"), lambda p, o: loaders.load_nycbike1(p[0], p[1], o[0] if o else None),
                "shared", 60, 24, ("inflow", "outflow"), "trips", None, split=(0.6, 0.2, 0.2),
                input_len=12, horizon=1, optional_files=("adj_mx.npz",), folder="nycbike1"),
    DatasetInfo("hangzhou-metro", "Hangzhou metro passenger flow, 80 stations, 10 min, 25 days",
                ("tensor.mat",), lambda p, o: loaders.load_hangzhou_metro(p[0]), "shared", 10, 108,
                ("passengers",), "passengers", None, input_len=12, horizon=12, folder="hangzhou-metro"),
    DatasetInfo("milan-sample", "Telecom Italia Milan internet activity, 6 squares, one day (10 min)",
                ("sms-call-internet-mi-2013-11-01_internet_total.csv",),
                lambda p, o: loaders.load_milan_processed(p[0]), "shared", 10, 144, ("internet",), "CDR",
                None, input_len=12, horizon=6, folder="milan-sample"),
    DatasetInfo("etth1", "ETTh1 electricity transformer, 7 series, hourly", ("ETTh1.csv",),
                lambda p, o: loaders.load_wide_table(p[0], "etth1", 60), "shared", 60, 24, ("value",), "",
                None, split=(0.6, 0.2, 0.2), input_len=96, horizon=96, folder="ett"),
    DatasetInfo("etth2", "ETTh2 electricity transformer, 7 series, hourly", ("ETTh2.csv",),
                lambda p, o: loaders.load_wide_table(p[0], "etth2", 60), "shared", 60, 24, ("value",), "",
                None, split=(0.6, 0.2, 0.2), input_len=96, horizon=96, folder="ett"),
    DatasetInfo("exchange-rate", "Daily exchange rates of 8 currencies, 1990-2010", ("exchange_rate.csv",),
                lambda p, o: loaders.load_wide_table(p[0], "exchange-rate", 1440), "shared", 1440, 1,
                ("value",), "", None, input_len=96, horizon=96, folder="tslib"),
    DatasetInfo("illness", "US influenza-like illness, 7 series, weekly", ("national_illness.csv",),
                lambda p, o: loaders.load_wide_table(p[0], "illness", 10080), "shared", 10080, 1,
                ("value",), "", None, input_len=36, horizon=24, folder="tslib"),
    DatasetInfo("chickenpox", "Hungarian chickenpox cases, 20 counties, weekly (PyGT)", ("chickenpox.json",),
                lambda p, o: loaders.load_pygt_json(p[0], "chickenpox"), "shared", 10080, 1, ("value",), "",
                None, input_len=4, horizon=1, folder="pygt"),
    DatasetInfo("pedalme", "PedalMe London deliveries, 15 regions, weekly (PyGT)", ("pedalme_london.json",),
                lambda p, o: loaders.load_pygt_json(p[0], "pedalme"), "shared", 10080, 1, ("value",), "",
                None, input_len=4, horizon=1, folder="pygt"),
    DatasetInfo("england-covid", "England COVID cases, 129 regions, daily (PyGT)", ("england_covid.json",),
                lambda p, o: loaders.load_pygt_json(p[0], "england-covid"), "shared", 1440, 1, ("value",),
                "", None, input_len=8, horizon=1, folder="pygt"),
    _pems("pems03", "2018-09-01", 358),
    _pems("pems04", "2018-01-01", 307),
    _pems("pems07", "2017-05-01", 883),
    _pems("pems08", "2016-07-01", 170),
    DatasetInfo("metr-la", "METR-LA loop speeds, 207 sensors, 4 months (5 min), split 7:1:2", ("metr-la.h5",),
                lambda p, o: _metr_la(p[0], _graph(o, "metr-la-graph", "adj_mx.pkl")),
                "download", 5, 288, ("speed",), "mph", 0.0, optional_files=("adj_mx.pkl",), folder="metr-la",
                shared_copy="metr-la/metr-la.npz"),
    DatasetInfo("pems-bay", "PEMS-BAY speeds, 325 sensors, 6 months (5 min), split 7:1:2", ("pems-bay.h5",),
                lambda p, o: loaders.load_dcrnn_h5(p[0], "pems-bay",
                                                   _graph(o, "pems-bay-graph", "adj_mx_bay.pkl")),
                "download", 5, 288, ("speed",), "mph", 0.0, optional_files=("adj_mx_bay.pkl",),
                folder="pems-bay"),
]:
    register(_info)


def _graph(optional: list, shared_folder: str, filename: str):
    if optional:
        return optional[0]
    shared = shared_data_dir()
    path = shared / shared_folder / filename if shared else None
    return path if path is not None and path.exists() else None


def _metr_la(path: Path, adj_pkl):
    """The user's DCRNN metr-la.h5 when it is in the data dir, else the shared full copy (.npz)."""
    if path.suffix == ".npz":
        return loaders.load_metr_la_npz(path, adj_pkl)
    return loaders.load_dcrnn_h5(path, "metr-la", adj_pkl)


TABLE_SUFFIXES = (".csv", ".parquet", ".pq", ".gz")  # what stcast writes (forecast / impute --out)
READ_SUFFIXES = TABLE_SUFFIXES + (".tsv", ".txt", ".zip", ".bz2", ".xz", ".xlsx", ".xlsm", ".xls", ".ods")  # reads


def is_table_path(spec: str) -> bool:
    """A path to the user's own CSV/Parquet table rather than a registered dataset name."""
    path = Path(spec)
    return path.suffix.lower() in READ_SUFFIXES or path.exists()


def dataset_names() -> list[str]:
    return sorted(_REGISTRY)


def get_info(name: str) -> DatasetInfo:
    if name not in _REGISTRY:
        raise StcastError(f"unknown dataset {name!r}{did_you_mean(name, _REGISTRY)}")
    return _REGISTRY[name]


def dataset_folder(info: DatasetInfo, root=None) -> Path | None:
    if info.location == "bundled":
        return Path(str(resources.files("stcast") / "resources"))
    if info.location == "shared":
        shared = shared_data_dir()
        if root is not None and (Path(root) / info.folder).is_dir():
            return Path(root) / info.folder
        return shared / info.folder if shared else None
    return data_dir(root) / info.folder


def load_dataset(name: str, data_dir=None, download_missing: bool = False) -> SpatioTemporalData:
    """Load a registered dataset by name. `download_missing` fetches standard benchmarks on request."""
    info = get_info(name)
    folder = dataset_folder(info, data_dir)
    if folder is None:
        raise StcastError(f"{name}: the shared data folder (../shared/data) was not found; set "
                          "STCAST_SHARED_DATA to its path")
    paths = [folder / f for f in info.files]
    missing = [p for p in paths if not p.exists()]
    shared = shared_data_dir()
    if missing and info.shared_copy and shared is not None and (shared / info.shared_copy).exists():
        paths, missing = [shared / info.shared_copy], []  # e.g. the full METR-LA in ../shared/data/metr-la
    if missing and download_missing and info.urls:
        for p in missing:
            download(info.urls[p.name], p, info.sha256.get(p.name))
        missing = []
    if missing:
        how = (f"run `stcast datasets download {name}` or place the files there" if info.urls
               else "place the published file there (or pass --data-dir)" if info.location == "download"
               else "it ships with ../shared/data")
        raise StcastError(f"{name}: missing {', '.join(str(p) for p in missing)}; {how}")
    for p in paths:  # a digest recorded at download (or pinned here) is checked on every load
        if not verify(p, info.sha256.get(p.name)):
            raise StcastError(f"{name}: {p} does not match the sha256 recorded when it was downloaded (changed or "
                              f"truncated since); delete it and run `stcast datasets download {name}`")
    optional = [folder / f for f in info.optional_files if (folder / f).exists()]
    data = info.loader(paths, optional)
    if name in ("metr-la", "los-loop") and data.coords is None:  # METR-LA's sensors: DCRNN's locations, if here
        data.coords = _sensor_locations(data.node_ids, _graph([], "metr-la-graph", "graph_sensor_locations.csv"))
    return data


def _sensor_locations(node_ids, path) -> np.ndarray | None:
    """(N, 2) latitude, longitude of each node id from a DCRNN `graph_sensor_locations.csv`; None when the file is
    absent or does not list every node (pictures then draw by sensor index)."""
    if path is None or not node_ids:
        return None
    import pandas as pd

    try:
        table = pd.read_csv(path, dtype={"sensor_id": str}).set_index("sensor_id")
        return table.loc[[str(i) for i in node_ids], ["latitude", "longitude"]].to_numpy(np.float32)
    except (KeyError, ValueError, OSError, pd.errors.ParserError):
        return None
