"""Run a grid of models x datasets under one protocol and budget; tables as text, CSV and Markdown.

Every model in a grid sees the same windows, scaler, seed and training budget, in the same process,
so the figures (and their ratios) are comparable.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path

from stcast.bench.resume import RunState, StoredRow
from stcast.bench.tables import markdown_table, table_columns
from stcast.config import BenchConfig
from stcast.config.bench import DEFAULT_STEPS
from stcast.data.registry import is_table_path, load_dataset
from stcast.engine.distributed import is_global_zero
from stcast.engine.environment import describe_environment, environment
from stcast.engine.experiment import Experiment
from stcast.errors import StcastError
from stcast.models.registry import get_model_class
from stcast.task import Task


@dataclass
class BenchReport:
    config: BenchConfig
    results: list  # ExperimentResult, or StoredRow for rows finished before a resume
    data: dict  # dataset name -> SpatioTemporalData
    environments: dict = field(default_factory=dict)  # "dataset model" -> where the row ran (None: not recorded)

    def rows(self) -> list[dict]:
        return [r.row() for r in self.results]

    def environment_lines(self) -> list[str]:
        """Where the rows were computed, for the Markdown table: one line, or one per environment with its rows
        (a table resumed in another environment, or rows finished before environments were recorded)."""
        groups: dict[str, list[str]] = {}
        for row, env in self.environments.items():
            groups.setdefault(describe_environment(env), []).append(row)
        if len(groups) <= 1:  # one environment (or no rows)
            return [f"Run in: {env}." for env in groups]
        return [f"Rows ran in {len(groups)} environments (same-seed reruns differ across environments):"] + \
            [f"- {', '.join(rows)}: {env}" for env, rows in groups.items()]


def run_benchmark(cfg: BenchConfig, data_dir=None, collect: bool = True, log=print, rows_csv=None,
                  resume: bool = False, overwrite: bool = False) -> BenchReport:
    """Every model on every dataset. With `rows_csv`, the rows finished so far are rewritten there after each
    one, and the run keeps a state beside it (bench/resume.py): with `resume`, finished rows are kept and the row
    that was running continues from its last epoch checkpoint; an earlier run of the same name is discarded only
    with `overwrite`."""
    state = RunState(rows_csv, cfg, resume, overwrite) if rows_csv is not None else None
    try:
        return _run_rows(cfg, data_dir, collect, log, rows_csv, state)
    finally:  # the table's lock goes however the run ends (finished, an error, Ctrl-C)
        if state is not None:
            state.release()


def _run_rows(cfg: BenchConfig, data_dir, collect: bool, log, rows_csv, state: RunState | None) -> BenchReport:
    """run_benchmark's rows, with the run state (and its lock) held by the caller."""
    results, data, environments = [], {}, {}
    here = state.environment if state is not None else environment()
    if state is not None and state.note:
        log(f"  {state.note}")

    def load(name):
        if is_table_path(name):
            from stcast.data.user_tables import load_user_table

            d = load_user_table(name, **cfg.tables.get(name, {}))
        else:
            d = load_dataset(name, data_dir)
        if cfg.cluster is not None:
            from stcast.data.transforms import cluster_nodes

            d = cluster_nodes(d, **cfg.cluster)
        return d

    target = load(cfg.transfer_to) if cfg.transfer_to else None
    total, done, t_start = len(cfg.datasets) * len(cfg.models), 0, time.time()
    steps_of: dict[str, tuple[int, ...]] = {}  # per dataset: the per-step columns its horizon has
    for ds in cfg.datasets:
        d = load(ds)
        data[ds] = d
        for m in cfg.models:
            cls = get_model_class(cfg.base_model(m))
            task = Task.parse(cfg.task).scored.value
            if task not in cls.tasks:
                log(f"  skip {m}: it does not support {task}")
                total -= 1
                continue
            t0 = time.time()
            stored = state.finished(ds, m) if state is not None else None
            if stored is not None:  # finished before the run was stopped: kept, not re-run
                results.append(StoredRow(stored))
                environments[f"{ds} {m}"] = state.environments.get(state.key(ds, m))
                done += 1
                log(f"  [{done}/{total}] {ds} {m}: MAE {stored.get('mae', float('nan')):.4f} (finished earlier)")
                continue
            train = cfg.train_config(m)
            if state is not None:
                train = state.train_config(train, ds, m)
                if train.resume:
                    log(f"  {ds} {m}: continues from its last epoch checkpoint ({train.checkpoint})")
            exp = Experiment(cfg.base_model(m), d, task=cfg.task, input_len=cfg.input_len, horizon=cfg.horizon,
                             split=cfg.split,
                             protocol=cfg.protocol, missing=cfg.missing, missing_kw=cfg.missing_kw,
                             few_shot_fraction=cfg.few_shot_of(m), model_kw=cfg.model_kwargs(m),
                             train=train, quantiles=cfg.quantiles, eval_stride=cfg.eval_stride,
                             context_len=cfg.context_len_of(m), val_stride=cfg.val_stride_of(m))
            if ds not in steps_of:  # checked before the dataset's first row trains; a note once, not per row
                steps_of[ds] = _steps_within(cfg, exp.horizon, log)
            res = exp.run(collect=collect and target is None, steps=steps_of[ds])
            if target is not None:
                res = exp.evaluate_zero_shot(target, steps=steps_of[ds])
            res.model = m  # the variant's label in the tables
            results.append(res)
            environments[f"{ds} {m}"] = here
            if rows_csv is not None:
                _write_rows([r.row() for r in results], Path(rows_csv))
                if is_global_zero():
                    if res.predictions:  # per-window errors for paired tests (bench/paired.py), before the row counts
                        state.save_window_errors(ds, m, res.predictions,
                                                 {"model": m, "dataset": ds, "task": res.task,
                                                  "steps_per_day": d.meta.steps_per_day, "mae": res.metrics["mae"],
                                                  "seed": train.seed, "table": cfg.name})
                    state.finish(ds, m, res.row(), train)
            done += 1
            log(f"  [{done}/{total}] {ds} {m}: MAE {res.metrics['mae']:.4f} ({time.time() - t0:.1f}s)"
                f"{_eta(time.time() - t_start, done, total)}")
    if state is not None and is_global_zero():
        state.close()
    return BenchReport(cfg, results, data, environments)


def _steps_within(cfg: BenchConfig, horizon: int, log) -> tuple[int, ...]:
    """The per-step columns a forecast can have: steps the user asked for beyond the horizon are an error (they
    would vanish from the table); the default steps are cut to the horizon, with a note."""
    steps = tuple(cfg.steps)
    beyond = [s for s in steps if s > horizon]
    if Task.parse(cfg.task).scored is not Task.FORECAST or not beyond:
        return steps
    if list(steps) != DEFAULT_STEPS:
        raise StcastError(f"steps {beyond} lie beyond the horizon ({horizon}); report steps 1 to {horizon}")
    kept = tuple(s for s in steps if s <= horizon) or (horizon,)
    log(f"  note: horizon {horizon}: per-step columns at steps {', '.join(map(str, kept))}")
    return kept


def _write_rows(rows: list[dict], path: Path) -> None:
    if not is_global_zero():  # a distributed run: rank 0 writes
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    all_keys = list(dict.fromkeys(k for r in rows for k in r))
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=all_keys)
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)


def write_results(report: BenchReport, out_dir, plot: bool = True) -> dict[str, Path]:
    out_dir = Path(out_dir)
    if not is_global_zero():  # a distributed run: rank 0 writes
        return {}
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = report.rows()
    cols = table_columns(rows, report.config.steps)
    paths = {"csv": out_dir / f"{report.config.name}.csv", "md": out_dir / f"{report.config.name}.md"}
    _write_rows(rows, paths["csv"])
    paths["md"].write_text("\n\n".join(x for x in [markdown_table(rows, cols), "\n".join(report.environment_lines())]
                                        if x) + "\n")
    first = report.data.get(report.config.datasets[0]) if report.config.datasets else None
    if plot and first is not None and any(r.predictions and r.dataset == first.meta.name for r in report.results):
        from stcast.bench.plots import plot_report

        paths["png"] = plot_report(report, out_dir / f"{report.config.name}.png")
    return paths


def _eta(elapsed: float, done: int, total: int) -> str:
    """`, about 12 min left`: the mean time of the rows so far times the rows to go (a rough guide: rows differ)."""
    if done >= total or done == 0:
        return ""
    left = elapsed / done * (total - done)
    return f", about {left / 60:.0f} min left" if left >= 90 else f", about {left:.0f} s left"
