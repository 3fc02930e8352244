"""Where training runs: one Lightning Fabric per process (one CPU or GPU, DDP/FSDP over GPUs and nodes, mixed
precision), shared by `stcast train`, `benchmark` and `pretrain`. The loop itself stays ours (engine/trainer.py).

Launching: `stcast train ... --devices 2` starts the extra processes itself (Fabric's subprocess launcher re-runs
the same command line with LOCAL_RANK set); under `torchrun` or `fabric run` the processes already exist and
Fabric joins them. Windows are sharded across ranks by `data.windows.shard`, metrics reduced by sums and counts.
"""

from __future__ import annotations

import os
import warnings

import torch

from stcast.config.train import PRECISIONS
from stcast.errors import StcastError

_FABRICS: dict[tuple, object] = {}


def placement_key(cfg) -> tuple:
    return (cfg.accelerator, cfg.devices, cfg.num_nodes, cfg.strategy, PRECISIONS[str(cfg.precision)])


def fabric_for(cfg):
    """The process's Fabric for these placement settings, created and launched once (a benchmark trains many
    models in one process: launching again would start processes again)."""
    key = placement_key(cfg)
    if key in _FABRICS:
        return _FABRICS[key]
    if _FABRICS and next(iter(_FABRICS.values())).world_size > 1:
        raise StcastError("one distributed placement per process: every model of a run must use the same "
                          "--accelerator/--devices/--num-nodes/--strategy/--precision")
    from lightning_fabric import Fabric

    accelerator, devices, num_nodes, strategy, precision = key
    launched = any(os.environ.get(k) for k in ("MASTER_ADDR", "NODE_RANK", "SLURM_JOB_ID", "TORCHELASTIC_RUN_ID",
                                               "LT_CLI_USED", "GROUP_RANK"))
    if num_nodes > 1 and not launched:
        # Fabric would wait forever for the other machines: nothing starts them from here
        raise StcastError(f"--num-nodes {num_nodes} runs one process group over {num_nodes} machines: start the "
                          "same command on each of them through a launcher (torchrun --nnodes, `fabric run`, or "
                          "SLURM's srun), which sets MASTER_ADDR and NODE_RANK; on one machine use --devices")
    if accelerator == "cuda" and not torch.cuda.is_available():
        raise StcastError("accelerator 'cuda' requested but no CUDA GPU is visible (use --accelerator cpu)")
    if strategy == "ddp":
        from lightning_fabric.strategies import DDPStrategy

        # models with switchable parts leave some parameters unused in a step (DDP must not wait for them);
        # buffers are reconciled once an epoch by `sync_buffers`, not overwritten by rank 0's at every forward
        # (which would lose the calendar rows the other ranks saw)
        strategy = DDPStrategy(find_unused_parameters=True, broadcast_buffers=False)
    elif strategy == "fsdp":
        from lightning_fabric.strategies import FSDPStrategy

        strategy = FSDPStrategy(state_dict_type="full")  # one checkpoint file, readable by a single process
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(precision|GPU available|tensor cores).*")
        # under `fabric run` the placement is the launcher's (its --accelerator/--devices/... flags, which it
        # also takes from the command line after the script): Fabric reads it, and ours would conflict
        placement = {} if os.environ.get("LT_CLI_USED") == "1" else dict(
            accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy, precision=precision)
        try:
            fabric = Fabric(**placement)
        except (ValueError, RuntimeError, TypeError) as e:  # Fabric's own words on an impossible placement
            raise StcastError(f"cannot place training on accelerator={accelerator} devices={devices} "
                              f"num_nodes={num_nodes} strategy={key[3]} precision={precision}: {e}") from e
        try:
            fabric.launch()  # starts the other processes when they do not exist yet
        except RuntimeError as e:  # launched by `fabric run`: the processes exist and launch() refuses
            if "CLI" not in str(e):
                raise
    _FABRICS[key] = fabric
    return fabric


def rank_and_world() -> tuple[int, int]:
    """This process's global rank and the number of processes (0, 1 outside a distributed run)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0) or 0), int(os.environ.get("WORLD_SIZE", 1) or 1)


def is_global_zero() -> bool:
    """Whether this process writes files and prints results (rank 0 only)."""
    return rank_and_world()[0] == 0


def check_global_batch(batch_size: int, world: int, what: str = "batch_size") -> None:
    if world > 1 and batch_size % world:
        raise StcastError(f"{what}={batch_size} is the global batch and must divide evenly over {world} "
                          f"processes (use a multiple of {world})")


def sync_buffers(fabric, model: torch.nn.Module) -> None:
    """Make every rank's buffers agree after an epoch in which each saw its own windows: a boolean buffer (a
    calendar row seen in training) becomes true where any rank set it, a floating one (normalisation running
    statistics) the mean over ranks; counters are kept as they are (equal on every rank)."""
    if fabric.world_size < 2:
        return
    for buf in model.buffers():
        if buf.dtype == torch.bool:
            buf.copy_(fabric.all_reduce(buf.to(torch.float32), reduce_op="sum") > 0)
        elif buf.is_floating_point():
            buf.copy_(fabric.all_reduce(buf.clone(), reduce_op="mean"))
