"""Random malformed tables thrown at the CSV/Parquet reader: a valid dataset or a StcastError, nothing else."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stcast.data.core import SpatioTemporalData
from stcast.data.user_tables import load_adjacency_file, load_user_table
from stcast.errors import StcastError

cells = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**12, 10**12),
                  st.text(max_size=6), st.sampled_from(["2012-03-01 00:00", "2012-03-01 00:05", "nan", "", "1e400",
                                                        "2012-13-45", "inf", "-0", "x"]))


def _time_column(kind: str, n: int, draw) -> list:
    base = pd.Timestamp("2012-03-01")
    if kind == "regular":
        return [str(base + pd.Timedelta(minutes=5 * i)) for i in range(n)]
    if kind == "shuffled":
        return [str(base + pd.Timedelta(minutes=5 * i)) for i in draw(st.permutations(list(range(n))))]
    if kind == "duplicates":
        return [str(base + pd.Timedelta(minutes=5 * (i // 2))) for i in range(n)]
    if kind == "gappy":
        return [str(base + pd.Timedelta(minutes=5 * i * draw(st.integers(1, 3)))) for i in range(n)]
    return draw(st.lists(cells, min_size=n, max_size=n))


@st.composite
def tables(draw):
    n_rows = draw(st.integers(0, 12))
    n_cols = draw(st.integers(1, 4))
    kind = draw(st.sampled_from(["regular", "shuffled", "duplicates", "gappy", "garbage"]))
    names = draw(st.lists(st.sampled_from(["timestamp", "node", "value", "channel", "a", "b", "", "1"]),
                          min_size=n_cols, max_size=n_cols))
    frame = {"timestamp": _time_column(kind, n_rows, draw)}
    for j, c in enumerate(names):
        frame[f"{c}{j}" if draw(st.booleans()) else c] = draw(st.lists(cells, min_size=n_rows, max_size=n_rows))
    return pd.DataFrame(frame)


def _load(path, layout):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_user_table(path, layout=layout)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(df=tables(), layout=st.sampled_from(["auto", "wide", "long"]), fmt=st.sampled_from(["csv", "parquet"]))
def test_random_tables_load_or_fail_clearly(tmp_path, df, layout, fmt):
    path = tmp_path / f"t.{fmt}"
    if fmt == "csv":
        df.to_csv(path, index=False)
    else:
        try:
            df.astype(str).to_parquet(path, index=False)
        except Exception:  # pyarrow cannot write this frame: nothing to read back
            return
    try:
        data = _load(path, layout)
    except StcastError as e:
        assert str(e)  # a message, never an empty error
        return
    assert isinstance(data, SpatioTemporalData)
    assert np.isfinite(data.values).all() and data.mask.shape == data.values.shape


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(cells, min_size=1, max_size=4), min_size=0, max_size=5), n=st.integers(1, 4))
def test_random_adjacency_csvs_load_or_fail_clearly(tmp_path, rows, n):
    path = tmp_path / "adj.csv"
    path.write_text("\n".join(",".join("" if c is None else str(c) for c in r) for r in rows))
    try:
        adj = load_adjacency_file(path, n)
    except StcastError as e:
        assert str(e)
        return
    assert adj.shape == (n, n) and np.isfinite(adj).all() and (adj >= 0).all()


def test_a_corrupt_parquet_file_is_a_clear_error(tmp_path):
    path = tmp_path / "t.parquet"
    path.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(StcastError, match="not a readable Parquet"):
        load_user_table(path)


@st.composite
def frames(draw):
    """Long (unique_id, ds, y) frames as API users build them: odd ids, times, values, duplicate index labels."""
    n = draw(st.integers(0, 40))
    ids = draw(st.lists(st.sampled_from(["s0", "s1", "s2", 3, None, ""]), min_size=n, max_size=n))
    kind = draw(st.sampled_from(["regular", "shuffled", "duplicates", "gappy", "garbage", "integers"]))
    ds = list(range(n)) if kind == "integers" else _time_column(kind, n, draw)
    y = draw(st.lists(cells, min_size=n, max_size=n))
    frame = pd.DataFrame({"unique_id": ids, "ds": ds, "y": y})
    if draw(st.booleans()):
        frame.index = [i % 3 for i in range(n)]  # duplicate index labels
    return frame


@settings(max_examples=80, deadline=None)
@given(df=frames(), step=st.sampled_from([None, 5]))
def test_random_frames_fit_or_fail_clearly(df, step):
    """The DataFrame API on malformed frames: a fitted Forecaster or a StcastError, nothing else."""
    from stcast import Forecaster

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fc = Forecaster("last-value", horizon=2, input_len=2, step_minutes=step).fit(df)
        except StcastError:
            return
    assert fc.model_ is not None


config_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True, allow_infinity=True),
              st.text(max_size=8), st.sampled_from(["stid", "ha", "los-loop", "long", "five", "7:1:2", "x.csv"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8)
config_keys = st.sampled_from(["models", "datasets", "task", "input_len", "horizon", "split", "few_shot", "steps",
                               "quantiles", "train", "model_kw", "model_train", "variants", "tables", "cluster",
                               "eval_stride", "name", "transfer_to", "plot_node", "missing", "trian", "epochs"])
train_keys = st.sampled_from(["epochs", "lr", "batch_size", "patience", "cut_epoch", "max_minutes", "precision",
                              "devices", "milestones", "loss", "optimizer", "seed", "epoch"])


@st.composite
def bench_configs(draw):
    raw = draw(st.dictionaries(config_keys, config_values, max_size=5))
    if draw(st.booleans()):  # a plausible train section with odd values
        raw["train"] = draw(st.dictionaries(train_keys, config_values, max_size=4))
    if draw(st.booleans()):
        raw["tables"] = {draw(st.sampled_from(["x.csv", "los-loop"])): draw(config_values)}
    return raw


@settings(max_examples=150, deadline=None)
@given(raw=bench_configs())
def test_random_benchmark_configs_are_valid_or_a_named_error(raw):
    """Benchmark YAML mappings with random keys, types and values: a BenchConfig whose every row builds its
    training settings, or a StcastError; never another exception."""
    from stcast.config import BenchConfig

    try:
        cfg = BenchConfig.from_dict(dict(raw), "random.yaml")
    except StcastError:
        return
    for m in cfg.models:
        cfg.train_config(m)


def test_step_numbers_past_the_timestamp_range_are_a_clear_error():
    """Found by the property test above: step 27,588,382 at 5 minutes lands after 2262 (pandas' last timestamp)."""
    from stcast import Forecaster

    df = pd.DataFrame({"unique_id": ["s0"] * 3, "ds": [27588382.0, 27588383.0, 27588384.0], "y": [1.0, 2.0, 3.0]})
    with pytest.raises(StcastError, match="step numbers from 27588382 to 27588384: at 5-minute steps .* 1677-2262"):
        Forecaster("last-value", horizon=1, input_len=1, step_minutes=5).fit(df)
