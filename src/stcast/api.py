"""The DataFrame API: `Forecaster` and `Imputer`, in the habits of neuralforecast and PyPOTS.

    from stcast import Forecaster
    fc = Forecaster("stid", horizon=12, input_len=12, train={"epochs": 20}).fit(df, adjacency=A)
    fc.predict()                      # long frame: unique_id, ds, stid
    fc.save("stid.pt"); Forecaster.load("stid.pt").predict(df_new)

Frames are long (`unique_id, ds, y`; names configurable) or wide (`ds` + one column per series). The same
loaders, validation and errors as the CLI (stcast.data.user_tables.frame_to_data); the model is trained by the
same engine (a chronological split, early stopping on validation), so `metrics_` are its test figures.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from stcast.data.core import SpatioTemporalData
from stcast.data.time_columns import time_index_as_column
from stcast.data.user_tables import frame_to_data
from stcast.errors import StcastError
from stcast.task import Task


class _FrameModel:
    def __init__(self, model: str, id_col: str, time_col: str, target_col: str, null_value: float | None,
                 step_minutes: int | None, model_kw: dict | None, train: dict | None, split):
        self.model, self.model_kw, self.train = model, dict(model_kw or {}), dict(train or {})
        self.id_col, self.time_col, self.target_col = id_col, time_col, target_col
        self.null_value, self.step_minutes, self.split = null_value, step_minutes, split
        self.model_ = self.scaler_ = self.data_ = None
        self.metrics_: dict = {}

    def _data(self, df: pd.DataFrame, adjacency=None, name: str = "frame", keep_exact: bool = False
              ) -> SpatioTemporalData:
        if not isinstance(df, pd.DataFrame):
            raise StcastError(f"expected a pandas DataFrame, got {type(df).__name__}")
        if isinstance(df.index, pd.DatetimeIndex | pd.PeriodIndex) and self.time_col not in df.columns:  # pandas' own
            df = time_index_as_column(df.rename_axis(self.time_col), self.time_col)
        elif isinstance(df.index, pd.MultiIndex) and self.time_col in df.index.names:  # (ds, unique_id) index
            df = time_index_as_column(df, None)
        if self.time_col not in df.columns:
            raise StcastError(f"the frame has no time column {self.time_col!r}; columns are {list(df.columns)[:10]} "
                              "(set time_col=...)")
        long = {self.id_col, self.target_col} <= set(df.columns)
        data = frame_to_data(df, name, layout="long" if long else "wide", time_col=self.time_col,
                             node_col=self.id_col, value_col=self.target_col, adjacency=adjacency,
                             null_value=self.null_value, step_minutes=self.step_minutes, source="the frame",
                             api=True, keep_exact=keep_exact)
        if self.model_ is not None:
            self._check_same_series(data)
        return data

    def _check_same_series(self, data: SpatioTemporalData) -> None:
        trained = self.data_.node_ids
        if list(data.node_ids) != list(trained):
            new = sorted(set(data.node_ids) ^ set(trained))[:3]
            raise StcastError(f"the frame's series differ from the ones the model was fitted on (e.g. {new}); "
                              "predict needs the same unique_ids")
        if data.meta.step_minutes != self.data_.meta.step_minutes:
            raise StcastError(f"the frame has {data.meta.step_minutes}-minute steps; the model was fitted on "
                              f"{self.data_.meta.step_minutes}-minute steps")

    def _train_config(self):
        from stcast.config import TrainConfig

        return TrainConfig.from_dict({"progress": False, **self.train}, "train")

    def _train(self, exp, data: SpatioTemporalData) -> None:
        """Run the experiment; keep the model, scaler, series, test metrics and how it was trained."""
        res = exp.run()
        self.model_, self.scaler_, self.data_ = exp.model, exp.splits.scaler, data
        fit = exp.splits.train.fit_steps  # the steps the weights and scaler were fitted on
        last = (fit.stop - 1) if isinstance(fit, slice) else int(np.max(fit))
        self.train_end_ = str(np.datetime_as_string(data.timestamps[last], unit="s"))
        self.metrics_ = {k: v for k, v in res.metrics.items() if not hasattr(v, "shape")}
        self.record_ = exp.protocol_record("frame")

    def _fitted(self):
        if self.model_ is None:
            raise StcastError(f"call fit() before using this {type(self).__name__}")

    def save(self, path) -> Path:
        """A model file (weights, settings, scaler, how it was trained), plus the frame settings."""
        from stcast.engine.checkpoint import save_model

        self._fitted()
        record = dict(self.record_, api={k: getattr(self, k) for k in ("id_col", "time_col", "target_col",
                                                                        "null_value", "step_minutes")},
                      history=_history(self.data_), train_end=self.train_end_)
        return save_model(path, self.model_, self.model_kw, self.scaler_, self.data_.meta.name,
                          self.task, protocol=record)

    @classmethod
    def load(cls, path):
        from stcast.engine.checkpoint import load_model

        model, scaler, info = load_model(path)
        api = info["protocol"].get("api")
        if api is None or info["task"] != cls.task:
            raise StcastError(f"{path} was not saved by {cls.__name__}.save() (task {info['task']})")
        obj = cls.__new__(cls)
        _FrameModel.__init__(obj, info["model"], api["id_col"], api["time_col"], api["target_col"],
                             api["null_value"], api["step_minutes"], info["hparams"], {}, info["protocol"]["split"])
        obj.model_, obj.scaler_, obj.record_ = model, scaler, info["protocol"]
        obj.train_end_ = info["protocol"].get("train_end")  # None in files saved before it was recorded
        obj.data_ = _from_history(info["protocol"]["history"], info["dataset"], api)
        obj.horizon, obj.input_len = model.spec.horizon, model.spec.input_len
        obj.quantiles = tuple(model.spec.quantiles)
        return obj


class Forecaster(_FrameModel):
    """Fit a registered model on a frame and forecast the steps after it (long output, one column per model)."""

    task = Task.FORECAST

    def __init__(self, model: str = "stid", horizon: int = 12, input_len: int = 12, split="7:1:2",
                 model_kw: dict | None = None, train: dict | None = None, id_col: str = "unique_id",
                 time_col: str = "ds", target_col: str = "y", null_value: float | None = None,
                 step_minutes: int | None = None, quantiles=()):
        super().__init__(model, id_col, time_col, target_col, null_value, step_minutes, model_kw, train, split)
        self.horizon, self.input_len, self.quantiles = horizon, input_len, tuple(quantiles)

    def fit(self, df: pd.DataFrame, adjacency=None, warm_start: bool = False) -> Forecaster:
        """Train on `df`. `warm_start=True` fine-tunes the fitted (or loaded) model on `df` instead of starting
        from scratch: the same series, its weights and scaler as the starting point (new readings arrived)."""
        from stcast.engine.experiment import Experiment

        if warm_start:
            self._fitted()
        data = self._data(df, adjacency)
        warm = dict(init_state=self.model_.state_dict(), scaler=self.scaler_) if warm_start else {}
        self._train(Experiment(self.model, data, task=Task.FORECAST, input_len=self.input_len, horizon=self.horizon,
                               split=self.split, model_kw=self.model_kw, train=self._train_config(),
                               quantiles=self.quantiles, **warm), data)
        return self

    def predict(self, df: pd.DataFrame | None = None, keep_empty: bool = False) -> pd.DataFrame:
        """The `horizon` steps after the end of `df` (default: the fitted frame): unique_id, ds, <model>
        [, <model>-q<level> for models that predict quantiles]. A series with no observed value in its input
        window gets NaN (with a warning naming it), or with `keep_empty` the model's answer and an `empty_input`
        column."""
        self._fitted()
        data = self.data_ if df is None else self._data(df)
        return self._long(_forecast(self, data, None, keep_empty))

    def cross_validation(self, df: pd.DataFrame, n_windows: int = 3, step_size: int | None = None,
                         allow_training_overlap: bool = False) -> pd.DataFrame:
        """Rolling origins over the end of `df`: `n_windows` cutoffs `step_size` steps apart (default the
        horizon), each forecasting the next `horizon` steps with the fitted model (no refit); the frame has
        unique_id, ds, cutoff, y and the model's column. Origins whose targets lie inside the steps the model was
        fitted on would score training data: they are an error naming how many overlap, unless
        `allow_training_overlap=True` (then a warning says so)."""
        self._fitted()
        if n_windows < 1 or (step_size is not None and step_size < 1):
            raise StcastError(f"n_windows and step_size must be >= 1; got {n_windows}, {step_size}")
        data = self._data(df)
        step = step_size or self.horizon
        last = data.num_steps - self.horizon
        ends = last - step * np.arange(n_windows)[::-1]
        if ends[0] < self.input_len:
            raise StcastError(f"{n_windows} windows {step} steps apart need more than the frame's {data.num_steps} "
                              "steps")
        self._check_origins(data, ends, allow_training_overlap)
        out = self._long(_forecast(self, data, ends))
        truth = self._long_values(data)
        return out.merge(truth, on=[self.id_col, self.time_col], how="left")

    def _check_origins(self, data: SpatioTemporalData, ends: np.ndarray, allow: bool) -> None:
        end = getattr(self, "train_end_", None)
        if end is None:
            return
        first_target = data.timestamps[ends].astype("datetime64[s]")
        inside = int((first_target <= np.datetime64(end)).sum())
        if not inside:
            return
        msg = (f"{inside} of {len(ends)} cross-validation origins forecast steps inside the part the model was fitted "
               f"on (up to {end}): those scores are on training data")
        if not allow:
            raise StcastError(f"{msg}; use fewer windows (n_windows), a smaller step_size, a frame that continues "
                              "after the fitted one, or allow_training_overlap=True to score them anyway")
        warnings.warn(msg, stacklevel=3)

    def _long(self, fc: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame({self.id_col: fc["node"], self.time_col: _as_given(fc["timestamp"], self.data_)})
        if "cutoff" in fc.columns:
            out["cutoff"] = fc["cutoff"]
        out[self.model] = fc["forecast"]
        for c in fc.columns:
            if c.startswith("q"):  # quantile levels, e.g. stid-q0.1
                out[f"{self.model}-{c}"] = fc[c]
        if "empty_input" in fc.columns:  # keep_empty=True: the rows forecast from an all-missing window
            out["empty_input"] = fc["empty_input"].to_numpy()
        return out

    def _long_values(self, data: SpatioTemporalData) -> pd.DataFrame:
        values = np.where(data.mask[:, :, 0], data.values[:, :, 0], np.nan)
        T, N = values.shape
        times = _as_given(pd.Series(np.repeat(data.timestamps, N)), data)
        return pd.DataFrame({self.id_col: np.tile(data.node_ids, T), self.time_col: times,
                             self.target_col: values.reshape(-1)})


class Imputer(_FrameModel):
    """Fill the NaNs of a frame: a statistical method (interpolate, mean-impute, ha) or a trained imputation
    model (brits, ust-sllm); `transform` adds a boolean `<y>_imputed` column."""

    task = Task.IMPUTE

    def __init__(self, model: str = "interpolate", window: int = 24, model_kw: dict | None = None,
                 train: dict | None = None, missing_kw: dict | None = None, id_col: str = "unique_id",
                 time_col: str = "ds", target_col: str = "y", null_value: float | None = None,
                 step_minutes: int | None = None, split="7:1:2"):
        super().__init__(model, id_col, time_col, target_col, null_value, step_minutes, model_kw, train, split)
        self.input_len, self.missing_kw = window, dict(missing_kw or {"r_min": 0.1, "r_max": 0.3})

    def fit(self, df: pd.DataFrame, adjacency=None) -> Imputer:
        from stcast.engine.experiment import Experiment

        data = self._data(df, adjacency, keep_exact=True)
        self._train(Experiment(self.model, data, task=Task.IMPUTE, input_len=self.input_len, horizon=0,
                               split=self.split, missing_kw=self.missing_kw, model_kw=self.model_kw,
                               train=self._train_config()), data)
        return self

    def transform(self, df: pd.DataFrame | None = None, keep_empty: bool = False) -> pd.DataFrame:
        """The frame with its NaNs filled; a series never observed stays NaN (with a warning), or with
        `keep_empty` keeps the model's answer."""
        from stcast.engine.inference import impute_array, with_observed_as_given

        self._fitted()
        data = self.data_ if df is None else self._data(df, keep_exact=True)
        filled, observed = impute_array(self.model_, self.scaler_, data, keep_empty=keep_empty)
        filled = with_observed_as_given(filled, observed, data)
        T, N = filled.shape[:2]
        times = _as_given(pd.Series(np.repeat(data.timestamps, N)), data)
        return pd.DataFrame({self.id_col: np.tile(data.node_ids, T), self.time_col: times,
                             self.target_col: filled[:, :, 0].reshape(-1),
                             f"{self.target_col}_imputed": ~observed[:, :, 0].reshape(-1)})

    def fit_transform(self, df: pd.DataFrame, adjacency=None) -> pd.DataFrame:
        return self.fit(df, adjacency).transform(df)


def _as_given(times: pd.Series, data: SpatioTemporalData | None) -> pd.Series:
    """Times of a frame whose timestamps had UTC offsets are read as UTC: handed back as UTC, with the offset, so
    they compare (and merge) with the frame's own."""
    utc = data is not None and (data.extra.get("source_columns") or {}).get("utc")
    return times.dt.tz_localize("UTC") if utc else times


def _forecast(fc: Forecaster, data: SpatioTemporalData, ends, keep_empty: bool = False) -> pd.DataFrame:
    from stcast.engine.inference import forecast_frame

    return forecast_frame(fc.model_, fc.scaler_, data, ends=ends, keep_empty=keep_empty)


def _history(data: SpatioTemporalData) -> dict:
    """The last window of the fitted series, so a loaded Forecaster predicts without the frame."""
    keep = min(data.num_steps, 2 * 288)
    return {"values": np.where(data.mask[-keep:], data.values[-keep:], np.nan)[:, :, 0].tolist(),
            "start": str(data.timestamps[-keep]), "node_ids": list(data.node_ids),
            "step_minutes": data.meta.step_minutes,
            "utc": bool((data.extra.get("source_columns") or {}).get("utc"))}


def _from_history(h: dict, name: str, api: dict) -> SpatioTemporalData:
    values = np.asarray(h["values"], dtype=np.float32)
    ts = pd.date_range(h["start"], periods=len(values), freq=f"{h['step_minutes']}min",
                       tz="UTC" if h.get("utc") else None)  # a frame with UTC offsets stays one
    frame = pd.DataFrame(values, columns=h["node_ids"])
    frame.insert(0, api["time_col"], ts)
    return frame_to_data(frame, name, layout="wide", time_col=api["time_col"], null_value=api["null_value"],
                         step_minutes=h["step_minutes"], source="the saved history")
