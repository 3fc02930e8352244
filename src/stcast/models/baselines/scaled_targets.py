"""For imputers whose own objective lives in the scaled space (GRIN, the PyPOTS models): the training split's
scaler kept as buffers, so the hidden truths (Batch.y, original units) can be scaled inside the model and a saved
model carries them."""

from __future__ import annotations

import torch

from stcast.models.base import ProblemSpec, STModel


class ScaledTargetsImputer(STModel):
    tasks = ("impute",)

    def __init__(self, spec: ProblemSpec):
        super().__init__(spec)
        self.register_buffer("x_mean", torch.zeros(spec.num_nodes, spec.num_channels))
        self.register_buffer("x_std", torch.ones(spec.num_nodes, spec.num_channels))

    def fit_statistics(self, train_windows) -> None:
        s = train_windows.scaler
        self.x_mean.copy_(torch.as_tensor(s.mean, dtype=torch.float32).expand_as(self.x_mean))
        self.x_std.copy_(torch.as_tensor(s.std, dtype=torch.float32).expand_as(self.x_std))

    def scaled_truth(self, batch) -> torch.Tensor:
        """Batch.y in the scaled space, 0 where never observed (B, L, N, C)."""
        return torch.nan_to_num((batch.y - self.x_mean) / self.x_std) * batch.y_mask
