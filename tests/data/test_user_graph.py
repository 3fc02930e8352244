"""The user's own graph is matched to the table's sensors by name: every labelled format (a matrix CSV with ids,
an edge list, DCRNN's adj_mx.pkl, a DataFrame) in another sensor order gives the same matrix as the table's order,
labels that are not the table's sensors are an error, and a bare matrix is taken in the table's column order.
Built from the real Los-loop slice (its METR-LA sensor ids are numbers, as users' often are)."""

import pickle

import numpy as np
import pandas as pd
import pytest

from stcast.data.graphs import gaussian_kernel_adjacency
from stcast.data.user_graph import load_adjacency_file
from stcast.data.user_tables import frame_to_data, load_user_table
from stcast.errors import StcastError

T, N = 96, 12


@pytest.fixture(scope="module")
def real(los):
    """(table frame, sensor ids, the real kernel adjacency among them, a shuffled order of the sensors)."""
    ids = [str(i) for i in los.node_ids[:N]]
    frame = pd.DataFrame(los.values[:T, :N, 0], columns=ids)
    frame.insert(0, "time", pd.to_datetime(los.timestamps[:T]))
    adj = los.adjacency[:N, :N].astype(np.float32)
    p = np.random.default_rng(0).permutation(N)
    assert (adj[np.ix_(p, p)] != adj).any()  # the shuffled graph read by position would be wrong
    return frame, ids, adj, p


def _table(tmp_path, frame):
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    return path


def _graph(tmp_path, real, adjacency):
    frame, *_ = real
    return load_user_table(_table(tmp_path, frame), adjacency=adjacency).adjacency


def test_a_labelled_matrix_in_another_order_is_aligned_by_id(tmp_path, real):
    """pandas' `to_csv()` of a labelled matrix (blank corner, numeric ids) in a shuffled order."""
    frame, ids, adj, p = real
    shuffled = pd.DataFrame(adj[np.ix_(p, p)], index=[ids[i] for i in p], columns=[ids[i] for i in p])
    shuffled.to_csv(tmp_path / "adj.csv")
    np.testing.assert_array_equal(_graph(tmp_path, real, tmp_path / "adj.csv"), adj)
    # header row only (ids over a plain matrix), and a named index corner cell
    shuffled.to_csv(tmp_path / "head.csv", index=False)
    np.testing.assert_array_equal(_graph(tmp_path, real, tmp_path / "head.csv"), adj)
    shuffled.rename_axis("sensor").to_csv(tmp_path / "named.csv")
    np.testing.assert_array_equal(_graph(tmp_path, real, tmp_path / "named.csv"), adj)
    # rows and columns each in their own order
    shuffled[[ids[i] for i in p[::-1]]].to_csv(tmp_path / "cols.csv")
    np.testing.assert_array_equal(_graph(tmp_path, real, tmp_path / "cols.csv"), adj)


def test_a_bare_matrix_is_taken_in_the_table_order(tmp_path, real):
    frame, ids, adj, _ = real
    pd.DataFrame(adj).to_csv(tmp_path / "bare.csv", index=False, header=False)
    np.save(tmp_path / "bare.npy", adj)
    for f in ("bare.csv", "bare.npy"):
        np.testing.assert_array_equal(_graph(tmp_path, real, tmp_path / f), adj)


def test_labels_that_are_not_the_table_sensors_are_an_error(tmp_path, real):
    frame, ids, adj, _ = real
    other = ids[:-1] + ["999999"]
    pd.DataFrame(adj, index=other, columns=other).to_csv(tmp_path / "adj.csv")
    with pytest.raises(StcastError, match=r"do not match the table's: 1 label\(s\) .* 999999.*1 sensor\(s\) .*"
                                          + ids[-1]):
        _graph(tmp_path, real, tmp_path / "adj.csv")
    twice = ids[:-1] + [ids[0]]
    pd.DataFrame(adj, index=twice, columns=twice).to_csv(tmp_path / "twice.csv")
    with pytest.raises(StcastError, match=f"sensor id '{ids[0]}' labels more than one"):
        _graph(tmp_path, real, tmp_path / "twice.csv")
    text = [f"s{i}" for i in range(N)]
    pd.DataFrame(adj, index=text, columns=text).to_csv(tmp_path / "text.csv")
    with pytest.raises(StcastError, match="do not match"):
        _graph(tmp_path, real, tmp_path / "text.csv")


def test_an_edge_list_of_sensor_ids_is_dcrnn_kernel_or_weights(tmp_path, real):
    """PEMS's distance.csv layout with the table's sensor ids, listed in any order."""
    frame, ids, adj, p = real
    i, j = np.nonzero(adj > 0)
    dist = np.round(np.sqrt(-np.log(adj[i, j].astype(np.float64))) * 1000, 1)
    order = np.random.default_rng(1).permutation(len(i))
    edges = pd.DataFrame({"from": np.asarray(ids)[i][order], "to": np.asarray(ids)[j][order], "cost": dist[order]})
    edges.to_csv(tmp_path / "distance.csv", index=False)
    want = gaussian_kernel_adjacency(i, j, dist, N)
    np.testing.assert_allclose(_graph(tmp_path, real, tmp_path / "distance.csv"), want, rtol=1e-6)
    edges.rename(columns={"cost": "weight"}).assign(weight=adj[i, j][order]).to_csv(tmp_path / "w.csv", index=False)
    np.testing.assert_array_equal(_graph(tmp_path, real, tmp_path / "w.csv"), adj)
    edges.iloc[:3].assign(to="nope").to_csv(tmp_path / "unknown.csv", index=False)
    with pytest.raises(StcastError, match=r"1 sensor\(s\) that are not in the table \(e.g. nope\)"):
        _graph(tmp_path, real, tmp_path / "unknown.csv")
    pd.concat([edges, edges.iloc[:1]]).to_csv(tmp_path / "repeat.csv", index=False)
    with pytest.raises(StcastError, match=f"line {len(edges) + 2} repeats the edge"):
        _graph(tmp_path, real, tmp_path / "repeat.csv")
    edges.assign(cost=edges["cost"].astype(object).where(edges.index != 2, "n/a")).to_csv(
        tmp_path / "nan.csv", index=False)
    with pytest.raises(StcastError, match=r"line \d+ has cost 'n/a'"):
        _graph(tmp_path, real, tmp_path / "nan.csv")


def test_dcrnn_adj_mx_pickle_is_aligned_by_its_sensor_ids(tmp_path, real):
    frame, ids, adj, p = real
    shuffled_ids = [ids[i] for i in p]
    with open(tmp_path / "adj_mx.pkl", "wb") as f:
        pickle.dump([shuffled_ids, {s: k for k, s in enumerate(shuffled_ids)}, adj[np.ix_(p, p)]], f, protocol=2)
    np.testing.assert_array_equal(_graph(tmp_path, real, tmp_path / "adj_mx.pkl"), adj)


def test_npz_with_several_arrays_uses_the_named_graph_or_refuses(tmp_path, real):
    frame, ids, adj, _ = real
    np.savez(tmp_path / "named.npz", dist=adj * 7, adj_mx=adj)
    np.testing.assert_array_equal(_graph(tmp_path, real, tmp_path / "named.npz"), adj)
    np.savez(tmp_path / "two.npz", first=adj * 7, second=adj)
    with pytest.raises(StcastError, match="holds 2 arrays .*which is the graph is unclear"):
        _graph(tmp_path, real, tmp_path / "two.npz")


def test_a_dataframe_graph_is_aligned_by_its_labels(real):
    """The Python API (`fit(df, adjacency=A)`): a labelled DataFrame is matched by id; a plain one is positional."""
    frame, ids, adj, p = real
    labelled = pd.DataFrame(adj[np.ix_(p, p)], index=[ids[i] for i in p], columns=[ids[i] for i in p])
    np.testing.assert_array_equal(frame_to_data(frame, "t", adjacency=labelled, api=True).adjacency, adj)
    np.testing.assert_array_equal(frame_to_data(frame, "t", adjacency=pd.DataFrame(adj), api=True).adjacency, adj)
    read_back = pd.DataFrame(adj).set_axis(pd.Index(list(range(N))), axis=1)  # read_csv(header=None): not a RangeIndex
    np.testing.assert_array_equal(frame_to_data(frame, "t", adjacency=read_back, api=True).adjacency, adj)
    wrong = labelled.rename(index={ids[p[0]]: "x"}, columns={ids[p[0]]: "x"})
    with pytest.raises(StcastError, match="do not match"):
        frame_to_data(frame, "t", adjacency=wrong, api=True)


def test_wrong_size_is_still_named(tmp_path, real):
    frame, ids, adj, _ = real
    pd.DataFrame(adj[:-1, :-1], index=ids[:-1], columns=ids[:-1]).to_csv(tmp_path / "small.csv")
    with pytest.raises(StcastError, match="do not match|expected 12x12"):
        _graph(tmp_path, real, tmp_path / "small.csv")
    np.save(tmp_path / "small.npy", adj[:-1, :-1])
    with pytest.raises(StcastError, match="11x11; expected 12x12"):
        load_adjacency_file(tmp_path / "small.npy", N)


def test_transition_matrix_of_weights_near_float32_range():
    """Rows of weights near float32's range summed to inf in float32, and D^-1 A became a row of zeros: the
    graph silently vanished. The degree is summed in float64."""
    from stcast.data.graphs import row_normalise

    a = np.array([[3e38, 3e38, 0], [0, 1, 1], [0, 0, 0]], dtype=np.float32)
    np.testing.assert_allclose(row_normalise(a), [[0.5, 0.5, 0], [0, 0.5, 0.5], [0, 0, 0]])


@pytest.mark.parametrize("how", ["file", "array", "frame"])
def test_a_graph_without_edges_between_sensors_is_said(tmp_path, real, how, recwarn):
    """A matrix of zeros or of self-loops only is valid but carries nothing: a warning says so (a real graph,
    even with isolated sensors, does not)."""
    frame, ids, adj, _ = real
    np.save(tmp_path / "eye.npy", np.eye(N))
    given = {"file": str(tmp_path / "eye.npy"), "array": np.zeros((N, N)),
             "frame": pd.DataFrame(np.eye(N), index=ids, columns=ids)}[how]
    with pytest.warns(UserWarning, match="no edges between sensors"):
        _graph(tmp_path, real, given)
    sparse = adj.copy()
    sparse[3, :] = sparse[:, 3] = 0  # one isolated sensor is a graph's business, not a warning
    _graph(tmp_path, real, sparse)
    assert not [w for w in recwarn if "no edges" in str(w.message)]
