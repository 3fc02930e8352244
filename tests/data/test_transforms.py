"""Node clustering for zero-shot transfer: every node lands in one of K clusters, values aggregate exactly."""

import numpy as np
import pytest

from stcast.data.transforms import cluster_assignment, cluster_nodes
from stcast.errors import StcastError


def test_cluster_values_are_member_means_over_observed(los_small):
    out = cluster_nodes(los_small, 5, by="profile")
    labels = out.extra["cluster_of_node"]
    assert out.values.shape == (576, 5, 1) and sorted(set(labels)) == list(range(5))
    obs = los_small.observed()
    v = np.asarray(los_small.values)
    for c in range(5):
        members = labels == c
        num = (v[:, members] * obs[:, members]).sum(1)
        den = obs[:, members].sum(1)
        want = np.where(den > 0, num / np.maximum(den, 1), 0)
        assert np.allclose(out.values[:, c], want, atol=1e-4)
    summed = cluster_nodes(los_small, 5, by="profile", reduce="sum")
    assert np.allclose(summed.values.sum(1), (v * obs).sum(1), rtol=1e-4)  # nothing lost, nothing counted twice


def test_profile_clustering_groups_identical_nodes(los_small):
    v = np.asarray(los_small.values).copy()
    v[:, 7] = v[:, 3]  # node 7 becomes a copy of node 3
    twin = type(los_small)(values=v, timestamps=los_small.timestamps, meta=los_small.meta,
                           mask=los_small.observed() | los_small.observed()[:, [3]])
    labels = cluster_assignment(twin, 6, by="profile")
    assert labels[7] == labels[3]


def test_coordinate_clustering_is_spatially_ordered(los_small):
    rng = np.random.default_rng(0)
    coords = np.concatenate([rng.normal(0, 0.01, (10, 2)), rng.normal(5, 0.01, (10, 2))])
    d = type(los_small)(values=los_small.values, timestamps=los_small.timestamps, meta=los_small.meta,
                        coords=coords)
    labels = cluster_assignment(d, 2, by="coords")
    assert len(set(labels[:10])) == 1 and len(set(labels[10:])) == 1 and labels[0] != labels[10]


def test_bad_requests(los_small):
    with pytest.raises(StcastError, match="k=21"):
        cluster_nodes(los_small, 21)
    with pytest.raises(StcastError, match="unknown clustering"):
        cluster_nodes(los_small, 3, by="colour")
    with pytest.raises(StcastError, match="no node coordinates"):
        cluster_nodes(los_small, 3, by="coords")
    with pytest.raises(StcastError, match="reduce="):
        cluster_nodes(los_small, 3, reduce="max")
