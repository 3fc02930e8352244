"""`stcast plot` (pictures) and `stcast describe` (LLM-TS Net's texts about a sensor and a window)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from stcast.cli.common import (
    check_node,
    check_writable,
    data_args,
    index_list,
    load_saved,
    non_negative_int,
    positive_float,
    positive_int,
    resolve_dataset,
)
from stcast.errors import StcastError


def cmd_plot(args) -> int:
    """`stcast plot WHAT`: a saved model's forecasts, imputations or errors; result CSVs; ST-VLM's correlation image."""
    if args.files and args.what != "results":
        raise StcastError(f"plot {args.what} takes no file arguments ({' '.join(args.files)}); result CSVs are for "
                          "`plot results`")
    out = args.out or f"{args.what}.png"
    if Path(out).suffix.lower() not in (".png", ".pdf", ".svg", ".jpg", ".jpeg"):
        raise StcastError(f"--out {out}: pictures are written as .png, .pdf, .svg or .jpg; "
                          f"{Path(out).suffix or 'no suffix'} is not one of them")
    check_writable(out)
    if args.what == "results":
        from stcast.bench.report import read_results
        from stcast.bench.report_plots import plot_results

        path = plot_results(read_results(args.files), out)
    elif args.what == "correlation":
        path = _plot_correlation(args, out)
    else:
        path = _plot_model(args, out)
    print(f"wrote {path}")
    return 0


def _plot_model(args, out: str):
    """forecast / imputation / errors of `--model-file` on its test split."""
    from stcast.bench import pictures
    from stcast.engine.scoring import evaluate, saved_test_windows
    from stcast.task import Task

    if not args.model_file:
        raise StcastError(f"plot {args.what} needs --model-file (a model saved by `stcast train --out`)")
    model, scaler, info, data, record = load_saved(args)
    task = Task.parse(info["task"])
    if args.what == "imputation" and task is Task.FORECAST:
        raise StcastError(f"{args.model_file} was trained to forecast; plot imputation needs a model trained with "
                          "--task impute or multitask")
    if args.what == "forecast" and task is Task.IMPUTE:
        raise StcastError(f"{args.model_file} was trained to impute; use plot imputation")
    test = saved_test_windows(model, scaler, data, record, refit_statistics=True)
    if task is Task.MULTITASK and args.what != "imputation":
        test = test.without_hiding()  # the forecast reads every observed input (eq. 15)
    output = "imputed" if task is Task.MULTITASK and args.what == "imputation" else "point"
    scored = evaluate(model, test, task=task.scored, collect=True, output=output, steps=())
    scored.update(starts=test.starts, input_len=model.spec.input_len)
    title = f"{info['model']}: "
    if args.what == "forecast":
        return pictures.plot_forecast(data, scored, out, args.node, args.step, args.days, title)
    if args.what == "imputation":
        return pictures.plot_imputation(data, scored, out, args.node, title=title)
    return pictures.plot_errors(data, scored, out, title)


def _plot_correlation(args, out: str):
    """ST-VLM's correlation image for chosen sensors and a window."""
    from stcast.bench.plots import plot_correlation

    channels, max_lag, input_len, scaler = ("dtw", "xcorr", "fft"), 3, 12, None
    spec = args.dataset
    if args.model_file:  # the model's own settings, data and scaler
        from stcast.engine.checkpoint import load_model

        model, scaler, info = load_model(args.model_file)
        hp = info["hparams"]
        channels, max_lag = tuple(hp.get("channels", channels)), hp.get("max_lag", max_lag)
        input_len = model.spec.input_len
        spec = spec or info["protocol"].get("source") or info["dataset"]
    if not spec:
        raise StcastError("plot correlation needs --dataset or --model-file")
    data = resolve_dataset(spec, args)
    nodes = index_list(args.nodes, "--nodes") if args.nodes else list(range(min(20, data.num_nodes)))
    return plot_correlation(data, nodes, args.start, args.input_len or input_len, channels, max_lag, out, scaler)


def cmd_report(args) -> int:
    """`stcast report RESULTS... --out docs/results.md`: the results page and its pictures, from result CSVs."""
    from pathlib import Path

    from stcast.bench import report, report_plots

    unranked: list[str] = []
    entries = report.read_results(args.files, unranked)
    for line in unranked:
        print(f"stcast: note: {line}")
    if Path(args.out).suffix.lower() != ".md":
        raise StcastError(f"--out {args.out}: the results page is Markdown (.md)")
    check_writable(args.out)
    figures_dir = Path(args.figures or Path(args.out).parent / "figures")
    figures = {}
    for name, file, draw in (("against STID", "reference", report_plots.plot_reference),
                             ("leaderboards", "leaderboards", report_plots.plot_leaderboards),
                             ("accuracy against training cost", "cost", report_plots.plot_cost),
                             ("what the language model adds", "backbones", report_plots.plot_backbones)):
        try:
            figures[name] = draw(entries, figures_dir / f"results-{file}.png")
        except StcastError as e:  # a picture the rows do not allow: said, the page still written
            print(f"stcast: note: no {name} picture: {e}")
    path = report.write_report(entries, args.out, figures,
                               f"stcast report {report.files_as_glob(args.files)} --out {args.out}", unranked)
    print(f"wrote {path} ({len(entries)} rows in {len(report.tables(entries))} tables) and "
          f"{len(figures)} pictures in {figures_dir}")
    return 0


def cmd_describe(args) -> int:
    """`stcast describe`: LLM-TS Net's trend descriptions of a sensor (and of one window), as a model reads them."""
    from stcast.data import descriptions as D

    if args.model_file:  # the texts stored in a trained llm-ts-net model
        from stcast.engine.checkpoint import load_model

        model, _, info = load_model(args.model_file)
        if not hasattr(model, "text_of") or not getattr(model, "use_text", False):
            raise StcastError(f"{args.model_file}: a {info['model']} model holds no descriptions (llm-ts-net does)")
        N = model.spec.num_nodes
        check_node(args.node, N, args.model_file)
        texts = model.text.texts()
        if args.kind is not None and not 0 <= args.kind < D.NUM_KINDS:
            raise StcastError(f"--kind {args.kind}: window kinds are 0..{D.NUM_KINDS - 1}")
        print(f"sensor {args.node}: {texts[int(model.text_of[args.node])]}")
        for k in ([args.kind] if args.kind is not None else []):
            print(f"window kind {k} ({D.window_phrase(k)}): {texts[N + k]}")
        return 0
    if not args.dataset:
        raise StcastError("describe needs --dataset or --model-file")
    from stcast.engine.splits import prepare_windows

    data = resolve_dataset(args.dataset, args)
    check_node(args.node, data.num_nodes, data.meta.name)
    stats = D.training_statistics(prepare_windows(data, "forecast", args.input_len, args.horizon,
                                                  split=args.split).train)
    meta = data.meta
    questions = [D.node_questions(stats, meta.name, meta.units)[args.node]]
    if args.start is not None:
        L = args.input_len
        if args.start + L > data.num_steps:
            raise StcastError(f"--start {args.start}: a {L}-step window runs past the {data.num_steps} steps")
        window = slice(args.start, args.start + L)
        x, m = np.asarray(data.values[window][:, args.node, 0]), np.asarray(data.observed(window))[:, args.node, 0]
        kind = int(D.window_kinds(torch.tensor(x, dtype=torch.float32)[None, :, None],
                                  torch.tensor(m)[None, :, None],
                                  torch.tensor(np.nan_to_num(stats.mean[args.node:args.node + 1]), dtype=torch.float32),
                                  torch.tensor(np.nan_to_num(stats.std[args.node:args.node + 1], nan=1.0),
                                               dtype=torch.float32))[0, 0])
        span, ahead = D.duration(L, meta.step_minutes), D.duration(args.horizon, meta.step_minutes)
        questions.append(D.window_questions(meta.name, span, ahead)[kind])
    texts, report = D.describe(questions, D.get_writer(args.writer))
    labels = [f"sensor {args.node} ({data.node_ids[args.node] if data.node_ids is not None else args.node})"]
    if args.start is not None:
        labels.append(f"window at step {args.start} ({D.window_phrase(kind)})")
    for label, q, text in zip(labels, questions, texts):
        print(f"{label}\n  facts: {q.facts}\n  {args.writer}: {text}")
    print(f"({report.generated} written, {report.cached} from the cache {D.cache_dir()}, {report.seconds:.1f} s)")
    return 0


def register(sub) -> None:
    sp = sub.add_parser("plot", help="pictures: a model's forecasts, imputations, errors; results; correlation",
                        description="forecast / imputation / errors: a saved model (--model-file) on its test split. "
                                    "results: leaderboards, accuracy against training cost and the language-model "
                                    "ablations, from result CSVs. correlation: ST-VLM's correlation image.")
    sp.add_argument("what", choices=["forecast", "imputation", "errors", "results", "correlation"])
    sp.add_argument("files", nargs="*", help="result CSVs (plot results)")
    sp.add_argument("--dataset", default=None, help="default: the data the model file was trained on")
    sp.add_argument("--model-file", default=None, help="a model file (correlation: an st-vlm one: its channels, "
                                                        "lags, data and scaler)")
    sp.add_argument("--node", type=non_negative_int, default=None,
                    help="sensor index (default: the sensor whose test truth varies most)")
    sp.add_argument("--step", type=positive_int, default=None, help="plot forecast: steps ahead (default: the last)")
    sp.add_argument("--days", type=positive_float, default=2.0, help="plot forecast: days of the test split to draw")
    sp.add_argument("--split", default=None, help="default: the split the model was trained with")
    sp.add_argument("--protocol", default=None, help="default: the protocol the model was trained with")
    sp.add_argument("--missing", default=None, choices=["point", "block"])
    sp.add_argument("--nodes", default=None, help="correlation: comma-separated sensor indices (default: the first 20)")
    sp.add_argument("--start", type=non_negative_int, default=0, help="correlation: first step of the window")
    sp.add_argument("--input-len", type=positive_int, default=None, help="correlation: window length (default 12)")
    sp.add_argument("--out", default=None, help="PNG path (default: <what>.png)")
    data_args(sp)
    sp.set_defaults(func=cmd_plot)

    sp = sub.add_parser("report", help="the results page (leaderboards, pictures, which model to use) from result CSVs")
    sp.add_argument("files", nargs="+", help="result CSVs (stcast benchmark's, optionally with table, setting, "
                                             "seed, backbone, method, threads, budget columns)")
    sp.add_argument("--out", default="docs/results.md")
    sp.add_argument("--figures", default=None, help="folder for the pictures (default: figures/ beside --out)")
    sp.set_defaults(func=cmd_report)

    sp = sub.add_parser("describe", help="LLM-TS Net's trend descriptions of a sensor and a window")
    sp.add_argument("--dataset", default=None)
    sp.add_argument("--model-file", default=None, help="an llm-ts-net model file: print the texts it reads")
    sp.add_argument("--node", type=non_negative_int, default=0, help="sensor index")
    sp.add_argument("--start", type=non_negative_int, default=None, help="also describe the window from this step")
    sp.add_argument("--kind", type=non_negative_int, default=None, help="with --model-file: a window kind 0..50")
    sp.add_argument("--writer", default="smollm2-135m",
                    help="template, smollm2-135m (default) or a local Hugging Face causal LM")
    sp.add_argument("--input-len", type=positive_int, default=12)
    sp.add_argument("--horizon", type=positive_int, default=12)
    sp.add_argument("--split", default="7:1:2", help="statistics come from the training part of this split")
    data_args(sp)
    sp.set_defaults(func=cmd_describe)
