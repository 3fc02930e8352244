"""Run a grid of models x datasets under one protocol and budget; tables as text, CSV and Markdown.

Every model in a grid sees the same windows, scaler, seed and training budget, in the same process,
so the figures (and their ratios) are comparable.
"""

from __future__ import annotations

import csv
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

from stcast import config
from stcast.data.registry import get_info, load_dataset
from stcast.engine.distributed import is_global_zero
from stcast.engine.experiment import Experiment, ExperimentResult
from stcast.engine.tasks import Task
from stcast.engine.trainer import TrainConfig
from stcast.errors import StcastError
from stcast.models.registry import get_model_class, model_names


@dataclass
class BenchConfig:
    """One benchmark. Loaded from YAML (`BenchConfig.from_yaml`), fields overridable from the CLI."""

    models: list[str] = field(default_factory=lambda: ["ha", "last-value", "stid"])
    datasets: list[str] = field(default_factory=lambda: ["los-loop"])
    task: str = "forecast"
    input_len: int | None = None
    horizon: int | None = None
    split: str | None = None
    protocol: str | None = None
    missing: str = "point"
    missing_kw: dict = field(default_factory=dict)
    few_shot: float | None = None
    eval_stride: int = 1  # every k-th validation/test window (ablations within a method; 1 = the protocol)
    steps: list[int] = field(default_factory=lambda: [3, 6, 12])
    quantiles: list[float] = field(default_factory=list)  # a quantile head for every model (nn/quantile.py)
    train: dict = field(default_factory=dict)  # TrainConfig fields
    model_kw: dict = field(default_factory=dict)  # model name -> hyper-parameters
    model_train: dict = field(default_factory=dict)  # model name -> TrainConfig overrides
    plot_node: int | None = None
    name: str = "benchmark"
    cluster: dict | None = None  # {k, by, reduce}: aggregate every dataset to k nodes (stcast.data.transforms)
    transfer_to: str | None = None  # zero-shot: train on each dataset, evaluate on this one without updates
    variants: dict = field(default_factory=dict)  # label -> {model: name, [few_shot: f], **hyper-parameters}
    # the user's own tables in `datasets` (CSV/Parquet paths): path -> how to read it (TABLE_OPTIONS)
    tables: dict = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, path) -> BenchConfig:
        return cls.from_dict(config.read_yaml(path), source=str(path))

    @classmethod
    def from_dict(cls, raw: dict, source: str = "config") -> BenchConfig:
        config.check_keys(raw, [f.name for f in fields(cls)], source)
        for key in ("models", "datasets"):
            if isinstance(raw.get(key), str):
                raw[key] = [s.strip() for s in raw[key].split(",") if s.strip()]
        _check_types(raw, source)
        cfg = cls(**raw)
        TrainConfig.from_dict(cfg.train, f"{source}: train")  # types, ranges and unknown keys, before any run
        for name, over in cfg.model_train.items():
            if not isinstance(over, dict):
                raise StcastError(f"{source}: model_train.{name} must be a mapping of training settings")
            TrainConfig.from_dict({**cfg.train, **over}, f"{source}: model_train.{name}")
        for label, v in cfg.variants.items():
            if not isinstance(v, dict) or "model" not in v:
                raise StcastError(f"{source}: variant {label!r} needs a 'model' key naming a registered model")
            get_model_class(v["model"])
            config.check_model_kw(v["model"], {k: x for k, x in v.items() if k not in ("model", "few_shot")},
                                  f"{source}: variants.{label}")
        for key, kw in cfg.model_kw.items():  # keyed by model name or variant label; every value checked now
            if key in cfg.variants:
                config.check_model_kw(cfg.variants[key]["model"], kw, f"{source}: model_kw")
            elif key in model_names():
                config.check_model_kw(key, kw, f"{source}: model_kw")
            else:
                raise StcastError(f"{source}: model_kw.{key}: not a model name or variant label"
                                  f"{config.did_you_mean(key, model_names() + list(cfg.variants))}")
        for m in cfg.models:
            if m not in cfg.variants:
                get_model_class(m)  # fail early on an unknown model
        for d in cfg.datasets + ([cfg.transfer_to] if cfg.transfer_to else []):
            if not is_table(d):
                get_info(d)
        for path, opts in cfg.tables.items():
            if not isinstance(opts, dict) or set(opts) - set(TABLE_OPTIONS):
                bad = sorted(set(opts) - set(TABLE_OPTIONS)) if isinstance(opts, dict) else opts
                raise StcastError(f"{source}: tables.{path}: unknown options {bad}; known: {', '.join(TABLE_OPTIONS)}")
        if cfg.cluster is not None and set(cfg.cluster) - {"k", "by", "reduce", "seed"}:
            raise StcastError(f"{source}: cluster takes k, by, reduce, seed; got {sorted(cfg.cluster)}")
        return cfg

    def base_model(self, label: str) -> str:
        return self.variants[label]["model"] if label in self.variants else label

    def few_shot_of(self, label: str) -> float | None:
        """A variant's own few-shot fraction (`few_shot: 0.1`, or null for full-shot), else the config's."""
        return self.variants[label].get("few_shot", self.few_shot) if label in self.variants else self.few_shot

    def model_kwargs(self, label: str) -> dict:
        """The base model's model_kw, then the variant's settings, then model_kw under the label itself."""
        own = {k: v for k, v in self.variants.get(label, {}).items() if k not in ("model", "few_shot")}
        return {**self.model_kw.get(self.base_model(label), {}), **own, **self.model_kw.get(label, {})} \
            if label in self.variants else dict(self.model_kw.get(label, {}))

    def train_config(self, model: str) -> TrainConfig:
        base = self.base_model(model)
        over = {**self.model_train.get(base, {}), **(self.model_train.get(model, {}) if model != base else {})}
        return TrainConfig(**{**self.train, **over})


_FIELD_TYPES = {"models": list, "datasets": list, "task": str, "input_len": int, "horizon": int, "split": (str, list),
                "protocol": str, "missing": str, "missing_kw": dict, "few_shot": (int, float),
                "eval_stride": int, "steps": list,
                "quantiles": list,
                "train": dict, "model_kw": dict, "model_train": dict, "plot_node": int, "name": str,
                "cluster": dict, "transfer_to": str, "variants": dict, "tables": dict}


def _check_types(raw: dict, source: str) -> None:
    """Each config field has the type it needs (YAML `epochs: ten` or `models: 3` stop here, named)."""
    for key, typ in _FIELD_TYPES.items():
        v = raw.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, typ):
            want = " or ".join(t.__name__ for t in (typ if isinstance(typ, tuple) else (typ,)))
            raise StcastError(f"{source}: {key} must be a {want}; got {v!r}")
        if key in ("input_len", "horizon", "plot_node", "eval_stride") and v < (0 if key == "plot_node" else 1):
            raise StcastError(f"{source}: {key} must be >= 1; got {v}")
        if key in ("models", "datasets") and not all(isinstance(x, str) for x in v):
            raise StcastError(f"{source}: {key} must be a list of names; got {v!r}")
        if key == "steps" and not all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in v):
            raise StcastError(f"{source}: steps must be a list of horizon steps >= 1; got {v!r}")
        if key == "few_shot" and not 0 < v <= 1:
            raise StcastError(f"{source}: few_shot must be a fraction in (0, 1]; got {v}")


TABLE_OPTIONS = ("name", "layout", "time_col", "node_col", "value_col", "channel_col", "adjacency", "null_value",
                 "step_minutes")


def is_table(spec: str) -> bool:
    """A path to the user's own CSV/Parquet table rather than a registered dataset name."""
    return Path(spec).suffix.lower() in (".csv", ".parquet", ".pq", ".gz") or Path(spec).is_file()


@dataclass
class BenchReport:
    config: BenchConfig
    results: list[ExperimentResult]
    data: dict  # dataset name -> SpatioTemporalData

    def rows(self) -> list[dict]:
        return [r.row() for r in self.results]


def run_benchmark(cfg: BenchConfig, data_dir=None, collect: bool = True, log=print, rows_csv=None) -> BenchReport:
    """Every model on every dataset. With `rows_csv`, the rows finished so far are rewritten there after each
    one, so a crash or a kill late in a long run loses only the row in progress."""
    results, data = [], {}

    def load(name):
        if is_table(name):
            from stcast.data.loaders import load_user_table

            d = load_user_table(name, **cfg.tables.get(name, {}))
        else:
            d = load_dataset(name, data_dir)
        if cfg.cluster is not None:
            from stcast.data.transforms import cluster_nodes

            d = cluster_nodes(d, **cfg.cluster)
        return d

    target = load(cfg.transfer_to) if cfg.transfer_to else None
    for ds in cfg.datasets:
        d = load(ds)
        data[ds] = d
        for m in cfg.models:
            cls = get_model_class(cfg.base_model(m))
            task = Task.parse(cfg.task).scored.value
            if task not in cls.tasks:
                log(f"  skip {m}: it does not support {task}")
                continue
            t0 = time.time()
            exp = Experiment(cfg.base_model(m), d, task=cfg.task, input_len=cfg.input_len, horizon=cfg.horizon,
                             split=cfg.split,
                             protocol=cfg.protocol, missing=cfg.missing, missing_kw=cfg.missing_kw,
                             few_shot_fraction=cfg.few_shot_of(m), model_kw=cfg.model_kwargs(m),
                             train=cfg.train_config(m), quantiles=cfg.quantiles, eval_stride=cfg.eval_stride)
            res = exp.run(collect=collect and target is None, steps=tuple(cfg.steps))
            if target is not None:
                res = exp.evaluate_zero_shot(target, steps=tuple(cfg.steps))
            res.model = m  # the variant's label in the tables
            results.append(res)
            if rows_csv is not None:
                _write_rows([r.row() for r in results], Path(rows_csv))
            log(f"  {ds:>14} {m:<15} MAE {res.metrics['mae']:.4f}  ({time.time() - t0:.1f}s)")
    return BenchReport(cfg, results, data)


# ----------------------------------------------------------------------------------------- tables


def table_columns(rows: list[dict], steps) -> list[str]:
    cols = ["dataset", "model"]
    for s in steps:
        cols += [c for c in (f"mae@{s}", f"rmse@{s}", f"mape@{s}") if any(c in r for r in rows)]
    cols += ["mae", "rmse", "mape"]
    if any("mre" in r and r.get("task") == "impute" for r in rows):
        cols.append("mre")
    # multi-task rows (U-STS-LLM eq. 15): the reconstruction error on the inputs the test windows hide
    cols += [c for c in ("impute_mae", "impute_rmse", "hidden_mae") if any(c in r for r in rows)]
    # quantile models (FactoST): CRPS and the empirical coverage of the central 80 % / 98 % intervals
    cols += [c for c in ("crps", "crps_norm", "coverage80", "coverage98") if any(c in r for r in rows)]
    cols += ["trainable_params", "total_params", "epochs"]
    cols += ["passes"] if any("passes" in r for r in rows) else []  # windows seen / training windows
    cols += ["s_per_epoch", "infer_ms_per_batch"]
    return cols


def _fmt(col: str, v) -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, float):
        if col.startswith(("mape", "coverage")) or col in ("mre", "crps_norm"):
            return f"{100 * v:.2f}%"
        return f"{v:.3f}" if abs(v) < 1e4 else f"{v:.3g}"
    return str(v)


def format_table(rows: list[dict], columns: list[str]) -> str:
    cells = [[_fmt(c, r.get(c)) for c in columns] for r in rows]
    width = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    line = "  ".join(c.rjust(w) for c, w in zip(columns, width))
    out = [line, "  ".join("-" * w for w in width)]
    out += ["  ".join(v.rjust(w) for v, w in zip(row, width)) for row in cells]
    return "\n".join(out)


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    out += ["| " + " | ".join(_fmt(c, r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(out)


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
    paths["md"].write_text(markdown_table(rows, cols) + "\n")
    first = report.data.get(report.config.datasets[0]) if report.config.datasets else None
    if plot and first is not None and any(r.predictions and r.dataset == first.meta.name for r in report.results):
        from stcast.bench.plots import plot_report

        paths["png"] = plot_report(report, out_dir / f"{report.config.name}.png")
    return paths


def print_table(rows: list[dict], columns: list[str], file=None) -> None:
    """A results table: drawn with rich on an interactive terminal, plain aligned text otherwise (logs, pipes
    and scripts that read it keep one header line, a rule and one line per row)."""
    file = file or sys.stdout
    if not file.isatty():
        print(format_table(rows, columns), file=file)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    for c in columns:
        table.add_column(c, justify="left" if c in ("dataset", "model", "task") else "right")
    for r in rows:
        table.add_row(*[_fmt(c, r.get(c)) for c in columns])
    Console(file=file).print(table)


def print_report(report: BenchReport, file=None) -> None:
    rows = report.rows()
    print_table(rows, table_columns(rows, report.config.steps), file)
    for line in winner_lines(rows):
        print(line, file=file or sys.stdout)


def winner_lines(rows: list[dict]) -> list[str]:
    """One line per dataset: the row with the lowest pooled MAE, and how far below the last-value baseline (or
    the runner-up) it is."""
    out = []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        scored = [r for r in rows if r["dataset"] == ds and isinstance(r.get("mae"), float) and r["mae"] == r["mae"]]
        if not scored:
            continue
        best = min(scored, key=lambda r: r["mae"])
        ref = next((r for r in scored if r["model"] == "last-value" and r is not best), None)
        if ref is None and len(scored) > 1:
            ref = sorted(scored, key=lambda r: r["mae"])[1]
        vs = f", {100 * (1 - best['mae'] / ref['mae']):.1f} % below {ref['model']} ({ref['mae']:.3f})" if ref else ""
        out.append(f"best on {ds}: {best['model']} (pooled MAE {best['mae']:.3f}){vs}")
    return out
