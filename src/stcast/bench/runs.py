"""`stcast runs`: where the long benchmark tables under a folder stand, read from what `--resume` keeps.

A converged table runs for days, over restarts and processes (bench/resume.py). Each run leaves
`<name>.state.json` (its config and finished rows), `<name>.ckpt/` (the epoch checkpoint of the row in progress)
and `<name>.lock` (the process writing it). This reads them, without loading a model or touching the files, into
one board: per table, the rows finished (with their MAE), the row in progress (its epoch, best validation MAE and
epochs without improvement, from the checkpoint, read memory-mapped and `weights_only`), the rows still to run,
and whether a process is writing the table now or it waits for `--resume`. The rows are those the table's last
run listed (`--models` may have named part of a config).
"""

from __future__ import annotations

import json
import math
import socket
from dataclasses import dataclass, field
from pathlib import Path

from stcast.bench.resume import _alive, row_checkpoint
from stcast.errors import StcastError


@dataclass
class RowInProgress:
    label: str
    epochs_done: int
    max_epochs: int | None
    best_val: float
    bad_epochs: int
    patience: int | None
    train_hours: float


@dataclass
class TableStatus:
    name: str
    folder: Path
    wanted: list[str]  # "dataset model" in run order
    finished: dict[str, float] = field(default_factory=dict)  # "dataset model" -> test MAE
    running: list[RowInProgress] = field(default_factory=list)
    writer: str = ""  # "process 123" while one writes it, else ""
    problem: str = ""  # why the state could not be read (the table is shown, not skipped)

    @property
    def to_run(self) -> list[str]:
        started = {r.label for r in self.running}
        return [w for w in self.wanted if w not in self.finished and w not in started]


def survey(folders) -> list[TableStatus]:
    """Every benchmark run state under `folders` (searched recursively), in name order."""
    tables = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise StcastError(f"runs: {folder} is not a folder (give the --out-dir of `stcast benchmark`)")
        tables += [_table(p) for p in sorted(folder.rglob("*.state.json"))]
    return tables


def _table(state_path: Path) -> TableStatus:
    name = state_path.name.removesuffix(".state.json")
    status = TableStatus(name, state_path.parent, [])
    try:
        saved = json.loads(state_path.read_text())
        config, rows = saved["config"], saved["rows"]
        if not isinstance(config, dict) or not isinstance(rows, dict):
            raise TypeError("config and rows must be mappings")
    except (OSError, ValueError, KeyError, TypeError) as e:
        status.problem = f"not a run state stcast can read ({e})"
        return status
    datasets, models = config.get("datasets") or [], config.get("models") or []
    if not all(isinstance(x, list) and all(isinstance(v, str) for v in x) for x in (datasets, models)):
        status.problem = "not a run state stcast can read (its models and datasets are not lists of names)"
        return status
    status.wanted = [f"{d} {m}" for d in datasets for m in models if _runs(config, m)]
    for key, row in rows.items():
        mae = row.get("mae") if isinstance(row, dict) else None
        status.finished[key.replace("\t", " ")] = float(mae) if isinstance(mae, (int, float)) else math.nan
    status.wanted += [k for k in status.finished if k not in status.wanted]  # rows of a list that shrank
    ckpt_dir = state_path.with_name(name + ".ckpt")
    for d in datasets:
        for m in models:
            ck = row_checkpoint(ckpt_dir, d, m)
            if ck.is_file() and f"{d} {m}" not in status.finished:
                status.running.append(_in_progress(f"{d} {m}", ck, config))
    lock = state_path.with_name(name + ".lock")
    if lock.is_file():
        holder = lock.read_text(errors="replace").split()
        if len(holder) == 2 and (holder[1] != socket.gethostname() or _alive(holder[0])):
            status.writer = f"process {holder[0]}" + (f" on {holder[1]}" if holder[1] != socket.gethostname() else "")
    return status


def _runs(config: dict, label: str) -> bool:
    """Whether the model can run the table's task (the runner skips it otherwise); unknown names count as rows."""
    from stcast.models.registry import MODELS, get_model_class
    from stcast.task import Task

    base = config.get(f"variants.{label}.model", label)
    if base not in MODELS:
        return True
    try:
        return Task.parse(config.get("task") or "forecast").scored.value in get_model_class(base).tasks
    except (StcastError, ValueError):
        return True


def _in_progress(label: str, ckpt: Path, config: dict) -> RowInProgress:
    """What an epoch checkpoint says of its row; an unreadable one is a row in progress with nothing known."""
    import torch

    try:
        head = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
        saved = head.get("config") or {}
        return RowInProgress(label, int(head["epoch"]) + 1, saved.get("epochs", config.get("train.epochs")),
                             float(head["best_val"]), int(head["bad_epochs"]),
                             saved.get("patience", config.get("train.patience")),
                             float(head.get("train_seconds", math.nan)) / 3600)
    except Exception:  # a checkpoint being replaced right now, or not ours: shown, never fatal
        return RowInProgress(label, 0, config.get("train.epochs"), math.nan, 0, config.get("train.patience"),
                             math.nan)


def board(tables: list[TableStatus], rows: bool = False) -> str:
    """The survey as text: one block per table; `rows` lists every finished row with its MAE."""
    if not tables:
        return "no benchmark runs here (no <name>.state.json: tables run with `stcast benchmark --out-dir`)"
    out = []
    for t in tables:
        if t.problem:
            out.append(f"{t.name}  [{t.folder}]  {t.problem}")
            continue
        state = f"being written by {t.writer}" if t.writer else (
            "finished" if not t.to_run and not t.running else "stopped: continue with --resume")
        out.append(f"{t.name}  [{t.folder}]  {len(t.finished)} of {len(t.wanted)} rows done; {state}")
        for r in t.running:
            if math.isnan(r.best_val):
                out.append(f"  in progress: {r.label}: its epoch checkpoint could not be read (being replaced "
                           "right now, or not written by stcast)")
                continue
            of = f" of <= {r.max_epochs}" if r.max_epochs else ""
            wait = (f", {r.bad_epochs} epoch{'s' * (r.bad_epochs != 1)} without improvement (patience "
                    f"{r.patience})") if r.patience else ""
            hours = "" if math.isnan(r.train_hours) or not r.epochs_done else (
                f", {r.train_hours:.2f} h trained ({60 * r.train_hours / r.epochs_done:.1f} min per epoch, "
                "validation included)")
            n = f"{r.epochs_done} epoch{'s' * (r.epochs_done != 1)}"
            out.append(f"  in progress: {r.label}: {n}{of} done, best validation MAE "
                       f"{r.best_val:.4f}{wait}{hours}")
        if t.to_run:
            out.append(f"  to run: {', '.join(t.to_run)}")
        if rows:
            out += [f"  done: {k}: MAE {v:.4f}" for k, v in t.finished.items()]
    return "\n".join(out)

