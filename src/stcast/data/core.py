"""The in-memory dataset every loader returns and every window/engine consumes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stcast.errors import StcastError


@dataclass
class DatasetMeta:
    name: str
    step_minutes: int
    steps_per_day: int
    channels: tuple[str, ...] = ("value",)
    units: str = ""
    null_value: float | None = None  # a value that means "missing" (0 for traffic speed/flow)
    day_start_minutes: int = 0  # first slot of the day (Hangzhou metro opens 05:30)
    notes: str = ""


@dataclass
class SpatioTemporalData:
    """values (T, N, C) float32; mask (T, N, C) bool, True = observed; timestamps (T,) datetime64.

    Missing entries are False in `mask` and 0 in `values`. `values` may be a read-only memmap: nothing
    here copies it. `eval_mask` marks entries a protocol scores (AQI-36's simulated failures).
    """

    values: np.ndarray
    timestamps: np.ndarray
    meta: DatasetMeta
    mask: np.ndarray | None = None
    adjacency: np.ndarray | None = None
    coords: np.ndarray | None = None  # (N, 2) lat/lon or x/y
    node_ids: list[str] | None = None
    eval_mask: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        name = self.meta.name
        if self.values.ndim == 2:
            self.values = self.values[:, :, None]
        if self.values.ndim != 3:
            raise StcastError(f"{name}: values must have shape (T, N, C); got rank {self.values.ndim} "
                              f"with shape {tuple(self.values.shape)}")
        T, N, C = self.values.shape
        if T == 0 or N == 0:
            raise StcastError(f"{name}: values are empty (shape {tuple(self.values.shape)})")
        if len(self.timestamps) != T:
            raise StcastError(f"{name}: {len(self.timestamps)} timestamps for {T} time steps")
        if self.mask is not None:
            if self.mask.ndim == 2:
                self.mask = self.mask[:, :, None]
            if self.mask.shape != self.values.shape:
                raise StcastError(f"{name}: mask shape {self.mask.shape} != values shape {self.values.shape}")
            self.mask = self.mask.astype(bool, copy=False)
        if not isinstance(self.values, np.memmap):
            self._check_finite()
        if self.adjacency is not None:
            check_adjacency(self.adjacency, N, name)
        if self.coords is not None and len(self.coords) != N:
            raise StcastError(f"{name}: {len(self.coords)} node coordinates for {N} nodes")
        if self.node_ids is not None and len(self.node_ids) != N:
            raise StcastError(f"{name}: {len(self.node_ids)} node ids for {N} nodes")
        if len(self.meta.channels) != C:
            self.meta.channels = tuple(f"ch{i}" for i in range(C)) if C > 1 else ("value",)

    def _check_finite(self) -> None:
        bad = ~np.isfinite(self.values)
        if not bad.any():
            return
        n_inf = int(np.isinf(self.values).sum())
        if n_inf:
            raise StcastError(f"{self.meta.name}: values contain {n_inf} inf entries; replace them with NaN "
                              "(missing) or a real value")
        if self.mask is None:
            raise StcastError(f"{self.meta.name}: values contain {int(bad.sum())} NaN entries and no mask was "
                              "given; use SpatioTemporalData.from_array(..., nan_as_missing=True) to treat "
                              "NaN as missing")
        if (bad & self.mask).any():
            raise StcastError(f"{self.meta.name}: {int((bad & self.mask).sum())} NaN entries are marked "
                              "observed in the mask")
        self.values = np.where(bad, 0.0, self.values).astype(np.float32)

    @classmethod
    def from_array(cls, values, timestamps, meta: DatasetMeta, nan_as_missing: bool = True, **kw):
        """Build from raw values: NaN (and meta.null_value) become missing; inf is an error."""
        values = np.asarray(values, dtype=np.float32)
        if values.ndim == 2:
            values = values[:, :, None]
        if np.isinf(values).any():
            raise StcastError(f"{meta.name}: values contain {int(np.isinf(values).sum())} inf entries")
        observed = ~np.isnan(values) if nan_as_missing else np.ones(values.shape, bool)
        if meta.null_value is not None:
            observed &= values != meta.null_value
        if "mask" in kw and kw["mask"] is not None:
            observed &= np.asarray(kw.pop("mask"), bool).reshape(values.shape)
        kw.pop("mask", None)
        values = np.where(observed, np.nan_to_num(values, nan=0.0), 0.0).astype(np.float32)
        return cls(values=values, timestamps=np.asarray(timestamps), meta=meta, mask=observed, **kw)

    @property
    def num_steps(self) -> int:
        return self.values.shape[0]

    @property
    def num_nodes(self) -> int:
        return self.values.shape[1]

    @property
    def num_channels(self) -> int:
        return self.values.shape[2]

    def observed(self, index=slice(None)) -> np.ndarray:
        """Observed-mask for a time index/slice, derived lazily when no explicit mask is stored."""
        if self.mask is not None:
            return self.mask[index]
        v = np.asarray(self.values[index])
        m = np.isfinite(v)
        if self.meta.null_value is not None:
            m &= v != self.meta.null_value
        return m

    def calendar(self) -> tuple[np.ndarray, np.ndarray]:
        """Time-of-day slot in [0, steps_per_day) and day-of-week in [0, 7) per step, int64."""
        return calendar_of(self.timestamps, self.meta)

    def never_negative(self) -> bool:
        """Whether every observed value is >= 0 (speeds, counts, PM2.5): forecasts and intervals of such data are
        clipped at 0 where users see them. False for a LargeST-size memmap (not scanned)."""
        if self.values.size > 5e8:
            return False
        observed = np.asarray(self.values)[np.asarray(self.observed())]
        return bool(observed.size) and bool((observed >= 0).all())

    def future_timestamps(self, steps: int) -> np.ndarray:
        """The `steps` timestamps after the last one, on the dataset's regular grid."""
        last = self.timestamps[-1].astype("datetime64[m]")
        return last + np.arange(1, steps + 1) * np.timedelta64(self.meta.step_minutes, "m")

    def subset_nodes(self, nodes) -> SpatioTemporalData:
        nodes = np.asarray(nodes)
        return SpatioTemporalData(
            values=self.values[:, nodes], timestamps=self.timestamps, meta=self.meta,
            mask=None if self.mask is None else self.mask[:, nodes],
            adjacency=None if self.adjacency is None else self.adjacency[np.ix_(nodes, nodes)],
            coords=None if self.coords is None else self.coords[nodes],
            node_ids=None if self.node_ids is None else [self.node_ids[i] for i in nodes],
            eval_mask=None if self.eval_mask is None else self.eval_mask[:, nodes],
        )

    def describe(self) -> str:
        T, N, C = self.values.shape
        if self.values.size < 5e8:
            m = self.observed()
            obs, zeros = float(m.mean()), float((m & (np.asarray(self.values) == 0)).sum() / max(int(m.sum()), 1))
        else:
            obs = zeros = float("nan")
        null = "none" if self.meta.null_value is None else f"{self.meta.null_value:g}"
        return (f"{self.meta.name}: T={T} steps x N={N} nodes x C={C} channels {list(self.meta.channels)}, "
                f"step {self.meta.step_minutes} min, {str(self.timestamps[0])[:16]} .. "
                f"{str(self.timestamps[-1])[:16]}, observed {obs:.1%} (missing {1 - obs:.1%}, null value {null}), "
                f"exact zeros {zeros:.1%} of observed, adjacency {'yes' if self.adjacency is not None else 'no'}")


def calendar_of(timestamps, meta: DatasetMeta) -> tuple[np.ndarray, np.ndarray]:
    ts = np.asarray(timestamps).astype("datetime64[m]")
    minutes = (ts - ts.astype("datetime64[D]")).astype(np.int64)
    tod = np.clip((minutes - meta.day_start_minutes) // meta.step_minutes, 0, meta.steps_per_day - 1)
    dow = (ts.astype("datetime64[D]").astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday (3)
    return tod.astype(np.int64), dow.astype(np.int64)


def check_adjacency(adj: np.ndarray, num_nodes: int, name: str = "dataset") -> np.ndarray:
    adj = np.asarray(adj)
    if adj.ndim != 2 or adj.shape != (num_nodes, num_nodes):
        raise StcastError(f"adjacency is {'x'.join(map(str, adj.shape))}; expected "
                          f"{num_nodes}x{num_nodes} for {name}")
    if adj.dtype.kind not in "fiub":
        raise StcastError(f"adjacency of {name} holds {adj.dtype} data; expected numbers")
    if not np.isfinite(adj).all():
        raise StcastError(f"adjacency of {name} contains NaN or inf")
    if (adj < 0).any():
        raise StcastError(f"adjacency of {name} has {int((adj < 0).sum())} negative weights (e.g. "
                          f"{float(adj.min()):g}); edge weights must be >= 0: pass |A| or clip the negatives "
                          "yourself (graph convolutions would otherwise cancel or drop those rows)")
    return adj
