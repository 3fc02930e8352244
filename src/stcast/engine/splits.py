"""A dataset cut into train / validation / test windows under one protocol, with the scaler of its training part."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

import numpy as np

from stcast.data.core import SpatioTemporalData
from stcast.data.missing import GRIN_PROTOCOLS, aqi36_labels, aqi36_split, grin_eval_mask, make_missing
from stcast.data.scaler import StandardScaler
from stcast.data.windows import WindowSet, few_shot, split_starts
from stcast.errors import StcastError
from stcast.models.base import ProblemSpec
from stcast.task import Task


@dataclass
class Splits:
    train: WindowSet
    val: WindowSet
    test: WindowSet
    scaler: StandardScaler
    spec: ProblemSpec


def prepare_windows(data: SpatioTemporalData, task: str = "forecast", input_len: int = 12, horizon: int = 12,
                    split="7:1:2", missing: str = "point", missing_kw: dict | None = None,
                    few_shot_fraction: float | None = None, protocol: str | None = None,
                    quantiles=(), eval_stride: int = 1, context_len: int | None = None,
                    val_stride: int | None = None) -> Splits:
    """Windows for train/val/test. Imputation windows have length `input_len` and hide entries with the
    chosen pattern (seeded); protocol='aqi36' uses the GRIN split and scores the simulated failures (validation too).
    `eval_stride` k > 1 keeps every k-th validation and test window (training is untouched): a cheaper,
    still evenly spread evaluation for ablations compared within one method; the published protocol is k = 1.
    `val_stride` k (default: eval_stride) keeps every k-th validation window only; the test set is untouched. It
    makes early stopping affordable for models whose scoring is dear (issue 28: "validation may score every 4th
    window, test scores all"); the scored figures stay the protocol's.
    `context_len` C > input_len (forecasting): every window reads C steps of lookback ending where the protocol's
    `input_len` window ends, so the targets (and the scored set) are exactly the protocol's; steps before the
    series are padded as missing, never dropped. The model is built for C input steps."""
    task = Task.parse(task)
    if isinstance(eval_stride, bool) or not isinstance(eval_stride, int | np.integer) or eval_stride < 1:
        raise StcastError(f"eval_stride must be an integer >= 1 (1 = every validation/test window); got "
                          f"{eval_stride!r}")
    if val_stride is not None and (isinstance(val_stride, bool) or not isinstance(val_stride, int | np.integer)
                                   or val_stride < 1):
        raise StcastError(f"val_stride must be an integer >= 1 (1 = every validation window), or null; got "
                          f"{val_stride!r}")
    if quantiles:
        from stcast.nn.quantile import check_levels

        quantiles = check_levels(quantiles)
    checks = [("input_len", input_len)] + ([("horizon", horizon)] if task is not Task.IMPUTE else [])  # impute: H = L
    for name, v in checks:
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise StcastError(f"{name} must be an integer >= 1; got {v!r}")
    if context_len is not None:
        if isinstance(context_len, bool) or not isinstance(context_len, int | np.integer) or context_len < input_len:
            raise StcastError(f"context_len must be an integer >= input_len ({input_len}), or null; got "
                              f"{context_len!r}")
        if task.scored is Task.IMPUTE or protocol is not None:
            raise StcastError("context_len (a longer lookback) is for forecasting under a chronological split; "
                              f"this run is {task.value}{' with protocol ' + protocol if protocol else ''}")
    window_task = task.scored
    horizon_eff = 0 if window_task is Task.IMPUTE else horizon
    if protocol == "aqi36":
        if data.eval_mask is None:
            raise StcastError("protocol 'aqi36' needs the AQI-36 dataset (its simulated-failure mask)")
        starts = aqi36_split(data, input_len + horizon_eff)
        fit_steps = np.flatnonzero(aqi36_labels(data) == 0)  # the training months only (GRIN/CSDI)
    elif protocol in GRIN_PROTOCOLS:
        if window_task is not Task.IMPUTE:
            raise StcastError(f"protocol {protocol!r} is an imputation protocol; this run is {task.value}")
        if data.eval_mask is not None:
            raise StcastError(f"{data.meta.name} has its own evaluation mask; protocol {protocol!r} draws one "
                              "(use the dataset's own protocol, or a dataset without one)")
        data = dataclasses.replace(data, eval_mask=grin_eval_mask(
            data.observed(slice(None)), protocol, max(1, round(60 / data.meta.step_minutes))))
        starts = split_starts(data.num_steps, input_len, 0, split)
        starts["test"] = starts["test"][::input_len]  # each hidden entry scored once (non-overlapping windows)
        fit_steps = slice(0, int(starts["train"].max()) + input_len)
    elif protocol is None:
        starts = split_starts(data.num_steps, input_len, horizon_eff, split)
        fit_steps = slice(0, int(starts["train"].max()) + input_len + horizon_eff)
    else:
        raise StcastError(f"unknown protocol {protocol!r}; known: aqi36, {', '.join(GRIN_PROTOCOLS)}")
    if few_shot_fraction is not None:
        starts["train"] = few_shot(starts["train"], few_shot_fraction)
    starts["val"] = starts["val"][::eval_stride if val_stride is None else val_stride]
    starts["test"] = starts["test"][::eval_stride]
    read_len = input_len
    if context_len is not None and context_len > input_len:  # same targets, a longer lookback
        starts = {k: v - (context_len - input_len) for k, v in starts.items()}
        read_len = context_len
    scaler = StandardScaler().fit(data, steps=fit_steps)
    warn_unobserved_nodes(data, fit_steps)
    hide = make_missing(missing, **(missing_kw or {})) if task.hides_inputs else None
    sets = {k: WindowSet(data, v, read_len, horizon, scaler, window_task, hide=hide,
                         # validation scores the protocol's own hidden entries, as the test does (GRIN's
                         # reference validates on `eval_mask` for AQI-36 too): early stopping on random points
                         # would pick the epoch that fills scattered points best, not the simulated failures
                         protocol_eval=window_task is Task.IMPUTE and protocol is not None and k != "train",
                         withheld=protocol in GRIN_PROTOCOLS and k == "train", fit_steps=fit_steps)
            for k, v in starts.items()}
    spec = ProblemSpec(num_nodes=data.num_nodes, num_channels=data.num_channels, input_len=read_len,
                       horizon=input_len if window_task is Task.IMPUTE else horizon,
                       steps_per_day=data.meta.steps_per_day, task=task, quantiles=tuple(quantiles),
                       adjacency=data.adjacency)
    return Splits(sets["train"], sets["val"], sets["test"], scaler, spec)


def warn_unobserved_nodes(data: SpatioTemporalData, steps) -> None:
    """A node with no observation in the training steps is usable (it is scored where the truth is
    observed) but nothing can be learned about it: say so, naming the nodes."""
    if data.values.size > 5e8:  # a LargeST-size memmap: not scanned here
        return
    seen = np.asarray(data.observed(steps)).any(axis=(0, 2))
    if not seen.all():
        bad = np.flatnonzero(~seen)
        ids = [data.node_ids[i] if data.node_ids else str(i) for i in bad[:5]]
        warnings.warn(f"{data.meta.name}: {len(bad)} node(s) have no observed value in the training steps "
                      f"(e.g. {', '.join(map(str, ids))}); their forecasts fall back to what other nodes teach",
                      stacklevel=3)
