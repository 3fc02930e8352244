"""The model contract: built from a ProblemSpec, takes a Batch, returns a Prediction."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from stcast.errors import StcastError
from stcast.task import Task


@dataclass
class ProblemSpec:
    num_nodes: int
    num_channels: int
    input_len: int
    horizon: int
    steps_per_day: int
    task: Task = Task.FORECAST  # a string is parsed (a clear error for an unknown task)
    quantiles: tuple[float, ...] = ()
    adjacency: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.task = Task.parse(self.task)


@dataclass
class Prediction:
    point: torch.Tensor  # (B, H, N, C), in the scaled space of Batch.x
    quantiles: torch.Tensor | None = None  # (B, H, N, C, Q), scaled
    imputed: torch.Tensor | None = None  # (B, L, N, C), scaled: the input window filled (multi-task)
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)
    levels: tuple[float, ...] | None = None  # the quantile levels of `quantiles`, increasing
    # training on a subset of nodes (token reduction): `point` covers only these nodes of the batch, and the
    # loss reads the same nodes of the targets; None = every node (always so at inference)
    node_index: torch.Tensor | None = None
    # the quantiles come from an added quantile head (nn/quantile.py): the pinball loss joins the point loss
    quantile_loss: bool = False
    # a Laplace scale b per output (B, H, N, C), scaled units (U-LLM-TS Net): the loss becomes the
    # uncertainty-weighted negative log-likelihood |y - point| / b + log b instead of the MAE
    scale: torch.Tensor | None = None
    # a library model's own training objective (PyPOTS: SAITS's ORT + MIT, CSDI's denoising loss), computed on
    # stcast's hidden entries: training minimises it instead of the task loss; scoring is unchanged
    own_loss: torch.Tensor | None = None


class STModel(nn.Module):
    """Base class. Subclasses set `tasks`, `needs_graph`, and implement forward(batch) -> Prediction.

    Statistical models override `fit_statistics(train_windows)`; the engine calls it before training.
    """

    name = "model"
    tasks: tuple[Task, ...] = (Task.FORECAST,)
    needs_graph = False
    native_quantiles = False  # True: the model predicts its own quantiles (FactoST-v2); else a head is added
    # set by the trainer when the point loss trained the median only (its intervals are then not the model's and
    # are not scored); saved in and restored from model files
    quantiles_untrained: bool = False
    # whether the forecast comes from the input window (False: HA, seasonal naive read their own statistics or
    # history); a sensor whose window is all missing then gets no forecast at deployment (engine/inference.py)
    reads_input_window: bool = True
    # state entries whose shape may differ between a model file and this machine's rebuild (ST-VLM's prompt ids
    # follow the tokenizer): the model's own loading reconciles them
    flexible_state: tuple[str, ...] = ()

    def __init__(self, spec: ProblemSpec):
        super().__init__()
        if spec.task not in self.tasks:
            raise StcastError(f"model {self.name!r} does not support task {spec.task!r} (it supports "
                              f"{', '.join(self.tasks)})")
        if self.needs_graph and spec.adjacency is None:
            raise StcastError(f"model {self.name!r} needs an adjacency matrix; this dataset has none")
        self.spec = spec
        self.quantile_head = None
        if spec.quantiles and not self.native_quantiles:  # `--quantiles`: intervals for any model
            from stcast.nn.quantile import QuantileHead

            with torch.random.fork_rng(devices=[]):  # the model's own initialisation draws as without a head
                self.quantile_head = QuantileHead(spec.quantiles, self.out_len, spec.num_nodes, spec.num_channels)
            self.register_forward_hook(_with_quantiles)

    def fit_statistics(self, train_windows) -> None:  # noqa: B027 - optional hook
        pass

    def training_windows(self, windows):
        """The windows the engine trains on (hook): a model may wrap them with its own sampling, as FactoST-v2
        mixes a replay memory into every batch. Anything with `batches(...)`, `scaler` and `len()`."""
        return windows

    def attach(self, data, scaler) -> None:  # noqa: B027 - optional hook
        """Give a loaded model the series it reads from at inference (models that look up history)."""

    def check_window(self, x: torch.Tensor, hint: str = "") -> None:
        """x (B, L, N, C) must match the (L, N, C) the model was built for; a clear error otherwise."""
        B, L, N, C = x.shape
        s = self.spec
        if (L, N, C) != (s.input_len, s.num_nodes, s.num_channels):
            raise StcastError(f"{self.name} was built for windows (L={s.input_len}, N={s.num_nodes}, "
                              f"C={s.num_channels}) and got (L={L}, N={N}, C={C}){hint}")

    @property
    def out_len(self) -> int:
        return self.spec.input_len if self.spec.task is Task.IMPUTE else self.spec.horizon


def _with_quantiles(module: STModel, args, pred: Prediction) -> Prediction:
    """Forward hook: the quantile head's intervals around the model's point forecast."""
    if pred.quantiles is not None:
        return pred
    x = args[0].x
    if pred.node_index is not None:
        x = x[:, :, pred.node_index]
    q = module.quantile_head(pred.point, x)
    return dataclasses.replace(pred, quantiles=q, levels=module.quantile_head.levels, quantile_loss=True)
