"""The `stcast` command line: datasets, models, train, evaluate, forecast, impute, benchmark, demo."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from stcast import config
from stcast.data.registry import is_table_path
from stcast.errors import StcastError


def _int_at_least(minimum: int):
    """An argparse type: a whole number >= minimum, or a message naming what was given."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {v}")
        return v
    return parse


positive_int, non_negative_int = _int_at_least(1), _int_at_least(0)


def _devices(text: str) -> int | str:
    """--devices: a count >= 1 or auto."""
    if text == "auto":
        return text
    return positive_int(text)


def _levels(text: str) -> list[float]:
    """--quantiles 0.1,0.5,0.9: increasing levels in (0, 1)."""
    from stcast.nn.quantile import check_levels

    try:
        return list(check_levels(float(v) for v in text.split(",") if v.strip()))
    except (ValueError, StcastError) as e:
        raise argparse.ArgumentTypeError(f"expected increasing levels in (0, 1) such as 0.1,0.5,0.9; got "
                                         f"{text!r}") from e


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return v


def bundled_config(name: str) -> Path:
    path = Path(str(resources.files("stcast") / "configs" / f"{name}.yaml"))
    if not path.is_file():
        raise StcastError(f"no bundled config {name!r}")
    return path


def resolve_dataset(spec: str, args) -> object:
    """A registered name, or a path to the user's own CSV/Parquet table."""
    from stcast.data.loaders import load_adjacency_file, load_user_table
    from stcast.data.registry import load_dataset

    path = Path(spec)
    if is_table_path(spec):
        data = load_user_table(path, layout=getattr(args, "layout", "auto"), time_col=getattr(args, "time_col", None),
                               node_col=getattr(args, "node_col", None) or "node",
                               value_col=getattr(args, "value_col", None) or "value",
                               channel_col=getattr(args, "channel_col", None) or "channel",
                               null_value=getattr(args, "null_value", None),
                               step_minutes=getattr(args, "step_minutes", None))
        adj = getattr(args, "adjacency", None)
        if adj:
            data.adjacency = load_adjacency_file(adj, data.num_nodes, data.meta.name)
        return data
    return load_dataset(spec, getattr(args, "data_dir", None))


# ------------------------------------------------------------------------------------------ commands


def cmd_datasets(args) -> int:
    from stcast.data.download import data_dir
    from stcast.data.registry import dataset_folder, dataset_names, get_info, load_dataset, shared_data_dir

    if args.action == "list":
        print(f"{'name':<16}{'where':<10}{'step':>6}  {'here':<5} description")
        for n in dataset_names():
            info = get_info(n)
            folder = dataset_folder(info, args.data_dir)
            shared = shared_data_dir()
            here = (folder is not None and all((folder / f).exists() for f in info.files)) or bool(
                info.shared_copy and shared is not None and (shared / info.shared_copy).exists())
            print(f"{n:<16}{info.location:<10}{info.step_minutes:>4}m  {'yes' if here else 'no':<5} "
                  f"{info.description}")
        return 0
    if not args.name:
        raise StcastError(f"`stcast datasets {args.action}` needs a dataset name")
    if args.action == "describe" and is_table_path(args.name):  # the user's own table
        print(resolve_dataset(args.name, args).describe())
        return 0
    info = get_info(args.name)
    if args.action == "describe":
        print(load_dataset(args.name, args.data_dir).describe())
        print(f"  standard: input {info.input_len} -> horizon {info.horizon}, split {info.split}, "
              f"units {info.units or '-'}, null value {info.null_value}")
        return 0
    if args.action == "download":
        if not info.urls:
            raise StcastError(f"{args.name} has no public download URL ({info.location} data)")
        load_dataset(args.name, args.data_dir, download_missing=True)
        print(f"{args.name}: ready in {data_dir(args.data_dir) / info.folder}")
        return 0
    raise StcastError(f"unknown action {args.action!r}")


def cmd_models(args) -> int:
    from stcast.models.registry import get_model_class, model_names

    rows = []
    for n in model_names():
        cls = get_model_class(n)
        text = cls.__doc__ or sys.modules[cls.__module__].__doc__ or ""  # the class's words, else its module's
        doc = text.strip().split(". ")[0].splitlines()[0] if text.strip() else ""
        rows.append((n, ",".join(cls.tasks), "yes" if cls.needs_graph else "", doc))
    width = max(len(r[1]) for r in rows) + 2  # columns never run together (forecast,impute,multitask)
    print(f"{'name':<16}{'tasks':<{width}}{'graph':<7}description")
    for n, tasks, graph, doc in rows:
        print(f"{n:<16}{tasks:<{width}}{graph:<7}{doc}")
    return 0


def cmd_backbones(args) -> int:
    """The language-model backbones: availability here, size, and where the weights come from."""
    from stcast.nn.backbones import BACKBONES, available

    print(f"{'name':<14}{'kind':<32}{'params':<8}{'here':<6}source / location")
    for name, info in BACKBONES.items():
        ok, where = available(name)
        print(f"{name:<14}{info.kind:<32}{info.params:<8}{'yes' if ok else 'no':<6}{info.source}")
        print(f"{'':<6}{where}")
    print("Any Hugging Face id ('org/model', from the local HF cache) or local directory also loads "
          "(llama, gpt2, bert, vilt architectures).")
    return 0


def _train_config(args, base: dict | None = None, source: str = "train"):
    from stcast.config import TrainConfig

    if base is not None and not isinstance(base, dict):
        raise StcastError(f"{source}: 'train' must be a mapping of training settings")
    raw = dict(base or {})
    for key in ("epochs", "batch_size", "lr", "seed", "max_minutes", "patience") + PLACEMENT_FLAGS:
        v = getattr(args, key, None)
        if v is not None:
            raw[key] = v
    return TrainConfig.from_dict(raw, source)


PLACEMENT_FLAGS = ("accelerator", "devices", "num_nodes", "strategy", "precision", "logger")


def train_settings(raw: dict, model: str, source: str) -> tuple[dict, dict]:
    """(training settings, hyper-parameters of `model`) from a config of the one shape (stcast.config): `train`,
    then `model_train.<model>`; `model_kw.<model>` (or flat shorthand). Benchmark-only keys are allowed and
    unused; unknown keys are errors."""
    from stcast.config import CONFIG_KEYS, check_keys, split_model_kw

    check_keys(raw, CONFIG_KEYS, source)
    train = raw.get("train") or {}
    over = (raw.get("model_train") or {}).get(model) or {}
    for what, section in (("train", train), (f"model_train.{model}", over)):
        if not isinstance(section, dict):
            raise StcastError(f"{source}: '{what}' must be a mapping of training settings")
    return {**train, **over}, split_model_kw(raw.get("model_kw"), model, source)


def check_writable(path, what: str = "--out") -> None:
    """Fail before a long run, not after it: the directory must exist or be creatable, and writable."""
    out = Path(path)
    if out.is_dir():
        raise StcastError(f"{what} {path} is a directory; give a file name")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = out.parent / f".stcast-write-test-{os.getpid()}-{out.name}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise StcastError(f"{what} {path} cannot be written ({e.strerror or e}); choose another path") from e


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
    train = _train_config(args, train_raw, source)
    train.checkpoint = args.checkpoint
    train.resume = args.resume
    train.log_csv = args.log_csv
    exp = Experiment(args.model, data, task=args.task, input_len=args.input_len, horizon=args.horizon,
                     split=args.split, protocol=args.protocol, missing=args.missing, model_kw=model_kw,
                     few_shot_fraction=args.few_shot, train=train, quantiles=args.quantiles or ())
    res = exp.run()
    from stcast.bench.runner import print_table, table_columns

    row = res.row()
    print_table([row], table_columns([row], (3, 6, 12)))
    if (msg := nothing_scored(res.metrics)) is not None:
        print(f"stcast: warning: test split of {data.meta.name}: {msg}", file=sys.stderr)
    if args.out:
        save_model(args.out, exp.model, model_kw, exp.splits.scaler, data.meta.name, exp.task,
                   protocol=exp.protocol_record(_dataset_source(args.dataset)))
        print(f"model written to {args.out}")
    return 0


def _dataset_source(spec: str) -> str:
    """A registered name as given; a path made absolute, so `evaluate --model-file` finds it again."""
    path = Path(spec)
    return str(path.resolve()) if path.exists() else spec


def cmd_evaluate(args) -> int:
    import warnings

    from stcast.engine.checkpoint import load_model
    from stcast.engine.scoring import score_saved
    from stcast.metrics import nothing_scored

    model, scaler, info = load_model(args.model_file)
    trained = info["protocol"]  # how the model was trained: evaluate on the same split and protocol
    data = resolve_dataset(args.dataset or trained.get("source") or info["dataset"], args)
    _check_nodes(model, data, info)
    split = args.split or trained.get("split") or "7:1:2"
    protocol = args.protocol if args.protocol is not None else trained.get("protocol")
    if trained.get("split") and args.split and args.split != trained["split"]:
        warnings.warn(f"{args.model_file} was trained with split {trained['split']}; evaluating with {args.split} "
                      "may score windows it was trained on", stacklevel=2)
    if not trained:
        warnings.warn(f"{args.model_file} does not record its training split (an older file): assuming {split}",
                      stacklevel=2)
    record = {**trained, "task": info["task"], "split": split, "protocol": protocol,
              "missing": args.missing or trained.get("missing", "point"), "eval_stride": 1}
    # the model's own scaler (fitted on its training data); multitask: forecast on unhidden inputs + impute_mae
    m, _, _ = score_saved(model, scaler, data, record, refit_statistics=True)
    from stcast.bench.runner import print_table, table_columns

    row = {"model": info["model"], "dataset": data.meta.name, **m}
    print_table([row], table_columns([row], (3, 6, 12))[:-4])
    if (msg := nothing_scored(m)) is not None:
        print(f"stcast: warning: test split of {data.meta.name}: {msg}", file=sys.stderr)
    return 0


def _check_nodes(model, data, info: dict | None = None) -> None:
    """The data must be what the model was trained on: node count, channels, the same node ids in the same
    order (a reordered table would silently give each sensor another's forecast) and the same time step."""
    if model.spec.num_nodes != data.num_nodes or model.spec.num_channels != data.num_channels:
        raise StcastError(f"the model was trained on {model.spec.num_nodes} nodes x {model.spec.num_channels} "
                          f"channels; {data.meta.name} has {data.num_nodes} x {data.num_channels}")
    if model.spec.steps_per_day != data.meta.steps_per_day:
        raise StcastError(f"the model was trained on data with {model.spec.steps_per_day} steps a day; "
                          f"{data.meta.name} has {data.meta.steps_per_day} ({data.meta.step_minutes}-minute steps): "
                          "resample it to the model's step")
    trained_ids = (info or {}).get("protocol", {}).get("node_ids")
    if trained_ids and data.node_ids and list(trained_ids) != list(data.node_ids):
        if sorted(trained_ids) == sorted(data.node_ids):
            raise StcastError(f"{data.meta.name} has the model's nodes in another order; reorder its columns to "
                              f"the training order ({', '.join(trained_ids[:3])}, ...)")
        diff = sorted(set(data.node_ids) - set(trained_ids))[:3]
        raise StcastError(f"{data.meta.name}'s node ids differ from the ones the model was trained on "
                          f"(e.g. {', '.join(diff)} is new); a model only forecasts the sensors it was trained on")


TABLE_SUFFIXES = (".csv", ".parquet", ".pq", ".gz")


def check_table_out(out: str) -> None:
    """--out of forecast/impute: a CSV (optionally .csv.gz) or Parquet path, writable; checked first."""
    suffix = Path(out).suffix.lower()
    if suffix not in TABLE_SUFFIXES or (suffix == ".gz" and not out.lower().endswith(".csv.gz")):
        raise StcastError(f"--out {out}: stcast writes .csv, .csv.gz or .parquet tables; {suffix or 'no suffix'} "
                          "is not one of them")
    check_writable(out)


def _write_table(df, out: str) -> None:
    from stcast.engine.distributed import is_global_zero

    if not is_global_zero():
        return
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if out_path.suffix in (".parquet", ".pq"):
        try:
            df.to_parquet(out_path, index=False)
        except ImportError as e:
            raise StcastError("writing Parquet needs pyarrow: pip install 'stcast[parquet]'") from e
    else:
        df.to_csv(out_path, index=False)


def cmd_forecast(args) -> int:
    from stcast.engine.checkpoint import load_model
    from stcast.engine.inference import forecast_frame

    check_table_out(args.out)
    model, scaler, info = load_model(args.model_file)
    if info["task"] != "forecast":
        raise StcastError(f"{args.model_file} was trained for {info['task']}, not forecasting")
    data = resolve_dataset(args.dataset or info["protocol"].get("source") or info["dataset"], args)
    _check_nodes(model, data, info)
    df = forecast_frame(model, scaler, data, end=args.end)
    H, N, C = model.spec.horizon, data.num_nodes, data.num_channels
    times = df["timestamp"].iloc[[0, -1]].to_numpy()
    _write_table(df, args.out)
    print(f"{len(df)} rows ({H} steps x {N} nodes x {C} channels) written to {args.out} "
          f"({str(times[0])[:16]} .. {str(times[-1])[:16]})")
    return 0


def cmd_impute(args) -> int:
    import pandas as pd

    from stcast.data.scaler import StandardScaler
    from stcast.engine.checkpoint import load_model
    from stcast.engine.inference import impute_array
    from stcast.models.base import ProblemSpec
    from stcast.models.registry import build_model

    check_table_out(args.out)
    data = resolve_dataset(args.dataset, args)
    if args.model_file:
        model, scaler, info = load_model(args.model_file)
        if info["task"] != "impute":
            raise StcastError(f"{args.model_file} was trained for {info['task']}, not imputation")
        _check_nodes(model, data, info)
    else:
        from stcast.data.windows import WindowSet

        L = args.window
        if L > data.num_steps:
            raise StcastError(f"--window {L} is longer than {data.meta.name}'s {data.num_steps} steps")
        scaler = StandardScaler().fit(data, data.num_steps)
        spec = ProblemSpec(data.num_nodes, data.num_channels, L, L, data.meta.steps_per_day, task="impute")
        model = build_model(args.method, spec)
        model.fit_statistics(WindowSet(data, np.arange(0, data.num_steps - L + 1, L), L, 0, scaler, "impute",
                                       hide=lambda m, g: torch.zeros_like(m)))
    filled, observed = impute_array(model, scaler, data, args.batch_size)
    n_filled = int((~observed).sum())
    nodes = data.node_ids or [str(i) for i in range(data.num_nodes)]
    if data.num_channels == 1:
        df = pd.DataFrame(filled[:, :, 0], columns=nodes)
        df.insert(0, "timestamp", data.timestamps)
    else:
        T, N, C = filled.shape
        df = pd.DataFrame({"timestamp": np.repeat(data.timestamps, N * C), "node": np.tile(np.repeat(nodes, C), T),
                           "channel": np.tile(list(data.meta.channels), T * N), "value": filled.reshape(-1),
                           "imputed": (~observed).reshape(-1)})
    _write_table(df, args.out)
    print(f"{n_filled} missing entries of {observed.size} filled; written to {args.out}")
    return 0


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
    from stcast.data.registry import is_table_path

    # table flags (--layout, --time-col, --adjacency, --null-value, ...) apply to every table path in --datasets
    flags = {k: getattr(args, k) for k in ("layout", "time_col", "node_col", "value_col", "channel_col", "adjacency",
                                           "null_value", "step_minutes") if getattr(args, k, None) is not None}
    datasets = raw.get("datasets") or []
    for d in [s.strip() for s in datasets.split(",")] if isinstance(datasets, str) else datasets:
        if isinstance(d, str) and is_table_path(d) and flags:
            raw.setdefault("tables", {}).setdefault(d, {}).update(flags)
    cfg = BenchConfig.from_dict(raw, source=args.config or "command line")
    return _run_and_report(cfg, args.out_dir, args.data_dir)


def _run_and_report(cfg, out_dir, data_dir=None) -> int:
    from stcast.bench.runner import print_report, run_benchmark, write_results

    print(f"stcast benchmark '{cfg.name}': {', '.join(cfg.models)} on {', '.join(cfg.datasets)} "
          f"({cfg.task}), torch threads {torch.get_num_threads()}")
    rows_csv = Path(out_dir) / f"{cfg.name}.csv"
    check_writable(rows_csv, "--out-dir")  # before hours of training, not after
    report = run_benchmark(cfg, data_dir, rows_csv=rows_csv)  # rows kept on disk as they finish
    print()
    print_report(report)
    paths = write_results(report, out_dir)
    print("\n" + "\n".join(f"{k}: {v}" for k, v in paths.items()))
    return 0


def cmd_plot(args) -> int:
    """`stcast plot correlation`: ST-VLM's correlation image for chosen sensors and a window."""
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
    nodes = _index_list(args.nodes, "--nodes") if args.nodes else list(range(min(20, data.num_nodes)))
    check_writable(args.out)
    path = plot_correlation(data, nodes, args.start, args.input_len or input_len, channels, max_lag, args.out,
                            scaler)
    print(f"wrote {path}")
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
        _check_node(args.node, N, args.model_file)
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
    _check_node(args.node, data.num_nodes, data.meta.name)
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


def _check_node(node: int, num_nodes: int, where: str) -> None:
    if not 0 <= node < num_nodes:
        raise StcastError(f"--node {node}: {where} has sensors 0..{num_nodes - 1}")


def _index_list(text: str, flag: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise StcastError(f"{flag} {text!r}: expected comma-separated sensor indices, e.g. 0,1,2") from None


def cmd_demo(args) -> int:
    from stcast.config import BenchConfig

    cfg = BenchConfig.from_yaml(bundled_config("demo"))
    if args.quick:  # every model, one short epoch: checks the pipeline end to end in seconds
        cfg.model_train = {k: v for k, v in cfg.model_train.items() if v.get("epochs") == 0}  # zero-shot stays
        cfg.train.update(epochs=1, max_batches_per_epoch=5)
        cfg.name = "demo-quick"
    return _run_and_report(cfg, args.out_dir)


def cmd_pretrain(args) -> int:
    from stcast.pretrain.utp import UTPRun, pretrain

    model = {"variant": args.variant, "max_context": args.context, "min_context": args.min_context,
             "max_horizon": args.horizon,
             "use_prope": not args.no_prope, "use_gate": not args.no_gate}
    run = UTPRun(out=args.out, steps=args.steps, minutes=args.minutes, batch_size=args.batch_size, lr=args.lr,
                 seed=args.seed, num_synthetic=args.synthetic, random_mask=not args.no_random_mask,
                 quantile_loss=not args.no_quantile_loss, resume=args.resume, model=model,
                 **{k: getattr(args, k) for k in PLACEMENT_FLAGS[:-1] if getattr(args, k) is not None})
    pretrain(run, args.data_dir)
    return 0


# -------------------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stcast", description=__doc__)
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--offline", action="store_true",
                   help="never contact the Hugging Face hub (as HF_HUB_OFFLINE=1): backbones must be on this machine")
    sub = p.add_subparsers(dest="command", required=True)

    def data_args(sp):
        sp.add_argument("--data-dir", default=None, help="data directory (default $STCAST_DATA or ~/.cache/stcast)")
        sp.add_argument("--layout", default="auto", choices=["auto", "wide", "long"], help="own table layout")
        sp.add_argument("--time-col", default=None, help="timestamp column of an own table")
        sp.add_argument("--step-minutes", type=positive_int, default=None, help="time step of an own table")
        sp.add_argument("--adjacency", default=None, help="adjacency CSV/NPY for an own table")
        sp.add_argument("--node-col", default=None, help="node column of a long table (default: node)")
        sp.add_argument("--value-col", default=None, help="value column of a long table (default: value)")
        sp.add_argument("--channel-col", default=None, help="channel column of a long table (default: channel)")
        sp.add_argument("--null-value", type=float, default=None,
                        help="a value that means 'no reading' in an own table (e.g. 0 for loop detectors)")

    def placement_args(sp):
        # Lightning Fabric placement: `--devices 2` starts the processes itself; under torchrun/`fabric run`
        # the processes exist already (README: one GPU, 8 GPUs, 2 nodes)
        sp.add_argument("--accelerator", default=None, choices=config.ACCELERATORS)
        sp.add_argument("--devices", type=_devices, default=None, help="processes/GPUs per node, or auto")
        sp.add_argument("--num-nodes", type=positive_int, default=None)
        sp.add_argument("--strategy", default=None, choices=config.STRATEGIES)
        sp.add_argument("--precision", default=None, choices=["32", "bf16-mixed", "16-mixed"])

    def train_args(sp):
        for name, typ in (("epochs", non_negative_int), ("batch-size", positive_int), ("lr", positive_float),
                          ("seed", non_negative_int), ("max-minutes", positive_float), ("patience", positive_int)):
            sp.add_argument(f"--{name}", type=typ, default=None)
        sp.add_argument("--quantiles", type=_levels, default=None, metavar="Q1,Q2,...",
                        help="predict these quantile levels too (e.g. 0.1,0.5,0.9): a quantile head on any model, "
                             "trained with the pinball loss, scored with CRPS and coverage")
        placement_args(sp)
        sp.add_argument("--logger", default=None, choices=["csv", "tensorboard"],
                        help="csv (always, with --log-csv) or tensorboard as well (needs the tensorboard package)")
        sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config entry, e.g. --set model_kw.stid.embed_dim=64")
        sp.add_argument("--config", default=None, help="YAML config")

    sp = sub.add_parser("datasets", help="list, describe or download datasets")
    sp.add_argument("action", nargs="?", default="list", choices=["list", "describe", "download"])
    sp.add_argument("name", nargs="?")
    data_args(sp)
    sp.set_defaults(func=cmd_datasets)

    sp = sub.add_parser("models", help="list the models")
    sp.set_defaults(func=cmd_models)

    sp = sub.add_parser("backbones", help="list the language-model backbones and whether their weights are here")
    sp.set_defaults(func=cmd_backbones)

    sp = sub.add_parser("train", help="train one model on one dataset, report test metrics, save it")
    sp.add_argument("--model", required=True)
    sp.add_argument("--dataset", required=True, help="registered name or a CSV/Parquet path")
    sp.add_argument("--task", default="forecast", choices=["forecast", "impute", "multitask"])
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
    data_args(sp)
    train_args(sp)
    sp.set_defaults(func=cmd_train)

    sp = sub.add_parser("evaluate", help="evaluate a saved model on a dataset's test split")
    sp.add_argument("--model-file", required=True)
    sp.add_argument("--dataset", default=None)
    sp.add_argument("--split", default=None, help="default: the split the model was trained with")
    sp.add_argument("--protocol", default=None, help="default: the protocol the model was trained with")
    sp.add_argument("--missing", default=None, choices=["point", "block"])
    data_args(sp)
    sp.set_defaults(func=cmd_evaluate)

    sp = sub.add_parser("forecast", help="forecast the steps after a window; writes CSV/Parquet")
    sp.add_argument("--model-file", required=True)
    sp.add_argument("--dataset", default=None)
    sp.add_argument("--end", type=positive_int, default=None, help="window end step (default: the end of the data)")
    sp.add_argument("--out", required=True)
    data_args(sp)
    sp.set_defaults(func=cmd_forecast)

    sp = sub.add_parser("impute", help="fill the missing entries of a series; writes CSV/Parquet")
    sp.add_argument("--dataset", required=True)
    sp.add_argument("--model-file", default=None, help="a model trained with --task impute")
    sp.add_argument("--method", default="interpolate", help="without a model file: interpolate, mean-impute, ha")
    sp.add_argument("--window", type=positive_int, default=24)
    sp.add_argument("--batch-size", type=positive_int, default=64)
    sp.add_argument("--out", required=True)
    data_args(sp)
    sp.set_defaults(func=cmd_impute)

    sp = sub.add_parser("benchmark", help="models x datasets -> table, CSV, Markdown and a plot")
    sp.add_argument("--models", default=None, help="comma-separated")
    sp.add_argument("--datasets", default=None, help="comma-separated")
    sp.add_argument("--task", default=None, choices=["forecast", "impute", "multitask"])
    sp.add_argument("--protocol", default=None)
    sp.add_argument("--missing", default=None, choices=["point", "block"])
    sp.add_argument("--split", default=None)
    sp.add_argument("--input-len", type=positive_int, default=None)
    sp.add_argument("--horizon", type=positive_int, default=None)
    sp.add_argument("--out-dir", default="results")
    data_args(sp)
    train_args(sp)
    sp.set_defaults(func=cmd_benchmark)

    sp = sub.add_parser("pretrain", help="stage-I pretraining of a foundation backbone (FactoST-v2 UTP)")
    sp.add_argument("method", choices=["factost"])
    sp.add_argument("--out", default="results/pretrain/factost-utp.pt")
    sp.add_argument("--steps", type=positive_int, default=2000, help="optimiser steps (also sets the LR schedule)")
    sp.add_argument("--minutes", type=positive_float, default=None, help="wall-clock budget; stops early when reached")
    sp.add_argument("--batch-size", type=positive_int, default=64)
    sp.add_argument("--lr", type=positive_float, default=5e-4)
    sp.add_argument("--seed", type=non_negative_int, default=0)
    sp.add_argument("--variant", default="tiny", help="minuscule, tiny, small, base (Table VI)")
    sp.add_argument("--context", type=positive_int, default=256, help="L_max in steps")
    sp.add_argument("--min-context", type=positive_int, default=32,
                    help="L_min in steps: the shortest context pretraining shows (12 for 12-step downstream inputs)")
    sp.add_argument("--horizon", type=positive_int, default=96, help="H_max in steps")
    sp.add_argument("--synthetic", type=non_negative_int, default=1000, help="KernelSynth series in the corpus")
    sp.add_argument("--resume", action="store_true", help="continue from <out>.state.pt")
    for flag in ("no-prope", "no-gate", "no-random-mask", "no-quantile-loss"):
        sp.add_argument(f"--{flag}", action="store_true", help="UTP ablation (Table X)")
    placement_args(sp)
    data_args(sp)
    sp.set_defaults(func=cmd_pretrain)

    sp = sub.add_parser("plot", help="pictures: `plot correlation` draws ST-VLM's correlation image")
    sp.add_argument("what", choices=["correlation"])
    sp.add_argument("--dataset", default=None)
    sp.add_argument("--model-file", default=None, help="an st-vlm model file: its channels, lags, data and scaler")
    sp.add_argument("--nodes", default=None, help="comma-separated sensor indices (default: the first 20)")
    sp.add_argument("--start", type=non_negative_int, default=0, help="first step of the window")
    sp.add_argument("--input-len", type=positive_int, default=None, help="window length (default 12)")
    sp.add_argument("--out", default="correlation.png")
    data_args(sp)
    sp.set_defaults(func=cmd_plot)

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

    sp = sub.add_parser("demo", help="the embedded default job: baselines on the bundled Los-loop data")
    sp.add_argument("--out-dir", default="results/demo")
    sp.add_argument("--quick", action="store_true", help="a smoke run (one short epoch per model)")
    sp.set_defaults(func=cmd_demo)
    return p


_plain_format = warnings.formatwarning


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """Our warnings as one `stcast: warning:` line; library deprecations keep their usual form."""
    if category is UserWarning:
        return f"stcast: warning: {message}\n"
    return _plain_format(message, category, filename, lineno, line)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if any(os.environ.get(k, "0") != "0" for k in ("RANK", "LOCAL_RANK", "NODE_RANK")):
        # a distributed run's other processes: rank 0 prints the tables and warnings once (errors still show)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of this process
        warnings.simplefilter("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.offline:
        os.environ["HF_HUB_OFFLINE"] = os.environ["STCAST_OFFLINE"] = "1"  # read by nn.backbones.offline()
    warnings.formatwarning = _format_warning
    try:
        return args.func(args)
    except StcastError as e:
        print(f"stcast: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `stcast models | head`: the reader left, nothing to say
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return 0
    except OSError as e:  # a file the user named: unreadable, a directory, no space left, ...
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"stcast: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stcast: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = _plain_format


if __name__ == "__main__":
    sys.exit(main())
