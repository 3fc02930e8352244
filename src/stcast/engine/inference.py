"""Deployment inference shared by the CLI and the DataFrame API: the next H steps after a window, and every
missing entry of a series filled. Batched windows, never a per-sample loop."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch

from stcast.data.batch import Batch
from stcast.data.core import SpatioTemporalData
from stcast.data.scaler import StandardScaler
from stcast.data.windows import inference_batch
from stcast.errors import StcastError
from stcast.models.base import STModel


@torch.no_grad()
def forecast_frame(model: STModel, scaler: StandardScaler, data: SpatioTemporalData, end: int | None = None,
                   ends: np.ndarray | None = None, keep_empty: bool = False) -> pd.DataFrame:
    """Long frame (timestamp, node, channel, step, forecast[, q<level>...]) of the H steps after the window
    ending at `end` (exclusive; default the end of the data). With `ends`, one forecast per window end (rolling
    origins), with a `cutoff` column: the last timestamp the model saw. Data that is never negative (speeds,
    counts, PM2.5) gets its forecasts and quantiles clipped at 0, said once in a warning.

    A sensor whose whole input window is missing has nothing to forecast from: a warning names it and its rows are
    NaN, unless `keep_empty` (then they keep the model's answer, marked by an `empty_input` column). Models that do
    not read the window (historical average, seasonal naive: `reads_input_window = False`) are exempt."""
    model.eval()
    model.attach(data, scaler)
    spec = model.spec
    floor = 0.0 if data.never_negative() else None
    rolling = ends is not None
    ends = np.asarray([data.num_steps if end is None else end] if ends is None else ends, dtype=np.int64)
    frames, empty_nodes = [], set()
    for e in ends:
        batch = inference_batch(data, spec.input_len, spec.horizon, scaler, end=int(e))
        pred = model(batch)
        empty = ~batch.x_mask[0].any(dim=(0, 2)).numpy() if model.reads_input_window else None  # (N,)
        point = scaler.inverse(pred.point)[0].numpy()  # (H, N, C)
        if floor is not None:
            point = np.maximum(point, floor)
        H, N, C = point.shape
        future = H - max(0, data.num_steps - int(e))
        times = (data.timestamps[e:e + H] if future <= 0 else
                 np.concatenate([data.timestamps[e:], data.future_timestamps(future)]))
        nodes = data.node_ids or [str(i) for i in range(N)]
        df = pd.DataFrame({"timestamp": np.repeat(times, N * C), "node": np.tile(np.repeat(nodes, C), H),
                           "channel": np.tile(list(data.meta.channels), H * N),
                           "step": np.repeat(np.arange(1, H + 1), N * C), "forecast": point.reshape(-1)})
        if pred.quantiles is not None and pred.levels is not None and not model.quantiles_untrained:
            q = scaler.inverse(pred.quantiles.movedim(-1, 0)).movedim(0, -1)[0].numpy().reshape(H * N * C, -1)
            if floor is not None:
                q = np.maximum(q, floor)
            for j, level in enumerate(pred.levels):
                df[f"q{level:g}"] = q[:, j]
        if empty is not None and empty.any():
            nodes_arr = np.asarray(nodes, dtype=object)
            empty_nodes.update(nodes_arr[empty].tolist())
            rows = np.tile(np.repeat(empty, C), H)  # (H * N * C,) in the frame's order
            if keep_empty:
                df["empty_input"] = rows
            else:
                df.loc[rows, ["forecast"] + [c for c in df.columns if c.startswith("q")]] = np.nan
        elif keep_empty:
            df["empty_input"] = False
        if rolling:
            df.insert(0, "cutoff", data.timestamps[int(e) - 1])
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    if empty_nodes:
        shown = ", ".join(map(str, sorted(empty_nodes)[:8])) + (f" (+{len(empty_nodes) - 8} more)"
                                                               if len(empty_nodes) > 8 else "")
        what = ("kept as the model's answer to an empty window, marked in column empty_input" if keep_empty
                else "left as NaN (keep them with --keep-empty / keep_empty=True)")
        warnings.warn(f"{len(empty_nodes)} of {data.num_nodes} sensors have no observed input in the window: {shown}; "
                      f"their forecasts are {what}", stacklevel=2)
    if floor is not None and len(out):
        warnings.warn(f"{data.meta.name} is never negative: forecasts and intervals are clipped at 0", stacklevel=2)
    return out


@torch.no_grad()
def impute_array(model: STModel, scaler: StandardScaler, data: SpatioTemporalData,
                 batch_size: int = 64, keep_empty: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(filled values (T, N, C), observed mask): every missing entry filled by the model, observed ones kept.
    Windows of the model's length tile the series (the tail too), in batches.

    A sensor (channel) with no observed value anywhere in the series has nothing of its own to be filled from: a
    statistical imputer would hand it a value from the other sensors (the scaler's mean) and call it imputed. As
    for `forecast_frame`'s empty windows, a warning names it and its values stay NaN, unless `keep_empty` (then
    they keep the model's answer, e.g. a graph model's estimate from its neighbours)."""
    model.eval()
    model.attach(data, scaler)
    L, T = model.spec.input_len, data.num_steps
    if T < L:
        raise StcastError(f"{data.meta.name} has {T} steps, fewer than the model's window of {L}")
    starts = np.unique(np.append(np.arange(0, T - L + 1, L), T - L))  # cover every step, the tail too
    filled = np.array(data.values[:], dtype=np.float32, copy=True)
    observed = data.observed()
    tod, dow = data.calendar()
    t = torch.from_numpy
    for i in range(0, len(starts), batch_size):
        s = starts[i:i + batch_size]
        idx = s[:, None] + np.arange(L)
        raw = t(np.asarray(data.values[idx], dtype=np.float32))
        mask = t(observed[idx])
        x = torch.where(mask, scaler.transform(raw), torch.zeros(()))
        b = Batch(x=x, x_mask=mask, y=raw, y_mask=mask, tod_x=t(tod[idx]), dow_x=t(dow[idx]), tod_y=t(tod[idx]),
                  dow_y=t(dow[idx]), start=t(s), node_ids=torch.arange(data.num_nodes), eval_mask=~mask)
        out = scaler.inverse(model(b).point).numpy()
        filled[idx] = np.where(observed[idx], filled[idx], out)
    never = ~observed.any(axis=0)  # (N, C): never observed
    if never.any():
        nodes = np.asarray(data.node_ids or [str(i) for i in range(data.num_nodes)], dtype=object)
        node_at, channel_at = np.nonzero(never)
        names = [str(n) if data.num_channels == 1 else f"{n}/{c}"
                 for n, c in zip(nodes[node_at], np.asarray(data.meta.channels)[channel_at])]
        shown = ", ".join(names[:8]) + (f" (+{len(names) - 8} more)" if len(names) > 8 else "")
        if not keep_empty:
            filled[:, never] = np.nan
        what = ("kept as the model's answer (nothing of their own grounds it)" if keep_empty
                else "left as NaN (keep the model's answer with --keep-empty / keep_empty=True)")
        warnings.warn(f"{len(names)} of {never.size} series of {data.meta.name} have no observed value anywhere: "
                      f"{shown}; their imputations are {what}", stacklevel=2)
    return filled, observed


def with_observed_as_given(filled: np.ndarray, observed: np.ndarray, data: SpatioTemporalData) -> np.ndarray:
    """The imputed series with every observed entry exactly as the user's table gave it: models work in float32,
    which rounds a reading such as 62.66666667; the table reader keeps the float64 values when it does
    (`extra["exact_values"]`), and they replace the observed entries here (float64 out). Else `filled` as is."""
    exact = data.extra.get("exact_values")
    if exact is None or exact.shape != filled.shape:
        return filled
    out = np.array(exact, dtype=np.float64, copy=True)
    # the imputed entries at float32's shortest digits (66.1, not 66.0999984741211): what the model computed
    out[~observed] = filled[~observed].astype(str).astype(np.float64)
    return out


def statistical_imputer(method: str, data: SpatioTemporalData, window: int) -> tuple[STModel, StandardScaler]:
    """A statistical imputer (interpolate, mean-impute, ha) fitted on the whole series in `window`-step tiles,
    with its scaler: `stcast impute` without a model file (nothing is hidden; every observed entry is used)."""
    from stcast.data.windows import WindowSet
    from stcast.models.base import ProblemSpec
    from stcast.models.registry import build_model
    from stcast.task import Task

    if window > data.num_steps:
        raise StcastError(f"--window {window} is longer than {data.meta.name}'s {data.num_steps} steps")
    scaler = StandardScaler().fit(data, data.num_steps)
    spec = ProblemSpec(data.num_nodes, data.num_channels, window, window, data.meta.steps_per_day, task=Task.IMPUTE)
    model = build_model(method, spec)
    model.fit_statistics(WindowSet(data, np.arange(0, data.num_steps - window + 1, window), window, 0, scaler,
                                   Task.IMPUTE, hide=lambda m, g: torch.zeros_like(m)))
    return model, scaler

