"""Dataset transforms: node clustering / aggregation to K nodes (U-STS-LLM's zero-shot transfer).

U-STS-LLM transfers Milan -> Trento by clustering both grids to the same number of nodes with K-means on
location and keeping the index order spatially coherent. `cluster_nodes` does that for any dataset: K-means
on coordinates (`by="coords"`) or on the nodes' z-scored mean daily profiles (`by="profile"`, for data without
locations); clusters are numbered along the first principal axis of their centroids, so neighbouring indices
are neighbouring regions. Values are aggregated over the observed members (mean, or sum for counts).
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.vq import kmeans2

from stcast.data.core import SpatioTemporalData
from stcast.errors import StcastError


def daily_profiles(values: np.ndarray, observed: np.ndarray, tod: np.ndarray, steps_per_day: int) -> np.ndarray:
    """Mean daily profile per node (steps_per_day, N): observed entries only, channels averaged."""
    v = np.where(observed, values, 0.0).astype(np.float64).mean(-1)  # (T, N)
    m = observed.any(-1).astype(np.float64)
    sums, cnt = np.zeros((steps_per_day, v.shape[1])), np.zeros((steps_per_day, v.shape[1]))
    np.add.at(sums, tod, v)
    np.add.at(cnt, tod, m)
    return sums / np.maximum(cnt, 1)


def _profiles(data: SpatioTemporalData) -> np.ndarray:
    tod, _ = data.calendar()
    prof = daily_profiles(np.asarray(data.values), data.observed(), tod, data.meta.steps_per_day)
    prof = (prof - prof.mean(0)) / prof.std(0).clip(min=1e-9)
    return prof.T  # (N, steps_per_day)


def cluster_assignment(data: SpatioTemporalData, k: int, by: str = "auto", seed: int = 0) -> np.ndarray:
    """Cluster index (N,) in 0..k-1 for each node, numbered along the centroids' first principal axis."""
    n = data.num_nodes
    if not 1 <= k <= n:
        raise StcastError(f"cannot cluster {n} nodes of {data.meta.name} into k={k} clusters (need 1 <= k <= {n})")
    if by == "auto":
        by = "coords" if data.coords is not None else "profile"
    if by == "coords":
        if data.coords is None:
            raise StcastError(f"{data.meta.name} has no node coordinates; cluster by='profile' instead")
        feats = np.asarray(data.coords, dtype=np.float64)
    elif by == "profile":
        feats = _profiles(data)
    else:
        raise StcastError(f"unknown clustering {by!r}; use 'coords', 'profile' or 'auto'")
    return _ranked_kmeans(feats, k, seed)[0]


def _ranked_kmeans(feats: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """K-means labels renumbered along the centroids' first principal axis, and each point's coordinate on
    that axis."""
    rng = np.random.default_rng(seed)
    for _ in range(10):  # k-means++ can leave a cluster empty: retry with another seed
        centroids, labels = kmeans2(feats, k, minit="++", seed=rng)
        if len(np.unique(labels)) == k:
            break
    else:
        raise StcastError(f"k-means left empty clusters for k={k} on {len(feats)} nodes; choose a smaller k")
    centre = centroids.mean(0)
    centred = centroids - centre
    axis = np.linalg.svd(centred, full_matrices=False)[2][0] if k > 1 else np.ones(centroids.shape[1])
    order = np.argsort(centred @ axis, kind="stable")  # spatially coherent numbering
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    return rank[labels], (feats - centre) @ axis


def spatial_order(feats: np.ndarray, groups: int, seed: int = 0) -> np.ndarray:
    """A node permutation (N,) that gives neighbouring nodes adjacent indices (U-STS-LLM, Sec. IV-A: "nodes close
    in spatial terms were also assigned adjacent index numbers"): K-means into `groups` clusters numbered along
    the centroids' principal axis, members ordered along the same axis. `feats` (N, F): coordinates, or
    profiles for data without locations. Position i of the result is the node placed at index i."""
    feats = np.asarray(feats, dtype=np.float64)
    n = len(feats)
    if not np.isfinite(feats).all():
        raise StcastError("node features for the spatial order hold NaN or inf")
    k = max(1, min(groups, n))
    if n < 3 or np.ptp(feats, axis=0).max() == 0:  # nothing to order: keep the file order
        return np.arange(n)
    while True:
        try:
            labels, proj = _ranked_kmeans(feats, k, seed)
            break
        except StcastError:  # repeated locations can leave clusters empty: fewer, larger clusters
            if k == 1:
                raise
            k //= 2
    return np.lexsort((np.arange(n), proj, labels))


def cluster_nodes(data: SpatioTemporalData, k: int, by: str = "auto", reduce: str = "mean",
                  seed: int = 0) -> SpatioTemporalData:
    """The dataset aggregated to k nodes (T, k, C); a cluster-step is observed if any member is."""
    if reduce not in ("mean", "sum"):
        raise StcastError(f"reduce={reduce!r}; use 'mean' (speeds, levels) or 'sum' (counts)")
    labels = cluster_assignment(data, k, by, seed)
    member = np.zeros((data.num_nodes, k), dtype=np.float32)
    member[np.arange(data.num_nodes), labels] = 1.0
    obs = data.observed().astype(np.float32)
    vals = np.einsum("tnc,nk->tkc", np.where(obs > 0, np.asarray(data.values, dtype=np.float32), 0.0), member)
    cnt = np.einsum("tnc,nk->tkc", obs, member)
    if reduce == "mean":
        vals = vals / np.maximum(cnt, 1)
    coords = None
    if data.coords is not None:
        coords = (member.T @ np.asarray(data.coords, dtype=np.float64)) / member.sum(0)[:, None]
    adjacency = None
    if data.adjacency is not None:  # clusters linked by the total weight of their members' edges
        adjacency = member.T @ np.asarray(data.adjacency, dtype=np.float64) @ member
        np.fill_diagonal(adjacency, 0)
        adjacency = adjacency / max(adjacency.max(), 1e-12)
    return SpatioTemporalData(values=vals.astype(np.float32), timestamps=data.timestamps, meta=data.meta,
                              mask=cnt > 0, adjacency=adjacency, coords=coords,
                              node_ids=[f"cluster{i}" for i in range(k)], extra={"cluster_of_node": labels})
