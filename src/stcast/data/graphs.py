"""Adjacency matrices: DCRNN's thresholded Gaussian kernel and binary connectivity from edge lists."""

from __future__ import annotations

import numpy as np
import pandas as pd

from stcast.errors import StcastError


def read_edge_list(path, id_order: list | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read a `from,to,cost|distance` CSV. With `id_order`, raw sensor ids are mapped to row indices
    (PEMS03 through PEMS03.txt, PEMS-BAY through the sensor id list); otherwise ids are row indices."""
    try:
        df = pd.read_csv(path)
    except FileNotFoundError as e:
        raise StcastError(f"edge list not found: {path}") from e
    except pd.errors.EmptyDataError as e:
        raise StcastError(f"edge list {path} is empty") from e
    if df.shape[1] < 3:
        raise StcastError(f"edge list {path} needs columns from,to,cost; got {list(df.columns)}")
    src, dst, cost = df.iloc[:, 0].to_numpy(), df.iloc[:, 1].to_numpy(), df.iloc[:, 2].to_numpy(float)
    if id_order is not None:
        index = {str(s): i for i, s in enumerate(id_order)}
        unknown = sorted({str(s) for s in np.concatenate([src, dst])} - index.keys())
        if unknown:
            raise StcastError(f"edge list {path} names {len(unknown)} sensors missing from the id list, "
                              f"e.g. {unknown[:3]}")
        src = np.array([index[str(s)] for s in src])
        dst = np.array([index[str(s)] for s in dst])
    return src.astype(np.int64), dst.astype(np.int64), cost


def _check_edges(src, dst, num_nodes):
    if len(src) and (max(src.max(), dst.max()) >= num_nodes or min(src.min(), dst.min()) < 0):
        raise StcastError(f"edge list refers to node {max(src.max(), dst.max())}; only {num_nodes} nodes")


def gaussian_kernel_adjacency(src, dst, dist, num_nodes: int, threshold: float = 0.1) -> np.ndarray:
    """DCRNN's recipe: W_ij = exp(-(d_ij / std)^2) over listed pairs, std over the listed distances,
    entries below `threshold` zeroed. Unlisted pairs are unconnected (distance inf)."""
    _check_edges(src, dst, num_nodes)
    d = np.full((num_nodes, num_nodes), np.inf, dtype=np.float64)
    d[src, dst] = dist
    finite = d[np.isfinite(d)]
    std = finite.std() if finite.size else 1.0
    adj = np.exp(-np.square(d / (std if std > 0 else 1.0)))
    adj[adj < threshold] = 0.0
    return adj.astype(np.float32)


def station_adjacency(latlng: np.ndarray, threshold: float = 0.1) -> np.ndarray:
    """GRIN's AQI-36 graph (Cini et al. 2022, its `get_similarity`): haversine distances between stations (km),
    W_ij = exp(-(d_ij / theta)^2) with theta the std of all pairwise distances, entries below `threshold`
    zeroed, no self-loops."""
    lat, lon = np.radians(np.asarray(latlng, dtype=np.float64)).T
    dlat, dlon = lat[:, None] - lat[None], lon[:, None] - lon[None]
    h = np.sin(dlat / 2) ** 2 + np.cos(lat[:, None]) * np.cos(lat[None]) * np.sin(dlon / 2) ** 2
    d = 2 * 6371.0088 * np.arcsin(np.sqrt(np.clip(h, 0, 1)))
    theta = d.std()
    adj = np.exp(-np.square(d / (theta if theta > 0 else 1.0)))
    adj[adj < threshold] = 0.0
    np.fill_diagonal(adj, 0.0)
    return adj.astype(np.float32)


def binary_adjacency(src, dst, num_nodes: int, symmetric: bool = True, self_loops: bool = False) -> np.ndarray:
    _check_edges(src, dst, num_nodes)
    adj = np.zeros((num_nodes, num_nodes), dtype=np.float32)
    adj[src, dst] = 1.0
    if symmetric:
        adj[dst, src] = 1.0
    if self_loops:
        np.fill_diagonal(adj, 1.0)
    return adj


def row_normalise(adj: np.ndarray) -> np.ndarray:
    """Random-walk transition matrix D^-1 A (rows of zeros stay zero)."""
    deg = adj.sum(1, keepdims=True, dtype=np.float64)  # float32 sums of weights near its range overflow to inf
    return np.divide(adj, deg, out=np.zeros_like(adj, dtype=np.float32), where=deg > 0, casting="unsafe")
