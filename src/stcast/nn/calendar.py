"""Calendar embeddings that know which rows training has seen.

A day-of-week (or time-of-day, minute-of-hour) row that never occurs in the training windows keeps its random
initialisation; used at test time it adds noise. Los-loop is the plain case: one week, the test days (Tue/Wed)
never occur in training, and STID without day-of-week beat full STID (docs/benchmarks.md). A few-shot split or a
short user series hits the same trap. `CalendarEmbedding` records the rows it is trained on (a persistent
`seen` buffer, saved in model files) and at inference replaces every unseen row by the mean of the seen
rows, with a warning naming the feature and the rows. A table that was never trained (zero-shot from
scratch, `epochs: 0`) is used as it is.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class CalendarEmbedding(nn.Embedding):
    """nn.Embedding (same `weight`, same init) plus a `seen` row mask filled while training."""

    def __init__(self, num_rows: int, dim: int, feature: str, row_names: tuple[str, ...] | None = None):
        super().__init__(num_rows, dim)
        self.feature, self.row_names = feature, row_names
        self.register_buffer("seen", torch.zeros(num_rows, dtype=torch.bool))
        self._warned: set[int] = set()  # rows already named in a warning
        self._local_seen: torch.Tensor | None = None  # rows this process trained on

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                # also kept outside the buffer: DDP may overwrite buffers with rank 0's at every forward; the
                # trainer ORs `seen` over ranks after each epoch (engine.distributed.sync_buffers)
                if self._local_seen is None or self._local_seen.device != index.device:
                    self._local_seen = torch.zeros_like(self.seen)
                self._local_seen[index.reshape(-1)] = True
                self.seen |= self._local_seen
            return super().forward(index)
        seen = self.seen
        if bool(seen.all()) or not bool(seen.any()):
            return super().forward(index)
        unseen = ~seen[index]
        if not bool(unseen.any()):
            return super().forward(index)
        self._warn(torch.unique(index[unseen]).tolist())
        table = torch.where(seen[:, None], self.weight, self.weight[seen].mean(0))  # unseen rows -> mean row
        return F.embedding(index, table)

    def _warn(self, rows: list[int]) -> None:
        rows = [r for r in rows if r not in self._warned]  # each row named once per table, not once per batch
        if not rows:
            return
        self._warned.update(rows)
        names = [self.row_names[r] if self.row_names else str(r) for r in rows]
        shown = ", ".join(names[:7]) + (f" (+{len(names) - 7} more)" if len(names) > 7 else "")
        warnings.warn(f"{self.feature} {shown} never occurred in the training windows: the mean of the trained "
                      f"{self.feature} rows is used for them", stacklevel=3)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # model files written before `seen` existed: every row counts as trained (their old behaviour)
        state_dict.setdefault(prefix + "seen", torch.ones(self.num_embeddings, dtype=torch.bool))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def time_of_day(steps_per_day: int, dim: int) -> CalendarEmbedding:
    return CalendarEmbedding(steps_per_day, dim, "time-of-day slot")


def day_of_week(dim: int) -> CalendarEmbedding:
    return CalendarEmbedding(7, dim, "day of week", DAY_NAMES)
