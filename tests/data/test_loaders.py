"""Loaders against files written in exactly the published layouts, from the real Los-loop slice."""

import os
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

from stcast.data.graphs import gaussian_kernel_adjacency, read_edge_list
from stcast.data.loaders import load_dcrnn_adjacency, load_dcrnn_h5, load_milan_files, load_pems_npz
from stcast.data.registry import dataset_names, load_dataset
from stcast.data.safe_pickle import restricted_load
from stcast.data.user_tables import load_adjacency_file, load_user_table
from stcast.errors import StcastError

T, N = 288, 20


@pytest.fixture(scope="module")
def slice_(los):
    return los.values[:T, :N, 0].copy(), [str(i) for i in los.node_ids[:N]], los.adjacency[:N, :N].copy()


def _edges_from(adj, ids=None):
    """A PEMS-style distance list (from,to,cost) derived from the real Los-loop kernel weights."""
    i, j = np.nonzero((adj > 0) & ~np.eye(len(adj), dtype=bool))
    cost = np.sqrt(-np.log(np.clip(adj[i, j], 1e-6, 0.999999))) * 1000
    names = np.asarray(ids) if ids is not None else np.arange(len(adj))
    return pd.DataFrame({"from": names[i], "to": names[j], "cost": cost})


def test_pems_npz_with_distance_graph(tmp_path, slice_):
    values, ids, adj = slice_
    np.savez(tmp_path / "PEMS04.npz", data=values[:, :, None].repeat(3, 2))  # (T, N, 3) as published
    _edges_from(adj).to_csv(tmp_path / "PEMS04.csv", index=False)
    d = load_pems_npz(tmp_path / "PEMS04.npz", "pems04", "2018-01-01", edges_csv=tmp_path / "PEMS04.csv")
    assert d.values.shape == (T, N, 3) and d.meta.channels == ("flow", "occupancy", "speed")
    assert np.array_equal(d.values[:, :, 0], values)
    src, dst, cost = read_edge_list(tmp_path / "PEMS04.csv")
    assert np.allclose(d.adjacency, gaussian_kernel_adjacency(src, dst, cost, N))
    k = int(np.argmin(cost))  # DCRNN by hand: exp(-(d / std)^2), below 0.1 -> 0
    assert d.adjacency[src[k], dst[k]] == pytest.approx(np.exp(-((cost[k] / cost.std()) ** 2)), rel=1e-5)
    w = np.exp(-((cost / cost.std()) ** 2))
    assert np.array_equal(d.adjacency[src, dst] > 0, w >= 0.1)


def test_pems03_maps_raw_ids(tmp_path, slice_):
    values, ids, adj = slice_
    np.savez(tmp_path / "PEMS03.npz", data=values[:, :, None])
    (tmp_path / "PEMS03.txt").write_text("\n".join(ids) + "\n")
    _edges_from(adj, ids).to_csv(tmp_path / "PEMS03.csv", index=False)
    d = load_pems_npz(tmp_path / "PEMS03.npz", "pems03", "2018-09-01", edges_csv=tmp_path / "PEMS03.csv",
                      id_txt=tmp_path / "PEMS03.txt", adjacency="binary")
    assert np.array_equal(d.adjacency > 0, (adj > 0) & ~np.eye(N, dtype=bool))
    (tmp_path / "PEMS03.txt").write_text("\n".join(ids[:-1]) + "\n")
    with pytest.raises(StcastError, match="19 sensors"):
        load_pems_npz(tmp_path / "PEMS03.npz", "pems03", "2018-09-01", edges_csv=tmp_path / "PEMS03.csv",
                      id_txt=tmp_path / "PEMS03.txt")


def test_corrupt_npz_is_named(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(StcastError, match="not a readable .npz"):
        load_pems_npz(tmp_path / "bad.npz", "pems04", "2018-01-01")
    np.savez(tmp_path / "nokey.npz", x=np.zeros((3, 2, 1)))
    with pytest.raises(StcastError, match="no key 'data'"):
        load_pems_npz(tmp_path / "nokey.npz", "pems04", "2018-01-01")


def _write_dcrnn(tmp_path, slice_, los, pkl_ids=None):
    values, ids, adj = slice_
    idx = pd.DatetimeIndex(los.timestamps[:T])
    pd.DataFrame(values, index=idx, columns=ids).to_hdf(tmp_path / "metr-la.h5", key="df")
    pkl_ids = ids if pkl_ids is None else pkl_ids
    with open(tmp_path / "adj_mx.pkl", "wb") as fh:  # protocol 2, as DCRNN's Python-2 pickles
        pickle.dump([pkl_ids, {s: i for i, s in enumerate(pkl_ids)}, adj.astype(np.float32)], fh, protocol=2)


def test_dcrnn_h5_and_pickle(tmp_path, slice_, los):
    _write_dcrnn(tmp_path, slice_, los)
    d = load_dcrnn_h5(tmp_path / "metr-la.h5", "metr-la", adj_pkl=tmp_path / "adj_mx.pkl")
    assert d.values.shape == (T, N, 1) and d.meta.step_minutes == 5
    assert np.array_equal(d.values[:, :, 0], slice_[0]) and np.allclose(d.adjacency, slice_[2])
    assert d.node_ids == slice_[1]


def test_dcrnn_ids_must_match(tmp_path, slice_, los):
    _write_dcrnn(tmp_path, slice_, los, pkl_ids=list(reversed(slice_[1])))
    with pytest.raises(StcastError, match="do not match"):
        load_dcrnn_h5(tmp_path / "metr-la.h5", "metr-la", adj_pkl=tmp_path / "adj_mx.pkl")


def test_real_dcrnn_pickle_loads_restricted(shared):
    ids, adj = load_dcrnn_adjacency(shared / "metr-la-graph" / "adj_mx.pkl")
    assert len(ids) == 207 and adj.shape == (207, 207)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/stcast_pwned",))


def test_pickle_with_forbidden_class_is_refused(tmp_path):
    path = tmp_path / "adj_mx.pkl"
    path.write_bytes(pickle.dumps([["a"], {"a": 0}, _Evil()], protocol=2))
    with pytest.raises(StcastError, match="forbidden class (posix|os|nt).system"):
        restricted_load(path)
    assert not os.path.exists("/tmp/stcast_pwned")
    (tmp_path / "trunc.pkl").write_bytes(pickle.dumps([1, 2, 3])[:-3])
    with pytest.raises(StcastError, match="not a readable pickle"):
        restricted_load(tmp_path / "trunc.pkl")


def test_milan_raw_files_are_summed_over_countries(tmp_path, shared):
    sample = pd.read_csv(shared / "milan-sample" / "sms-call-internet-mi-2013-11-01_internet_total.csv")
    sample = sample[sample.square_id.isin(sorted(sample.square_id.unique())[:5])]
    rows = []
    for country, share in ((39, 0.75), (33, 0.25)):  # split each real total over two countries
        part = sample.assign(country=country, sms_in=1.0, sms_out=np.nan, call_in=2.0, call_out=0.5,
                             internet=sample.internet_total * share)
        rows.append(part[["square_id", "time_interval", "country", "sms_in", "sms_out", "call_in", "call_out",
                          "internet"]])
    raw = pd.concat(rows).sample(frac=1.0, random_state=0)
    half = len(raw) // 2
    raw.iloc[:half].to_csv(tmp_path / "day-a.txt", sep="\t", header=False, index=False)
    raw.iloc[half:].to_csv(tmp_path / "day-b.txt", sep="\t", header=False, index=False)
    d = load_milan_files([tmp_path / "day-a.txt", tmp_path / "day-b.txt"])
    ref = load_dataset("milan-sample")
    keep = [ref.node_ids.index(s) for s in d.node_ids]
    assert d.values.shape[1:] == (5, 5) and d.meta.step_minutes == 10
    assert np.allclose(d.values[:, :, 4], ref.values[:, keep, 0], rtol=1e-5)
    assert np.allclose(d.values[:, :, 0][d.observed()[:, :, 0]], 2.0)  # sms-in summed over 2 countries
    assert not d.observed()[:, :, 1].any()  # sms-out never reported: missing, not zero


def test_every_shared_dataset_loads(shared):
    for name in dataset_names():
        info_ok = True
        try:
            d = load_dataset(name)
        except StcastError as e:
            info_ok = "download" in str(e) or "place the published file" in str(e)
            assert info_ok, f"{name}: {e}"
            continue
        assert d.values.ndim == 3 and d.num_steps > 10, name
        assert np.isfinite(d.values).all(), name


def test_unknown_dataset_suggests_a_name():
    with pytest.raises(StcastError, match="did you mean los-loop"):
        load_dataset("los-lop")


def test_user_wide_csv_with_a_gap(tmp_path, los):
    df = pd.DataFrame(los.values[:100, :4, 0].copy(), columns=["a", "b", "c", "d"])
    df.insert(0, "time", pd.DatetimeIndex(los.timestamps[:100]))
    df = df.drop(index=[40, 41])  # two missing steps
    df.to_csv(tmp_path / "own.csv", index=False)
    with pytest.warns(UserWarning, match="2 missing time steps"):
        d = load_user_table(tmp_path / "own.csv")
    assert d.values.shape == (100, 4, 1) and d.meta.step_minutes == 5
    assert not d.observed()[40:42].any() and d.observed()[42].all()
    assert np.allclose(d.values[42, :, 0], los.values[42, :4, 0])  # not shifted


def test_user_long_parquet_with_channels(tmp_path, los):
    times = pd.DatetimeIndex(los.timestamps[:10])
    rows = [(t, n, ch, float(los.values[i, k, 0]) * (2 if ch == "y" else 1))
            for i, t in enumerate(times) for k, n in enumerate(["s1", "s2", "s3"]) for ch in ("x", "y")]
    pd.DataFrame(rows, columns=["timestamp", "node", "channel", "value"]).to_parquet(tmp_path / "own.parquet")
    d = load_user_table(tmp_path / "own.parquet")
    assert d.values.shape == (10, 3, 2) and d.meta.channels == ("x", "y")
    assert np.allclose(d.values[:, :, 1], 2 * d.values[:, :, 0])


def test_user_table_errors(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(StcastError, match="empty"):
        load_user_table(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("time,a,b\n")
    with pytest.raises(StcastError, match="no rows"):
        load_user_table(tmp_path / "header.csv")
    (tmp_path / "dup.csv").write_text("time,a\n2020-01-01 00:00,1\n2020-01-01 00:00,2\n2020-01-01 00:05,3\n")
    with pytest.raises(StcastError, match="duplicate timestamps"):
        load_user_table(tmp_path / "dup.csv")
    (tmp_path / "off.csv").write_text("time,a\n2020-01-01 00:00,1\n2020-01-01 00:05,2\n2020-01-01 00:07,3\n"
                                      "2020-01-01 00:10,4\n")
    with pytest.raises(StcastError, match="off the"):
        load_user_table(tmp_path / "off.csv")
    with pytest.raises(StcastError, match="file not found"):
        load_user_table(tmp_path / "nope.csv")


def test_adjacency_file_of_wrong_size(tmp_path):
    np.save(tmp_path / "adj.npy", np.eye(5, dtype=np.float32) + np.eye(5, k=1, dtype=np.float32))  # a chain
    with pytest.raises(StcastError, match="5x5; expected 4x4"):
        load_adjacency_file(tmp_path / "adj.npy", 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_adjacency_file(tmp_path / "adj.npy", 5).shape == (5, 5)


@pytest.mark.parametrize("freq", ["30s", "90s"])
def test_sub_minute_or_fractional_steps_are_refused_by_name(tmp_path, freq):
    """Calendar embeddings count whole-minute steps a day: a 30 s or 90 s grid is a clear error, not a
    ZeroDivisionError or a step silently rounded to one minute."""
    import pandas as pd

    ts = pd.date_range("2024-01-01", periods=20, freq=freq)
    path = tmp_path / "fast.csv"
    pd.DataFrame({"timestamp": ts, "a": range(20), "b": range(20)}).to_csv(path, index=False)
    with pytest.raises(StcastError, match=r"fast.csv: the time step is .*whole-minute steps"):
        load_user_table(path)


def test_station_adjacency_is_grins_distance_kernel():
    import numpy as np

    from stcast.data.graphs import station_adjacency

    # three stations on a meridian: 0, ~11 km and ~111 km north
    ll = np.array([[40.0, 116.0], [40.1, 116.0], [41.0, 116.0]])
    a = station_adjacency(ll)
    d = np.array([[0, 11.12, 111.19], [11.12, 0, 100.08], [111.19, 100.08, 0]])
    want = np.exp(-np.square(d / d.std()))
    want[want < 0.1] = 0
    np.fill_diagonal(want, 0)
    np.testing.assert_allclose(a, want, atol=2e-3)
    assert a[0, 1] > 0 and a[0, 2] == 0 and np.allclose(a, a.T) and not np.diag(a).any()


def test_aqi36_carries_the_station_graph_and_refuses_a_bad_station_file(shared, tmp_path):
    from stcast.data.loaders import load_aqi36
    from stcast.data.registry import load_dataset

    d = load_dataset("aqi36")
    assert d.adjacency.shape == (36, 36) and (d.adjacency > 0).any()
    src = shared / "aqi36"
    bad = tmp_path / "latlng.txt"
    bad.write_text("sensor_id,latitude,longitude\n001001,40.0,116.0\n")
    with pytest.raises(StcastError, match="latlng.txt"):
        load_aqi36(src / "pm25_ground.txt", src / "pm25_missing.txt", bad)
