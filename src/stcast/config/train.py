"""Training settings (`train:` in a config, flags of `stcast train`), with their ranges, and where training runs."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from stcast.config.fields import check_fields, from_mapping, setting

# where training runs (Lightning Fabric, engine/distributed.py); the CLI's choices come from here too
ACCELERATORS = ("cpu", "cuda", "auto")
STRATEGIES = ("auto", "ddp", "fsdp")
PRECISIONS = {"32": "32-true", "32-true": "32-true", "bf16-mixed": "bf16-mixed", "16-mixed": "16-mixed"}
LOGGERS = ("csv", "tensorboard")
LOSSES = ("mae", "pinball")
OPTIMIZERS = ("adam", "adamw")
LR_SCHEDULES = ("constant", "multistep", "cosine", "plateau")


def _finite(lo: float, inclusive: bool = True):
    return (lambda v: math.isfinite(v) and v >= lo) if inclusive else (lambda v: math.isfinite(v) and v > lo)


def _one_of(options):
    return lambda v: str(v) in options


@dataclass
class TrainConfig:
    epochs: int = setting(100, lambda v: v >= 0, "an integer >= 0 (0 = score the model as built: zero-shot)")
    patience: int = setting(10, lambda v: v >= 1, "an integer >= 1 (epochs without improvement before stopping)")
    lr: float = setting(2e-3, _finite(0, False), "a finite number > 0")
    weight_decay: float = setting(1e-4, _finite(0), "a finite number >= 0")
    batch_size: int = setting(32, lambda v: v >= 1, "an integer >= 1")
    eval_batch_size: int = setting(64, lambda v: v >= 1, "an integer >= 1")
    clip_grad: float = setting(5.0, _finite(0), "a finite number >= 0 (0 = no clipping)")
    seed: int = setting(0, lambda v: 0 <= v < 2**32, "an integer in 0 .. 4294967295 (numpy's seed range)")
    # where it runs (Lightning Fabric): one CPU process by default; batch_size is the global batch over processes
    accelerator: str = setting("cpu", _one_of(ACCELERATORS), "cpu, cuda or auto")
    devices: int | str = setting(1, lambda v: v == "auto" or (type(v) is int and v >= 1),
                                 "an integer >= 1 or auto")  # processes/GPUs per node
    num_nodes: int = setting(1, lambda v: v >= 1, "an integer >= 1")
    strategy: str = setting("auto", _one_of(STRATEGIES), "auto, ddp or fsdp")
    precision: str | int = setting("32", _one_of(PRECISIONS), "32, bf16-mixed or 16-mixed")
    logger: str = setting("csv", _one_of(LOGGERS), "csv or tensorboard")  # csv (log_csv), or tensorboard as well
    tb_dir: str = setting("runs", bool, "a directory path")
    max_minutes: float | None = setting(None, _finite(0, False), "a number of minutes > 0, or null")  # wall clock
    # the budget also ends an epoch part-way (it is validated, then training stops): equal-time tables where one
    # model's epoch is longer than the budget (a METR-LA pass of an LLM method on CPU)
    cut_epoch: bool = setting(False, None, "true or false")
    max_batches_per_epoch: int | None = setting(None, lambda v: v >= 1, "an integer >= 1, or null")
    alpha: float = setting(0.5, lambda v: 0 <= v <= 1, "a weight in [0, 1]")  # multi-task weight
    # mae (point), or pinball over the model's quantiles (probabilistic models)
    loss: str = setting("mae", _one_of(LOSSES), "mae or pinball")
    # adam, or adamw (decoupled weight decay, as the U-STS-LLM paper trains)
    optimizer: str = setting("adam", _one_of(OPTIMIZERS), "adam or adamw")
    # learning rate per epoch: constant; multistep (x lr_gamma at each of `milestones`, BasicTS's STID recipe
    # [1, 50, 80] x 0.5); cosine (to 0 over `epochs`); plateau (x lr_gamma once validation MAE has not improved
    # for more than `plateau_patience` epochs, as torch's ReduceLROnPlateau; ST-VLM's recipe: 10, 0.5).
    # `warmup_epochs` ramps linearly first (any schedule).
    lr_schedule: str = setting("constant", _one_of(LR_SCHEDULES), "constant, multistep, cosine or plateau")
    plateau_patience: int = setting(10, lambda v: v >= 1, "an integer >= 1")
    milestones: tuple[int, ...] = setting((), lambda v: all(m >= 1 for m in v), "a list of epochs >= 1")
    lr_gamma: float = setting(0.5, lambda v: 0 < v <= 1, "a factor in (0, 1]")
    warmup_epochs: int = setting(0, lambda v: v >= 0, "an integer >= 0")
    checkpoint: str | None = setting(None, bool, "a file path, or null")  # saved every epoch, restored on resume
    resume: bool = setting(False, None, "true or false")
    log_csv: str | None = setting(None, bool, "a file path, or null")
    progress: bool = setting(True, None, "true or false")

    def __post_init__(self) -> None:
        check_fields(self, "training setting")
        if self.cut_epoch and self.max_minutes is None:
            from stcast.errors import StcastError

            raise StcastError("training setting cut_epoch=True needs max_minutes (the budget that cuts an epoch "
                              "short); set max_minutes or drop cut_epoch")

    @classmethod
    def from_dict(cls, raw: dict | None, source: str = "train") -> TrainConfig:
        """Build from a YAML/`--set` mapping: unknown keys are errors with a did-you-mean."""
        return from_mapping(cls, raw, source, "training setting")


TRAIN_KEYS = tuple(f.name for f in fields(TrainConfig))
