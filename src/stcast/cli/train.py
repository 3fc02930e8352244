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
    resolve_dataset,
    train_args,
    train_config,
    train_settings,
)
from stcast.task import Task


def cmd_train(args) -> int:
    from stcast.engine.checkpoint import save_model
    from stcast.engine.experiment import Experiment
    from stcast.metrics import nothing_scored

    source = args.config or "--set"
    raw = config.load(args.config, args.set)
    train_raw, model_kw = train_settings(raw, args.model, source)
    for path, what in ((args.out, "--out"), (args.checkpoint, "--checkpoint"), (args.log_csv, "--log-csv")):
        if path:
            check_writable(path, what)
    data = resolve_dataset(args.dataset, args)
    train = train_config(args, train_raw, source)
    train.checkpoint = args.checkpoint
    train.resume = args.resume
    train.log_csv = args.log_csv
    exp = Experiment(args.model, data, task=args.task, input_len=args.input_len, horizon=args.horizon,
                     split=args.split, protocol=args.protocol, missing=args.missing, model_kw=model_kw,
                     few_shot_fraction=args.few_shot, train=train, quantiles=args.quantiles or ())
    res = exp.run()
    from stcast.bench.tables import print_results

    row = res.row()
    print_results([row], (3, 6, 12), wide=args.wide)
    if (msg := nothing_scored(res.metrics)) is not None:
        print(f"stcast: warning: test split of {data.meta.name}: {msg}", file=sys.stderr)
    if args.out:
        save_model(args.out, exp.model, model_kw, exp.splits.scaler, data.meta.name, exp.task,
                   protocol=exp.protocol_record(dataset_source(args.dataset)))
        print(f"model written to {args.out}")
    return 0


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
    sp.add_argument("--model", required=True)
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
