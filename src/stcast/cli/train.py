"""`stcast train` (one model on one dataset, saved as a model file) and `stcast evaluate` (a model file scored)."""

from __future__ import annotations

import sys
from pathlib import Path

from stcast import config
from stcast.cli.common import (
    check_writable,
    data_args,
    dataset_source,
    load_saved,
    positive_int,
    reading_options,
    resolve_dataset,
    train_args,
    train_config,
    train_settings,
)
from stcast.engine.checkpoint import check_data_fits
from stcast.errors import StcastError
from stcast.task import Task


def cmd_train(args) -> int:
    from stcast.engine.checkpoint import save_model
    from stcast.engine.experiment import Experiment
    from stcast.metrics import nothing_scored

    source = args.config or "--set"
    raw = config.load(args.config, args.set)
    _refuse_benchmark_keys(raw, source)
    warm = _warm_start(args) if args.init_from else None
    if not args.model:
        raise StcastError("train needs --model NAME (or --init-from a model file to fine-tune)")
    train_raw, model_kw = train_settings(raw, args.model, source)
    if warm is not None:
        if model_kw:
            raise StcastError(f"--init-from {args.init_from}: a warm start keeps the saved model's hyper-parameters; "
                              f"drop the model_kw settings ({', '.join(model_kw)})")
        model_kw = warm["hparams"]
    if args.checkpoint and not (args.resume or args.overwrite) and Path(args.checkpoint).is_file():
        # a rerun that forgot --resume would start over and write its first epoch over the stopped run's state
        raise StcastError(f"--checkpoint {args.checkpoint} holds an earlier run's training state; pass --resume to "
                          "continue it, --overwrite to start over and replace it, or give another --checkpoint")
    for path, what in ((args.out, "--out"), (args.checkpoint, "--checkpoint"), (args.log_csv, "--log-csv")):
        if path:
            check_writable(path, what)
    data = resolve_dataset(args.dataset, args, warm["info"]["protocol"].get("reading") if warm else None)
    train = train_config(args, train_raw, source)
    train.checkpoint = args.checkpoint
    train.resume = args.resume
    train.log_csv = args.log_csv
    extra = {}
    if warm is not None:  # the saved model's shape and scaling; its weights as the starting point
        check_data_fits(warm["model"], data, warm["info"])
        spec = warm["model"].spec
        extra = dict(init_state=warm["model"].state_dict(), scaler=warm["scaler"])
        args.task, args.input_len, args.horizon = Task.parse(warm["info"]["task"]), spec.input_len, spec.horizon
        args.quantiles = list(spec.quantiles) or None
    proto = _protocol_settings(args, raw, source, warm_from=args.init_from if warm is not None else None)
    exp = Experiment(args.model, data, task=proto["task"], input_len=proto["input_len"], horizon=proto["horizon"],
                     split=proto["split"], protocol=proto["protocol"], missing=proto["missing"],
                     missing_kw=proto["missing_kw"], model_kw=model_kw, few_shot_fraction=proto["few_shot"],
                     train=train, quantiles=proto["quantiles"] or (), context_len=proto["context_len"],
                     eval_stride=proto["eval_stride"], val_stride=proto["val_stride"], **extra)
    res = exp.run()
    from stcast.bench.tables import print_results

    row = res.row()
    print_results([row], (3, 6, 12), wide=args.wide)
    if (msg := nothing_scored(res.metrics)) is not None:
        print(f"stcast: warning: test split of {data.meta.name}: {msg}", file=sys.stderr)
    if args.out:
        record = exp.protocol_record(dataset_source(args.dataset))
        if warm is not None:  # a fine-tuned model keeps reading its table as the saved one did, unless told here
            record["reading"] = {**warm["info"]["protocol"].get("reading", {}), **reading_options(args)}
        else:
            record["reading"] = reading_options(args)  # how the table was read, reused by evaluate / forecast
        save_model(args.out, exp.model, model_kw, exp.splits.scaler, data.meta.name, exp.task, protocol=record)
        print(f"model written to {args.out}")
    return 0


def _warm_start(args) -> dict:
    """The model file `--init-from` names: its model (the same as --model, when given), weights and scaler."""
    from stcast.engine.checkpoint import load_model

    model, scaler, info = load_model(args.init_from)
    if args.model and args.model != info["model"]:
        raise StcastError(f"--init-from {args.init_from} holds a {info['model']} model, not {args.model}")
    args.model = info["model"]
    return {"model": model, "scaler": scaler, "info": info, "hparams": info["hparams"]}


def cmd_evaluate(args) -> int:

    from stcast.engine.scoring import score_saved
    from stcast.metrics import nothing_scored

    if args.errors_out:
        if not str(args.errors_out).lower().endswith(".npz"):  # numpy arrays, not a table a user would open
            raise StcastError(f"--errors-out {args.errors_out}: per-window errors are written as .npz (read by "
                              "`stcast compare`); name the file e.g. errors.npz")
        check_writable(args.errors_out, "--errors-out")
    model, scaler, info, data, record = load_saved(args)
    # the model's own scaler (fitted on its training data); multitask: forecast on unhidden inputs + impute_mae
    m, _, _ = score_saved(model, scaler, data, record, refit_statistics=True, collect=bool(args.errors_out))
    if args.errors_out:  # per-window errors for `stcast compare`
        from stcast.bench.paired import save_window_errors
        from stcast.engine.environment import environment

        preds = {k: m.pop(k) for k in ("pred", "truth", "mask", "starts")}
        for key in ("band", "band_levels"):  # the plots' interval band: not a figure to print
            m.pop(key, None)
        save_window_errors(args.errors_out, preds, {"model": info["model"], "dataset": data.meta.name,
                                                    "task": Task.parse(record.get("task", "forecast")).value,
                                                    "steps_per_day": data.meta.steps_per_day, "mae": m["mae"],
                                                    "model_file": str(args.model_file),
                                                    # the figures are the weights': where they were trained
                                                    # (a model file from before this was recorded: unknown)
                                                    "environment": info.get("environment"),
                                                    "scored_in": environment()})
    from stcast.bench.tables import print_results, table_columns

    row = {"model": info["model"], "dataset": data.meta.name, **m}
    if args.wide:
        from stcast.bench.tables import print_table

        print_table([row], table_columns([row], (3, 6, 12))[:-4])
    else:
        print_results([row], (3, 6, 12))
    if (msg := nothing_scored(m)) is not None:
        print(f"stcast: warning: test split of {data.meta.name}: {msg}", file=sys.stderr)
    return 0


# A config's settings of the protocol (how the data is cut, hidden and scored) that one `train` run uses as well:
# config key -> its flag (None: no flag). A flag given on the command line wins over the config, said when they
# differ; a key in neither takes the built-in default. (Before, `train --config` read only `train`, `model_train`
# and `model_kw`, and a config's `split: 6:2:2` or `input_len: 24` was silently replaced by the defaults.)
PROTOCOL_KEYS = {"task": "task", "input_len": "input_len", "horizon": "horizon", "split": "split",
                 "protocol": "protocol", "missing": "missing", "few_shot": "few_shot", "quantiles": "quantiles",
                 "missing_kw": None, "context_len": None, "eval_stride": None, "val_stride": None}
# keys that shape a table of runs, not one run: `train` cannot honour them, and says so rather than drop them
BENCHMARK_ONLY = ("cluster", "transfer_to")


def _protocol_settings(args, raw: dict, source: str, warm_from: str | None = None) -> dict:
    """The protocol of one `train` run: flags, then the config, then the defaults. In a warm start the saved
    model's task, window and quantiles are fixed by its weights (set on `args` from the model file)."""
    import warnings

    from stcast.config import BenchConfig

    given = {k: raw[k] for k in PROTOCOL_KEYS if k in raw}
    cfg = BenchConfig.from_dict(given, source) if given else None  # types and ranges, named by the config
    out = {}
    for key, flag in PROTOCOL_KEYS.items():
        value = getattr(args, flag) if flag else None
        if key in given:
            from_cfg = getattr(cfg, key)
            if key == "task":
                from_cfg = Task.parse(from_cfg)
            if value is not None and value != from_cfg and not (key == "quantiles" and list(value) == from_cfg):
                who = (f"the saved model {warm_from} (trained with {key} {value}) fixes it"
                       if warm_from and key in ("task", "input_len", "horizon", "quantiles")
                       else f"--{flag.replace('_', '-')} {value} overrides it")
                warnings.warn(f"{source}'s {key}: {from_cfg} is not used: {who}", stacklevel=2)
            elif value is None:
                value = from_cfg
        out[key] = value
    out["task"] = out["task"] or Task.FORECAST
    out["missing"] = out["missing"] or "point"
    out["eval_stride"] = out["eval_stride"] or 1
    return out


def _refuse_benchmark_keys(raw: dict, source: str) -> None:
    """Before any data is read: keys that only a benchmark table can honour."""
    unused = [k for k in BENCHMARK_ONLY if raw.get(k) is not None]
    if unused:
        raise StcastError(f"{source}: {', '.join(unused)} shape(s) a benchmark table; `stcast train` cannot apply "
                          f"them to one run: use `stcast benchmark --config`, or drop the key(s)")


def register(sub) -> None:
    sp = sub.add_parser("train", help="train one model on one dataset, report test metrics, save it")
    sp.add_argument("--model", default=None, help="a registered model (stcast models); with --init-from: optional")
    sp.add_argument("--init-from", default=None, metavar="MODEL_FILE",
                    help="fine-tune a saved model on --dataset: its weights, hyper-parameters, windows and scaler")
    sp.add_argument("--dataset", required=True, help="registered name or a CSV/Parquet path")
    sp.add_argument("--task", default=None, type=Task.parse, choices=list(Task), help="default: forecast")
    sp.add_argument("--input-len", type=positive_int, default=None)
    sp.add_argument("--horizon", type=positive_int, default=None)
    sp.add_argument("--split", default=None)
    sp.add_argument("--protocol", default=None)
    sp.add_argument("--missing", default=None, choices=["point", "block"], help="default: point")
    sp.add_argument("--few-shot", type=float, default=None)
    sp.add_argument("--out", default=None, help="write the trained model here (.pt)")
    sp.add_argument("--checkpoint", default=None, help="training checkpoint (for --resume)")
    sp.add_argument("--resume", action="store_true", help="continue the run saved in --checkpoint")
    sp.add_argument("--overwrite", action="store_true", help="start over where --checkpoint holds an earlier run")
    sp.add_argument("--log-csv", default=None)
    sp.add_argument("--wide", action="store_true", help="print every column (default: a table that fits the console)")
    data_args(sp)
    train_args(sp)
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("evaluate", help="evaluate a saved model on a dataset's test split")
    sp.add_argument("--model-file", required=True)
    sp.add_argument("--dataset", default=None)
    sp.add_argument("--split", default=None, help="default: the split the model was trained with")
    sp.add_argument("--protocol", default=None, help="default: the protocol the model was trained with")
    sp.add_argument("--missing", default=None, choices=["point", "block"])
    sp.add_argument("--wide", action="store_true", help="print every column (default: a table that fits the console)")
    sp.add_argument("--errors-out", default=None,
                    help="write the per-window test errors (.npz) for `stcast compare`")
    data_args(sp)
    sp.set_defaults(func=cmd_evaluate)
