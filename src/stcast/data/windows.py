"""Windows addressed by start index and chronological splits (the scaler: data/scaler.py; a batch:
data/batch.py, both re-exported here).

Nothing here materialises the windows: a batch gathers `values[start + arange(L)]` for its starts, so a
memmapped (T, N, C) array of any size serves batches in memory proportional to the batch.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from stcast.data.batch import Batch
from stcast.data.core import SpatioTemporalData
from stcast.data.scaler import StandardScaler
from stcast.errors import StcastError
from stcast.task import Task

__all__ = ["Batch", "ReplayWindows", "StandardScaler", "WindowSet", "few_shot", "inference_batch", "parse_split",
           "shard", "split_starts", "starts_within"]

STANDARD_SPLITS = {"7:1:2": (0.7, 0.1, 0.2), "6:2:2": (0.6, 0.2, 0.2), "8:1:1": (0.8, 0.1, 0.1),
                   "8:2": (0.8, 0.0, 0.2)}


def shard(chunk: np.ndarray, rank: int, world: int) -> np.ndarray:
    """This rank's share of a global batch: every `world`-th window from `rank`. The shares of all ranks are
    disjoint and together are the global batch, so N processes at batch B/N step on exactly the batches one
    process at batch B steps on."""
    return chunk[rank::world] if world > 1 else chunk


def parse_split(split) -> tuple[float, float, float]:
    """'7:1:2', '6:2:2', '8:2', '0.7:0.1:0.2' or a tuple. The parts are fractions that sum to 1, or tenths
    / percentages that sum to 10 / 100 (the DCRNN '7:1:2' notation). Any other sum is an error, never
    renormalised: 0.7:0.1:0.1 would silently drop a tenth of the data."""
    text = split
    if isinstance(split, str):
        if split in STANDARD_SPLITS:
            split = STANDARD_SPLITS[split]
        else:
            try:
                split = tuple(float(s) for s in split.split(":"))
            except ValueError as e:
                raise StcastError(f"split {split!r} is not like '7:1:2' (train:val:test)") from e
    try:
        split = tuple(float(s) for s in split)
    except (TypeError, ValueError) as e:
        raise StcastError(f"split {text!r} is not like '7:1:2' (train:val:test)") from e
    if len(split) == 2:
        split = (split[0], 0.0, split[1])
    if len(split) != 3 or not all(np.isfinite(split)) or min(split) < 0:
        raise StcastError(f"split {text!r} must be 2 or 3 non-negative parts (train:val:test)")
    total = sum(split)
    for whole in (1.0, 10.0, 100.0):
        if abs(total - whole) < 1e-6 * whole:
            return tuple(s / whole for s in split)
    raise StcastError(f"split {text!r} sums to {total:g}; its parts must sum to 1 (fractions), 10 (7:1:2) or "
                      "100 (percent)")


def split_starts(num_steps: int, input_len: int, horizon: int, split="7:1:2") -> dict[str, np.ndarray]:
    """Chronological split of all stride-1 windows (the BasicTS/DCRNN convention): with T steps there
    are T - L - H + 1 windows; the first r_train of them train, the next r_val validate, the rest test."""
    if input_len < 1 or horizon < 0:
        raise StcastError(f"input_len must be >= 1 and horizon >= 0; got {input_len}, {horizon}")
    n = num_steps - input_len - horizon + 1
    if n < 3:
        raise StcastError(f"input_len {input_len} + horizon {horizon} needs more than the series' "
                          f"{num_steps} steps (at least {input_len + horizon + 2})")
    r_train, r_val, _ = parse_split(split)
    n_train, n_val = int(round(n * r_train, 6)), int(round(n * r_val, 6))
    if n_train < 1:
        raise StcastError(f"the training split has no windows ({n} windows in all)")
    starts = np.arange(n)
    return {"train": starts[:n_train], "val": starts[n_train:n_train + n_val], "test": starts[n_train + n_val:]}


def few_shot(starts: np.ndarray, fraction: float) -> np.ndarray:
    """The last `fraction` of the training windows (the few-shot protocol)."""
    if not 0 < fraction <= 1:
        raise StcastError(f"few-shot fraction must be in (0, 1]; got {fraction}")
    k = max(1, int(round(len(starts) * fraction)))
    return starts[-k:]


def starts_within(labels: np.ndarray, label, window: int, stride: int = 1) -> np.ndarray:
    """Start indices of windows whose every step has `labels == label` (vectorised run test)."""
    inside = np.concatenate([[0], np.cumsum(labels == label)])
    starts = np.arange(0, len(labels) - window + 1)
    ok = starts[(inside[starts + window] - inside[starts]) == window]
    if stride > 1 and len(ok):
        keep, last = [], -stride
        for s in ok:  # per window, not per sample: a few thousand at most, only for strided test sets
            if s >= last + stride:
                keep.append(s)
                last = s
        ok = np.asarray(keep, dtype=np.int64)
    return ok


class WindowSet:
    """The windows of one split: a dataset, the start indices, the lengths and the scaler.

    `hide` (imputation) is a callable (mask (B, L, N, C) bool, generator) -> bool tensor of entries to
    hide from the input; `protocol_eval` hides and scores the dataset's own `eval_mask` instead; `withheld`
    treats the `eval_mask` entries as never observed (training windows of the GRIN protocols).
    """

    def __init__(self, data: SpatioTemporalData, starts: np.ndarray, input_len: int, horizon: int,
                 scaler: StandardScaler, task: Task | str = Task.FORECAST, hide=None, protocol_eval: bool = False,
                 fit_steps: slice | np.ndarray | None = None, withheld: bool = False):
        task = Task.parse(task)
        if task is Task.MULTITASK:  # multi-task windows are forecast windows that also hide inputs (`hide`)
            raise StcastError("windows are cut for 'forecast' or 'impute'; multi-task uses forecast windows with hide")
        if len(starts) and starts.max() + input_len + (horizon if task is Task.FORECAST else 0) > data.num_steps:
            raise StcastError(f"window starting at {starts.max()} runs past the series' {data.num_steps} steps")
        if protocol_eval and data.eval_mask is None:
            raise StcastError(f"{data.meta.name} has no protocol evaluation mask")
        self.data, self.starts, self.scaler = data, np.asarray(starts, dtype=np.int64), scaler
        self.input_len, self.horizon, self.task = input_len, horizon, task
        self.hide, self.protocol_eval = hide, protocol_eval
        if withheld and data.eval_mask is None:
            raise StcastError(f"{data.meta.name} has no protocol evaluation mask to withhold")
        # the protocol's scored entries are treated as never observed (GRIN's training windows): neither an input
        # nor a target of training, whatever `hide` draws
        self.withheld = withheld
        self.show_unhidden = True  # multi-task batches carry the unhidden input too (Batch.x_shown)
        if fit_steps is None:  # the prefix of the series that the windows cover (chronological splits)
            end = int(self.starts.max()) + input_len + (horizon if task is Task.FORECAST else 0) if len(starts) else 0
            fit_steps = slice(0, end)
        self.fit_steps = fit_steps  # the steps whose values statistics may be fitted on (scaler, HA, ...)
        # a window may start before the series (a lookback longer than the protocol's, `context_len`): those steps
        # are padded as missing, never dropped, and their calendar runs on backwards on the dataset's grid
        self.pad = max(0, -int(self.starts.min())) if len(self.starts) else 0
        self.tod, self.dow = _calendar_with_past(data, self.pad)
        self.node_ids = torch.arange(data.num_nodes)

    def __len__(self) -> int:
        return len(self.starts)

    def without_hiding(self) -> WindowSet:
        """The same forecast windows with every observed input shown (a multi-task model's forecasting test)."""
        if self.task is not Task.FORECAST:
            raise StcastError("without_hiding() is for forecast windows; imputation windows always hide entries")
        out = copy.copy(self)
        out.hide = None
        return out

    def hiding_from_both_paths(self) -> WindowSet:
        """The same multi-task windows without the shown copy of the input (`Batch.x_shown`): a model's forecast
        path then reads the hidden input too (the `hidden_mae` column: the forecast from hidden inputs)."""
        out = copy.copy(self)
        out.show_unhidden = False
        return out

    def batches(self, batch_size: int, shuffle: bool = False, seed: int = 0, rank: int = 0, world: int = 1,
                even: bool = False):
        """Batches of `batch_size` windows (the global batch); with `world` > 1, this rank's share of each
        (`shard`). `even` (training): a last global batch smaller than `world` is dropped on every
        rank, so that all ranks take the same number of steps; otherwise ranks with nothing left stop early."""
        order = self.starts
        if shuffle:
            order = order[np.random.default_rng(seed).permutation(len(order))]
        gen = torch.Generator().manual_seed(seed)
        for i in range(0, len(order), batch_size):
            chunk = order[i:i + batch_size]
            if world > 1:
                if even and len(chunk) < world:
                    return
                chunk = shard(chunk, rank, world)
                if not len(chunk):
                    return
            yield self.gather(chunk, gen)

    def gather(self, starts: np.ndarray, gen: torch.Generator | None = None) -> Batch:
        L = self.input_len
        idx_x = starts[:, None] + np.arange(L)  # (B, L)
        before = idx_x < 0 if self.pad else None  # steps before the series (a longer lookback): padded as missing
        if before is not None:
            idx_x = np.maximum(idx_x, 0)
        raw_x = torch.from_numpy(np.asarray(self.data.values[idx_x], dtype=np.float32))  # (B, L, N, C)
        mask_x = torch.from_numpy(np.asarray(self.data.observed(idx_x)))
        if self.withheld:
            mask_x = mask_x & ~torch.from_numpy(np.asarray(self.data.eval_mask[idx_x]))
            raw_x = torch.where(mask_x, raw_x, torch.zeros(()))
        if before is not None:
            raw_x[torch.from_numpy(before)] = 0.0
            mask_x = mask_x & torch.from_numpy(~before)[:, :, None, None]
        cal_x = starts[:, None] + np.arange(L) + self.pad  # the calendar of padded steps too
        scaled = self.scaler.transform(raw_x)
        if self.task is Task.FORECAST:
            idx_y = starts[:, None] + L + np.arange(self.horizon)  # (B, H)
            y = torch.from_numpy(np.asarray(self.data.values[idx_y], dtype=np.float32))
            y_mask = torch.from_numpy(np.asarray(self.data.observed(idx_y)))
            eval_mask = x_target = x_shown = shown_mask = None
            if self.hide is not None:  # multi-task: also hide input entries and score their recovery
                hidden = self.hide(mask_x, gen)
                eval_mask, x_target = hidden & mask_x, raw_x
                if self.show_unhidden:
                    x_shown, shown_mask = torch.where(mask_x, scaled, torch.zeros(())), mask_x
                mask_x = mask_x & ~hidden
        else:
            idx_y, y, y_mask, x_target, x_shown, shown_mask = idx_x, raw_x, mask_x, None, None, None
            if self.protocol_eval:
                hidden = torch.from_numpy(np.asarray(self.data.eval_mask[idx_x]))
            elif self.hide is not None:
                hidden = self.hide(mask_x, gen)
            else:
                raise StcastError("imputation windows need a missingness pattern (hide=...) or the protocol mask")
            eval_mask = hidden & mask_x
            mask_x = mask_x & ~hidden
        x = torch.where(mask_x, scaled, torch.zeros(()))
        t = torch.from_numpy
        cal_y = cal_x if self.task is not Task.FORECAST else idx_y + self.pad
        return Batch(x=x, x_mask=mask_x, y=y, y_mask=y_mask, tod_x=t(self.tod[cal_x]), dow_x=t(self.dow[cal_x]),
                     tod_y=t(self.tod[cal_y]), dow_y=t(self.dow[cal_y]), start=t(starts.copy()),
                     node_ids=self.node_ids, eval_mask=eval_mask, x_target=x_target, x_shown=x_shown,
                     x_shown_mask=shown_mask)


def _calendar_with_past(data: SpatioTemporalData, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """The time-of-day and day-of-week per step, with `pad` steps before the first one prepended (index + pad)."""
    tod, dow = data.calendar()
    if pad:
        from stcast.data.core import calendar_of

        first = data.timestamps[0].astype("datetime64[m]")
        past = first - np.arange(pad, 0, -1) * np.timedelta64(data.meta.step_minutes, "m")
        ptod, pdow = calendar_of(past, data.meta)
        tod, dow = np.concatenate([ptod, tod]), np.concatenate([pdow, dow])
    return tod, dow


def inference_batch(data: SpatioTemporalData, input_len: int, horizon: int, scaler: StandardScaler,
                    end: int | None = None, task: Task | str = Task.FORECAST) -> Batch:
    """One window ending at step `end` (exclusive; default: the end of the series) for deployment.

    Forecasting: the targets lie beyond the data, so y is zeros with y_mask False and the calendar of
    the future steps comes from the extrapolated timestamps. Imputation: the window's own missing
    entries are the ones to fill (eval_mask = not observed).
    """
    end = data.num_steps if end is None else end
    if not input_len <= end <= data.num_steps:
        raise StcastError(f"a window of {input_len} steps ending at {end} does not fit the series' "
                          f"{data.num_steps} steps")
    idx_x = np.arange(end - input_len, end)[None]
    raw = torch.from_numpy(np.asarray(data.values[idx_x], dtype=np.float32))
    mask = torch.from_numpy(np.asarray(data.observed(idx_x)))
    tod, dow = data.calendar()
    if Task.parse(task) is Task.FORECAST:
        from stcast.data.core import calendar_of

        if end + horizon <= data.num_steps:
            tod_y, dow_y = tod[end:end + horizon][None], dow[end:end + horizon][None]
        else:
            tod_y, dow_y = (a[None] for a in calendar_of(
                np.concatenate([data.timestamps[end:], data.future_timestamps(horizon - (data.num_steps - end))]),
                data.meta))
        shape = (1, horizon, data.num_nodes, data.num_channels)
        y, y_mask, eval_mask = torch.zeros(shape), torch.zeros(shape, dtype=torch.bool), None
    else:
        tod_y, dow_y, y, y_mask, eval_mask = tod[idx_x], dow[idx_x], raw, mask, ~mask
    x = torch.where(mask, scaler.transform(raw), torch.zeros(()))
    t = torch.from_numpy
    return Batch(x=x, x_mask=mask, y=y, y_mask=y_mask, tod_x=t(tod[idx_x]), dow_x=t(dow[idx_x]),
                 tod_y=t(np.ascontiguousarray(tod_y)), dow_y=t(np.ascontiguousarray(dow_y)),
                 start=torch.tensor([end - input_len]), node_ids=torch.arange(data.num_nodes),
                 eval_mask=eval_mask)


class ReplayWindows:
    """Continual Memory Replay (FactoST-v2 eq. 11): the first floor(s K) training windows are the memory
    buffer M, the rest the current stream C; every batch of size b takes floor(r b) windows from M (shuffled)
    in place of as many from C. An epoch is one pass over C. Everything else reads through to the WindowSet."""

    def __init__(self, windows: WindowSet, memory_fraction: float = 0.2, replace_ratio: float = 0.3):
        if not 0 < memory_fraction < 1 or not 0 <= replace_ratio < 1:
            raise StcastError(f"replay needs 0 < memory_fraction < 1 and 0 <= replace_ratio < 1; got "
                              f"{memory_fraction}, {replace_ratio}")
        k = int(np.floor(memory_fraction * len(windows)))
        if k < 1 or k >= len(windows):
            raise StcastError(f"memory fraction {memory_fraction} of {len(windows)} windows leaves an empty "
                              "memory buffer or stream")
        order = np.sort(windows.starts)  # the stream in time order: the memory is its beginning
        self.windows, self.memory, self.current = windows, order[:k], order[k:]
        self.replace_ratio = replace_ratio

    def __getattr__(self, name):
        return getattr(self.windows, name)

    def __len__(self) -> int:
        return len(self.current)

    def batches(self, batch_size: int, shuffle: bool = True, seed: int = 0, rank: int = 0, world: int = 1,
                even: bool = False):
        rng = np.random.default_rng(seed)
        cur = self.current[rng.permutation(len(self.current))] if shuffle else self.current
        mem = self.memory[rng.permutation(len(self.memory))]
        n_mem = int(np.floor(self.replace_ratio * batch_size))
        n_cur = batch_size - n_mem
        gen = torch.Generator().manual_seed(seed)
        for j, i in enumerate(range(0, len(cur), n_cur)):
            m = np.take(mem, np.arange(j * n_mem, (j + 1) * n_mem), mode="wrap")
            chunk = np.concatenate([cur[i:i + n_cur], m])
            if world > 1:  # the same global batch as one process, this rank's share
                if even and len(chunk) < world:
                    return
                chunk = shard(chunk, rank, world)
            yield self.windows.gather(chunk, gen)
