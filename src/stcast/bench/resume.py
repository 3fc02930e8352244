"""Benchmarks that survive being stopped: `stcast benchmark --resume`, and partial tables merged into one.

Beside `<out-dir>/<name>.csv` a run keeps `<name>.state.json` (the config it runs, flattened, and every finished
row as it was written) and `<name>.ckpt/` (the epoch checkpoint of the row in progress). Rerun with `--resume`
(same config, same out-dir): finished rows are kept and not re-run, the row that was running continues from its
last epoch checkpoint (bit-identical to an uninterrupted run, as `train --resume` is), and a changed config is
refused with a message naming each changed setting. The list of rows may grow (`--models` with rows added, e.g. a
seed's run extended by more rows) as long as every finished row stays in it. A row's checkpoint is deleted once
the row is written. The state is written when the run starts, so a run stopped inside its first row resumes too;
`--resume` where no run of that name exists starts it, and says so (a script can always pass `--resume`).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re
import shutil
import socket
from pathlib import Path

from stcast.bench.paired import save_window_errors, window_errors_path, windows_dir
from stcast.config import BenchConfig, TrainConfig
from stcast.engine.distributed import is_global_zero
from stcast.engine.environment import environment, environments_note
from stcast.errors import StcastError

# settings that do not change what a row computes: a resumed run may differ in them
_FREE = {"train.progress", "train.logger", "train.tb_dir"}
_ROW_LISTS = ("models", "datasets")  # checked row by row: see RunState._load


def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def fingerprint(cfg: BenchConfig) -> dict:
    """The config as flat `key.path: value` pairs (JSON values), without what does not change a row."""
    raw = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "source"}
    raw["train"] = dataclasses.asdict(TrainConfig(**cfg.train))  # defaults spelled out: a changed one is named
    flat = _flatten(json.loads(json.dumps(raw, default=str)))
    return {k: v for k, v in flat.items() if k not in _FREE}


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def row_checkpoint(ckpt_dir: Path, dataset: str, label: str) -> Path:
    """Where a row in progress keeps its epoch checkpoint: `<name>.ckpt/<dataset>--<row>.pt`."""
    return Path(ckpt_dir) / f"{_safe(dataset)}--{_safe(label)}.pt"


class RunState:
    """What a benchmark run has finished, kept on disk as it goes."""

    def __init__(self, rows_csv, cfg: BenchConfig, resume: bool, overwrite: bool = False):
        rows_csv = Path(rows_csv)
        self.path = rows_csv.with_name(rows_csv.stem + ".state.json")
        self.ckpt_dir = rows_csv.with_name(rows_csv.stem + ".ckpt")
        self.rows_csv = rows_csv
        self.windows_dir = windows_dir(rows_csv)  # per-window test errors of each row
        self.config = fingerprint(cfg)
        self.rows: dict[str, dict] = {}
        self.environment = environment()  # where this process computes (engine/environment.py)
        self.environments: dict[str, dict] = {}  # row key -> where that row was computed (kept across resumes)
        self.note = ""  # what the runner tells the user about the start (a resume with nothing to resume)
        self.lock = rows_csv.with_name(rows_csv.stem + ".lock")
        self._locked = False
        if is_global_zero():  # one writer per table: a second process would overwrite the first one's rows
            self._take_lock(rows_csv)
        try:
            self._start(rows_csv, resume, overwrite)
        except BaseException:
            self.release()
            raise

    def _start(self, rows_csv: Path, resume: bool, overwrite: bool) -> None:
        if resume and self.path.is_file():
            self._load()
        else:  # a fresh run: what an earlier run of this name left is discarded, when the user says so
            if not overwrite:
                self._refuse_to_discard(rows_csv)
            if resume:
                self.note = (f"--resume: no earlier run of '{rows_csv.stem}' in {rows_csv.parent} ({self.path.name} "
                             "does not exist): starting it")
            shutil.rmtree(self.ckpt_dir, ignore_errors=True)
            shutil.rmtree(self.windows_dir, ignore_errors=True)
        if is_global_zero():  # the config is on disk before the first row ends: a run stopped inside it resumes too
            self._save()

    def _take_lock(self, rows_csv: Path) -> None:
        """`<name>.lock` (pid and host) while a run writes the table; a lock left by a process that is gone (a
        kill) is taken over."""
        me = f"{os.getpid()} {socket.gethostname()}"
        self.lock.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                holder = self.lock.read_text(errors="replace").split()
                if len(holder) == 2 and holder[1] == socket.gethostname() and (
                        holder[0] == str(os.getpid()) or not _alive(holder[0])):
                    self.lock.unlink(missing_ok=True)  # its process is gone (a stopped run's lock), or is this one
                    continue
                who = f"process {holder[0]} on {holder[1]}" if len(holder) == 2 else "another process"
                raise StcastError(f"{rows_csv.parent}: '{rows_csv.stem}' is being written by {who} "
                                  f"({self.lock.name}); two runs of one table would overwrite each other's rows: "
                                  "run parts under other names (--set name=...) and `stcast merge` them, or, if "
                                  f"no run is writing it, delete {self.lock}") from None
            with os.fdopen(fd, "w") as fh:
                fh.write(me)
            self._locked = True
            return

    def release(self) -> None:
        """The lock goes (the run ended, finished or not)."""
        if self._locked:
            self.lock.unlink(missing_ok=True)
            self._locked = False

    def _refuse_to_discard(self, rows_csv: Path) -> None:
        """Hours of finished rows (or a row's epoch checkpoint) are never dropped by a rerun that forgot --resume."""
        rows = 0
        if self.path.is_file():
            try:
                rows = len(json.loads(self.path.read_text()).get("rows") or {})
            except (ValueError, AttributeError):
                rows = 0  # a state that is not ours holds nothing to keep
        running = self.ckpt_dir.is_dir() and any(self.ckpt_dir.iterdir())
        if rows or running:
            held = " and ".join(x for x in (f"{rows} finished row{'s' * (rows != 1)}" if rows else "",
                                            "a row's epoch checkpoint" if running else "") if x)
            raise StcastError(f"{rows_csv.parent}: an earlier run of '{rows_csv.stem}' is there ({held}, "
                              f"{self.path.name}); pass --resume to keep and continue it, --overwrite to discard it "
                              "and start over, or name this run otherwise (--set name=...)")

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"config": self.config, "rows": self.rows, "environments": self.environments,
                                   "started_in": self.environment}, default=_plain))
        os.replace(tmp, self.path)

    def _load(self) -> None:
        try:
            saved = json.loads(self.path.read_text())
            old, rows = saved["config"], saved["rows"]
        except (ValueError, KeyError, TypeError) as e:
            raise StcastError(f"--resume: {self.path} is not a run state written by stcast ({e})") from e
        new, unset = self.config, "<unset>"
        # a setting stcast gained after the run started is unchanged when this run leaves it at its default
        default = fingerprint(BenchConfig())
        old = {**{k: v for k, v in default.items() if k not in old and new.get(k, unset) == v}, **old}
        # the row list may grow or be reordered (add seeds' rows, split a table over processes); a finished row must
        # stay in it, so the table written at the end still holds it
        changed = sorted(k for k in set(old) | set(new)
                         if k not in _ROW_LISTS and old.get(k, unset) != new.get(k, unset))
        if changed:
            shown = "; ".join(f"{k}: {old.get(k, unset)!r} -> {new.get(k, unset)!r}" for k in changed[:6])
            more = f" (+{len(changed) - 6} more)" if len(changed) > 6 else ""
            raise StcastError(f"--resume: the config differs from the run being resumed ({shown}{more}); resume with "
                              "the same config, or start a new run under another name (--set name=...)")
        wanted = {self.key(d, m) for d in new.get("datasets") or [] for m in new.get("models") or []}
        dropped = [k.replace("\t", " ") for k in rows if k not in wanted]
        if dropped:
            raise StcastError(f"--resume: finished rows are not in this run's models and datasets ({', '.join(dropped)}"
                              "); keep them in the list (--models), or start a new run under another name")
        self.rows = rows
        kept = saved.get("environments")
        self.environments = {k: v for k, v in kept.items() if k in rows} if isinstance(kept, dict) else {}
        before = saved.get("started_in") if isinstance(saved.get("started_in"), dict) else None
        note = environments_note([before, self.environment], f"the earlier part of '{self.rows_csv.stem}' and this one")
        if note and (rows or (self.ckpt_dir.is_dir() and any(self.ckpt_dir.iterdir()))):
            self.note = (note + ". Its finished rows keep their figures (each row's environment is in the run state "
                         "and the Markdown table); a row resumed from its checkpoint is not bit-identical to an "
                         "uninterrupted run")

    @staticmethod
    def key(dataset: str, label: str) -> str:
        return f"{dataset}\t{label}"

    def finished(self, dataset: str, label: str) -> dict | None:
        return self.rows.get(self.key(dataset, label))

    def train_config(self, train: TrainConfig, dataset: str, label: str) -> TrainConfig:
        """The row's training settings with its epoch checkpoint (resumed when one is there)."""
        ck = row_checkpoint(self.ckpt_dir, dataset, label)
        return dataclasses.replace(train, checkpoint=str(ck), resume=ck.exists())

    def save_window_errors(self, dataset: str, label: str, predictions: dict, meta: dict) -> Path:
        """A finished row's per-window test errors, `<name>.windows/<dataset>--<row>.npz` (`stcast compare`)."""
        return save_window_errors(window_errors_path(self.rows_csv, dataset, label), predictions,
                                  {**meta, "environment": self.environment})

    def finish(self, dataset: str, label: str, row: dict, train: TrainConfig) -> None:
        """Record a finished row (atomically) and drop its checkpoint."""
        self.rows[self.key(dataset, label)] = row
        self.environments[self.key(dataset, label)] = self.environment
        self._save()
        if train.checkpoint:
            Path(train.checkpoint).unlink(missing_ok=True)

    def close(self) -> None:
        """The whole table is written: the checkpoint folder goes (the state stays, so `--resume` is a no-op)."""
        shutil.rmtree(self.ckpt_dir, ignore_errors=True)
        self.release()


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _plain(v):
    return v.item() if hasattr(v, "item") else str(v)


class StoredRow:
    """A finished row read back from the run state: what the runner needs of an ExperimentResult."""

    def __init__(self, row: dict):
        self._row = dict(row)
        self.model, self.dataset = row["model"], row["dataset"]
        self.metrics = {"mae": row.get("mae", math.nan)}
        self.predictions: dict = {}

    def row(self) -> dict:
        return dict(self._row)


# what parts of one table may differ in: their rows and their run's name (parts run as `--models a --set name=...`)
_PART_FREE = {"models", "datasets", "name", "train.checkpoint", "train.resume"}


def _part_config(part: Path) -> dict | None:
    """The config a part was run with, from the run state `stcast benchmark` writes beside its CSV (None without)."""
    state = part.with_name(part.stem + ".state.json")
    if not state.is_file():
        return None
    try:
        return dict(json.loads(state.read_text())["config"])
    except (ValueError, KeyError, TypeError) as e:
        raise StcastError(f"merge: {state} (beside {part.name}) is not a run state written by stcast ({e})") from e


def merge_tables(parts, out) -> tuple[Path, int]:
    """Partial result CSVs of one table (e.g. `--models` split over two processes) into one: rows in the order
    the parts give them, columns the union; a (dataset, model) row in two parts must be the same row. Parts of
    different tables are refused: their run states (beside the CSVs) must agree in every setting but the rows and
    the name, and every row must be of one task; an MAE that is not a number (nan: a diverged row) is refused.
    Each row's per-window errors (`<part>.windows/`) are copied to `<out>.windows/`, so the merged table pairs
    (`stcast compare`, the benchmark's winner line) as its parts did; returns the table and how many were copied."""
    rows: dict[tuple, dict] = {}
    source: dict[tuple, Path] = {}  # the part each kept row came from
    columns: list[str] = []
    first: tuple[Path, dict] | None = None
    tasks: dict[str, Path] = {}
    for part in map(Path, parts):
        if not part.is_file():
            raise StcastError(f"merge: {part} does not exist")
        config = _part_config(part)
        if config is not None:
            if first is None:
                first = (part, config)
            unset = "<unset>"
            changed = sorted(k for k in set(config) | set(first[1])
                             if k not in _PART_FREE and config.get(k, unset) != first[1].get(k, unset))
            if changed:
                shown = "; ".join(f"{k}: {first[1].get(k, unset)!r} vs {config.get(k, unset)!r}" for k in changed[:4])
                raise StcastError(f"merge: {first[0]} and {part} were run with different settings ({shown}); they "
                                  "are parts of different tables")
        with open(part, newline="") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"dataset", "model"} <= set(reader.fieldnames):
                raise StcastError(f"merge: {part} is not a benchmark table (no dataset and model columns)")
            columns += [c for c in reader.fieldnames if c not in columns]
            for line, row in enumerate(reader, 2):
                if row.get("task"):
                    tasks.setdefault(row["task"], part)
                    if len(tasks) > 1:
                        task0 = next(iter(tasks))
                        raise StcastError(f"merge: {part} line {line} is a row of task {row['task']!r}; {tasks[task0]} "
                                          f"holds {task0!r} rows: parts of different tables")
                if row.get("mae") not in (None, ""):
                    try:
                        float(row["mae"])
                    except ValueError:
                        raise StcastError(f"merge: {part} line {line}: mae {row['mae']!r} is not a number") from None
                key = (row["dataset"], row["model"])
                if key in rows and {k: v for k, v in rows[key].items() if k in row} != \
                        {k: v for k, v in row.items() if k in rows[key]}:
                    raise StcastError(f"merge: {key[1]} on {key[0]} appears in two parts with different figures "
                                      f"(the second in {part})")
                rows.setdefault(key, row)
                source.setdefault(key, part)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows.values())
    copied = 0
    for (dataset, model), part in source.items():
        src, dst = window_errors_path(part, dataset, model), window_errors_path(out, dataset, model)
        if src.resolve() == dst.resolve():
            continue
        if src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            copied += 1
        else:  # a file an earlier merge left for this row is not this row's errors: no pairing on it
            dst.unlink(missing_ok=True)
    return out, copied
