"""`stcast train` (one model on one dataset, saved as a model file) and `stcast evaluate` (a model file scored)."""

from __future__ import annotations

import sys

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
    warm = _warm_start(args) if args.init_from else None
    if not args.model:
        raise StcastError("train needs --model NAME (or --init-from a model file to fine-tune)")
    train_raw, model_kw = train_settings(raw, args.model, source)
    if warm is not None:
        if model_kw:
            raise StcastError(f"--init-from {args.init_from}: a warm start keeps the saved model's hyper-parameters; "
                              f"drop the model_kw settings ({', '.join(model_kw)})")
        model_kw = warm["hparams"]
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
    exp = Experiment(args.model, data, task=args.task, input_len=args.input_len, horizon=args.horizon,
                     split=args.split, protocol=args.protocol, missing=args.missing, model_kw=model_kw,
                     few_shot_fraction=args.few_shot, train=train, quantiles=args.quantiles or (), **extra)
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

    model, scaler, info, data, record = load_saved(args)
    # the model's own scaler (fitted on its training data); multitask: forecast on unhidden inputs + impute_mae
    m, _, _ = score_saved(model, scaler, data, record, refit_statistics=True)
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


def register(sub) -> None:
    sp = sub.add_parser("train", help="train one model on one dataset, report test metrics, save it")
    sp.add_argument("--model", default=None, help="a registered model (stcast models); with --init-from: optional")
    sp.add_argument("--init-from", default=None, metavar="MODEL_FILE",
                    help="fine-tune a saved model on --dataset: its weights, hyper-parameters, windows and scaler")
    sp.add_argument("--dataset", required=True, help="registered name or a CSV/Parquet path")
    sp.add_argument("--task", default=Task.FORECAST, type=Task.parse, choices=list(Task))
    sp.add_argument("--input-len", type=positive_int, default=None)
    sp.add_argument("--horizon", type=positive_int, default=None)
    sp.add_argument("--split", default=None)
    sp.add_argument("--protocol", default=None)
    sp.add_argument("--missing", default="point", choices=["point", "block"])
    sp.add_argument("--few-shot", type=float, default=None)
    sp.add_argument("--out", default=None, help="write the trained model here (.pt)")
    sp.add_argument("--checkpoint", default=None, help="training checkpoint (for --resume)")
    sp.add_argument("--resume", action="store_true")
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
    data_args(sp)
    sp.set_defaults(func=cmd_evaluate)
