"""One batch of windows as the models see it."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class Batch:
    """x (B, L, N, C) scaled with missing/hidden entries 0; y (B, H, N, C) in original units.

    For imputation H == L and y is the window itself; `eval_mask` marks the hidden-and-observed
    entries that the loss and the metrics see. Calendar indices are per step.
    """

    x: torch.Tensor
    x_mask: torch.Tensor
    y: torch.Tensor
    y_mask: torch.Tensor
    tod_x: torch.Tensor
    dow_x: torch.Tensor
    tod_y: torch.Tensor
    dow_y: torch.Tensor
    start: torch.Tensor
    node_ids: torch.Tensor
    eval_mask: torch.Tensor | None = None
    x_target: torch.Tensor | None = None  # forecast windows with hidden inputs (multi-task): raw inputs
    x_shown: torch.Tensor | None = None  # multi-task: x with every observed entry shown (scaled, missing 0)
    x_shown_mask: torch.Tensor | None = None  # multi-task: the observed entries before hiding

    def to(self, device) -> Batch:
        return Batch(**{f.name: (None if getattr(self, f.name) is None else getattr(self, f.name).to(device))
                        for f in fields(self)})

    def shown(self) -> Batch:
        """The forecast batch with every observed input shown (U-STS-LLM eq. 15: the prediction path reads the
        unmasked window, only the imputation path the masked one). A batch that hides nothing is itself."""
        if self.x_shown is None:
            return self
        return Batch(**{**{f.name: getattr(self, f.name) for f in fields(self)}, "x": self.x_shown,
                        "x_mask": self.x_shown_mask, "eval_mask": None, "x_target": None, "x_shown": None,
                        "x_shown_mask": None})

    @property
    def batch_size(self) -> int:
        return self.x.shape[0]
