"""Class 1: no data file a user hands us can run code (h5, npy/npz, pickles, model files)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from stcast.data.loaders import load_dcrnn_h5, load_metr_la_npz
from stcast.data.registry import load_dataset
from stcast.data.safe_pickle import restricted_load
from stcast.data.user_tables import load_adjacency_file
from stcast.engine.checkpoint import load_model
from stcast.errors import StcastError

MARKER = "stcast-pwned"


class _Payload:
    """Unpickling this object appends to a file: proof that code ran."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (_touch, (self.target,))


def _touch(path):
    with open(path, "a") as fh:
        fh.write(MARKER)
    return 0


@pytest.fixture()
def metr_frame(shared):
    z = np.load(shared / "metr-la" / "metr-la.npz")
    ids = [str(s) for s in z["sensor_ids"][:6]]
    return pd.DataFrame(z["speed"][:300, :6], index=pd.DatetimeIndex(z["timestamps"][:300]), columns=ids)


def test_the_published_fixed_layout_reads_like_pandas(tmp_path, metr_frame):
    path = tmp_path / "metr-la.h5"
    metr_frame.to_hdf(path, key="df")
    data = load_dcrnn_h5(path, "metr-la")
    assert data.node_ids == list(metr_frame.columns)
    assert data.meta.step_minutes == 5 and data.num_steps == 300
    observed = metr_frame.to_numpy() != 0
    assert np.array_equal(data.mask[:, :, 0], observed)
    assert np.allclose(data.values[:, :, 0][observed], metr_frame.to_numpy()[observed])
    assert np.array_equal(data.timestamps, metr_frame.index.to_numpy("datetime64[ns]"))


def test_an_h5_with_an_object_column_is_refused_and_runs_nothing(tmp_path, metr_frame):
    proof = tmp_path / "proof.txt"
    evil = metr_frame.copy()
    evil["x"] = [_Payload(proof)] * len(evil)
    path = tmp_path / "evil.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        evil.to_hdf(path, key="df")
    assert not proof.exists()
    pd.read_hdf(path)  # the attack is real: pandas/PyTables unpickles the column and runs the payload
    assert proof.read_text() == MARKER
    proof.unlink()
    with pytest.raises(StcastError, match=r"columns \['x'\] hold objects .* never unpickles"):
        load_dcrnn_h5(path, "metr-la")
    assert not proof.exists()


def test_object_labels_and_the_table_format_are_refused(tmp_path, metr_frame):
    labels = metr_frame.copy()
    labels.columns = [(c, 1) for c in labels.columns]  # tuples: stored pickled
    path = tmp_path / "labels.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels.to_hdf(path, key="df")
    with pytest.raises(StcastError, match="does not unpickle|not plain strings"):
        load_dcrnn_h5(path, "metr-la")
    table = tmp_path / "table.h5"
    metr_frame.to_hdf(table, key="df", format="table")
    with pytest.raises(StcastError, match="'table' format"):
        load_dcrnn_h5(table, "metr-la")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(StcastError, match="not a readable HDF5"):
        load_dcrnn_h5(junk, "metr-la")


def test_metr_la_loads_the_shared_full_copy_without_download():
    data = load_dataset("metr-la")
    assert (data.num_steps, data.num_nodes) == (34272, 207)
    assert data.adjacency is not None and data.meta.null_value == 0.0
    assert 0.91 < data.mask.mean() < 0.93  # 8.11 % zeros = missing


def test_npy_and_npz_object_arrays_are_refused(tmp_path):
    proof = tmp_path / "proof.txt"
    arr = np.empty((2, 2), dtype=object)
    arr[0, 0] = _Payload(proof)
    np.save(tmp_path / "adj.npy", arr, allow_pickle=True)
    with pytest.raises(StcastError, match="not a readable numeric matrix"):
        load_adjacency_file(tmp_path / "adj.npy", 2)
    np.savez(tmp_path / "m.npz", speed=arr, sensor_ids=np.array(["a", "b"]), timestamps=np.arange(2))
    with pytest.raises(StcastError):
        load_metr_la_npz(tmp_path / "m.npz")
    assert not proof.exists()


def test_a_pickle_adjacency_and_a_model_file_with_a_payload_run_nothing(tmp_path):
    import pickle

    proof = tmp_path / "proof.txt"
    pkl = tmp_path / "adj_mx.pkl"
    pkl.write_bytes(pickle.dumps([["a"], {"a": 0}, _Payload(proof)], protocol=2))
    with pytest.raises(StcastError, match="forbidden class"):
        restricted_load(pkl)
    model_file = tmp_path / "m.pt"
    torch.save({"format": "stcast-model-1", "model": _Payload(proof)}, model_file)
    with pytest.raises(StcastError, match="not a readable stcast model file"):
        load_model(model_file)
    assert not proof.exists()
