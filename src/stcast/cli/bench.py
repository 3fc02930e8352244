"""`stcast benchmark` (models x datasets -> tables, CSV, Markdown, a plot) and `stcast demo` (the embedded default)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from stcast import config
from stcast.cli.common import PLACEMENT_FLAGS, bundled_config, check_writable, data_args, positive_int, train_args
from stcast.data.registry import is_table_path
from stcast.errors import StcastError
from stcast.task import Task


def cmd_benchmark(args) -> int:
    from stcast.config import BenchConfig

    raw = config.read_yaml(args.config)
    for key in ("models", "datasets", "task", "protocol", "missing", "split", "input_len", "horizon", "quantiles"):
        v = getattr(args, key, None)
        if v is not None:
            raw[key] = v
    for key in ("epochs", "batch_size", "max_minutes", "seed") + PLACEMENT_FLAGS:
        v = getattr(args, key, None)
        if v is not None:
            raw.setdefault("train", {})[key] = v
    raw = config.apply_overrides(raw, args.set)

    # table flags (--layout, --time-col, --adjacency, --null-value, ...) apply to every table path in --datasets
    flags = {k: getattr(args, k) for k in ("layout", "time_col", "node_col", "value_col", "channel_col", "adjacency",
                                           "null_value", "step_minutes") if getattr(args, k, None) is not None}
    datasets = raw.get("datasets") or []
    names = [s.strip() for s in datasets.split(",")] if isinstance(datasets, str) else datasets
    tables = [d for d in names if isinstance(d, str) and is_table_path(d)]
    for d in tables if flags else []:
        raw.setdefault("tables", {}).setdefault(d, {}).update(flags)
    if flags and not tables:  # table flags given for registered datasets only: never silently ignored
        given = ", ".join("--" + k.replace("_", "-") for k in flags)
        raise StcastError(f"{given}: for tables of your own (.csv / .parquet paths in --datasets); "
                          f"{', '.join(map(str, names)) or 'the config'} names registered datasets only")
    cfg = BenchConfig.from_dict(raw, source=args.config or "command line")
    return _run_and_report(cfg, args.out_dir, args.data_dir, args.wide, args.resume, args.overwrite)


def _run_and_report(cfg, out_dir, data_dir=None, wide: bool = False, resume: bool = False,
                    overwrite: bool = False) -> int:
    from stcast.bench.runner import run_benchmark, write_results
    from stcast.bench.tables import print_report

    print(f"stcast benchmark '{cfg.name}': {', '.join(cfg.models)} on {', '.join(cfg.datasets)} "
          f"({cfg.task}), torch threads {torch.get_num_threads()}")
    rows_csv = Path(out_dir) / f"{cfg.name}.csv"
    check_writable(rows_csv, "--out-dir")  # before hours of training, not after
    # rows kept on disk as they finish
    report = run_benchmark(cfg, data_dir, rows_csv=rows_csv, resume=resume, overwrite=overwrite)
    print()
    print_report(report.rows(), report.config.steps, wide=wide)
    for line in _winner_paired(report.rows(), rows_csv, report.config.steps):
        print(line)
    paths = write_results(report, out_dir)
    print("\n" + "\n".join(f"{k}: {v}" for k, v in paths.items()))
    return 0


def _winner_paired(rows: list[dict], rows_csv: Path, steps=()) -> list[str]:
    """Per dataset: is the winner's lead over the runner-up more than which test windows were scored? (the paired
    test of `stcast compare`, from the rows' per-window errors; nothing where a row kept none), pooled and at each
    of the table's reported `steps`."""
    from stcast.bench.paired import load_window_errors, summary, window_errors_path
    from stcast.bench.tables import ranked

    out = []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        scored = ranked(rows, ds)
        files = [window_errors_path(rows_csv, ds, r["model"]) for r in scored[:2]]
        if len(files) < 2 or not all(f.is_file() for f in files):
            continue
        try:
            line, *note = summary([load_window_errors(files[0])], [load_window_errors(files[1])], steps)
        except StcastError:
            continue  # rows of other protocols in one table: no pair to test
        out.append(f"  {scored[0]['model']} against the runner-up {scored[1]['model']}, {line}")
        out += [f"  {n}" for n in note]  # a table resumed in another environment
    return out


def cmd_runs(args) -> int:
    from stcast.bench.runs import board, survey

    print(board(survey(args.folders), rows=args.rows))
    return 0


def cmd_merge(args) -> int:
    from stcast.bench.paired import windows_dir
    from stcast.bench.resume import merge_tables

    check_writable(args.out)
    path, copied = merge_tables(args.parts, args.out)
    print(f"wrote {path}" + (f" (and the per-window errors of {copied} row{'s' * (copied != 1)} in "
                             f"{windows_dir(path)})" if copied else ""))
    return 0


def cmd_compare(args) -> int:
    from stcast.bench.paired import describe, load_window_errors, paired_test, step_table

    a = [load_window_errors(p) for p in args.runs]
    b = [load_window_errors(p) for p in args.against]
    pooled = describe(paired_test(a, b, step=args.step, lag=args.lag))
    # the same test at each step, a table to paste beside the results (checked before anything is printed)
    steps = "" if args.steps is None else "\n\n" + step_table(a, b, None if args.steps == "all" else args.steps,
                                                              lag=args.lag)
    print(pooled + steps)
    return 0


def _steps(text: str):
    """`--steps 3,6,12` or `--steps all`."""
    if text.strip().lower() == "all":
        return "all"
    try:
        steps = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        steps = []
    if not steps or min(steps) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give output steps as 3,6,12 (1-based), or all")
    return list(dict.fromkeys(steps))


def cmd_demo(args) -> int:
    from stcast.config import BenchConfig

    cfg = BenchConfig.from_yaml(bundled_config("demo"))
    if args.quick:  # every model, one short epoch: checks the pipeline end to end in seconds
        cfg.model_train = {k: v for k, v in cfg.model_train.items() if v.get("epochs") == 0}  # zero-shot stays
        cfg.train.update(epochs=1, max_batches_per_epoch=5)
        cfg.name = "demo-quick"
    return _run_and_report(cfg, args.out_dir, wide=args.wide, overwrite=True)  # a demo is minutes: rerun it at will


def register(sub) -> None:
    sp = sub.add_parser("benchmark", help="models x datasets -> table, CSV, Markdown and a plot")
    sp.add_argument("--models", default=None, help="comma-separated")
    sp.add_argument("--datasets", default=None, help="comma-separated")
    sp.add_argument("--task", default=None, type=Task.parse, choices=list(Task))
    sp.add_argument("--protocol", default=None)
    sp.add_argument("--missing", default=None, choices=["point", "block"])
    sp.add_argument("--split", default=None)
    sp.add_argument("--input-len", type=positive_int, default=None)
    sp.add_argument("--horizon", type=positive_int, default=None)
    sp.add_argument("--out-dir", default="results")
    sp.add_argument("--wide", action="store_true", help="print every column (default: a table that fits the console)")
    sp.add_argument("--resume", action="store_true",
                    help="continue a stopped run (same config and --out-dir): finished rows are kept, the row that "
                         "was running continues from its last epoch checkpoint")
    sp.add_argument("--overwrite", action="store_true",
                    help="discard an earlier run of the same name in --out-dir (its rows and checkpoint); without "
                         "it, or --resume, such a run is an error, never silently replaced")
    data_args(sp)
    train_args(sp)
    sp.set_defaults(func=cmd_benchmark)

    sp = sub.add_parser("merge", help="partial benchmark CSVs of one table (e.g. --models split over processes) "
                                      "into one")
    sp.add_argument("parts", nargs="+", help="the partial CSVs")
    sp.add_argument("--out", required=True, help="the merged CSV")
    sp.set_defaults(func=cmd_merge)

    sp = sub.add_parser("runs", help="where the benchmark tables under a folder stand: rows done, the row in "
                                     "progress (its epoch), rows to run, whether a process writes it now")
    sp.add_argument("folders", nargs="*", default=["results"], help="--out-dir folders (searched below; default "
                                                                    "results)")
    sp.add_argument("--rows", action="store_true", help="also every finished row with its MAE")
    sp.set_defaults(func=cmd_runs)

    sp = sub.add_parser("compare", help="paired test of two models over the same test windows (Diebold-Mariano, "
                                        "per-day t): their per-window errors from <name>.windows/ or --errors-out")
    sp.add_argument("runs", nargs="+", help="model A's per-window error files (.npz; several: seeds, averaged)")
    sp.add_argument("--against", nargs="+", required=True, help="model B's files")
    sp.add_argument("--step", type=positive_int, default=None, help="one output step (default: all steps pooled)")
    sp.add_argument("--steps", type=_steps, default=None, metavar="3,6,12|all",
                    help="also the test at each of these output steps, as a Markdown table")
    sp.add_argument("--lag", type=int, default=None,
                    help="Newey-West lag in windows (default: one day of windows)")
    sp.set_defaults(func=cmd_compare)

    sp = sub.add_parser("demo", help="the embedded default job: baselines, STID, U-STS-LLM and FactoST-v2 zero-shot "
                                     "on the bundled Los-loop data, a table and a plot")
    sp.add_argument("--out-dir", default="results/demo")
    sp.add_argument("--wide", action="store_true", help="print every column (default: a table that fits the console)")
    sp.add_argument("--quick", action="store_true", help="a smoke run (one short epoch per model)")
    sp.set_defaults(func=cmd_demo)
