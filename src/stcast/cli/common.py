"""What every command shares: argument types and groups, reading a dataset or table, checking output paths."""

from __future__ import annotations

import argparse
import os
from importlib import resources
from pathlib import Path

import numpy as np

from stcast import config
from stcast.data.files import check_writable  # noqa: F401 - the commands' output check
from stcast.data.registry import TABLE_SUFFIXES, is_table_path
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


def unit_fraction(text: str) -> float:
    """A share in [0, 1] (e.g. --p-mix)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return v


def bundled_config(name: str) -> Path:
    path = Path(str(resources.files("stcast") / "configs" / f"{name}.yaml"))
    if not path.is_file():
        raise StcastError(f"no bundled config {name!r}")
    return path


# how a user's table was read: recorded in model files, reused by evaluate / forecast / impute / plot
READING_FLAGS = ("layout", "time_col", "node_col", "value_col", "channel_col", "null_value", "step_minutes")


def reading_options(args) -> dict:
    """The table-reading flags given on this command line (those left unset are not in it)."""
    return {k: getattr(args, k) for k in READING_FLAGS if getattr(args, k, None) is not None}


def resolve_dataset(spec: str, args, recorded: dict | None = None, keep_exact: bool = False) -> object:
    """A registered name, or a path to the user's own CSV/Parquet table, read with `recorded` (how a model file's
    table was read: --null-value, --layout, columns, step) unless a flag here says otherwise; a flag that differs
    from the recorded value is used, with a warning naming both."""
    import warnings

    from stcast.data.registry import load_dataset
    from stcast.data.user_graph import load_adjacency_file
    from stcast.data.user_tables import load_user_table

    path = Path(spec)
    if is_table_path(spec):
        given, recorded = reading_options(args), dict(recorded or {})
        for k in sorted(set(given) & set(recorded)):
            if given[k] != recorded[k]:
                flag = "--" + k.replace("_", "-")
                warnings.warn(f"{flag} {given[k]!r} differs from the {recorded[k]!r} the model was trained with "
                              f"(recorded in its file); using {given[k]!r}", stacklevel=2)
        opts = {**recorded, **given}
        data = load_user_table(path, layout=opts.get("layout") or "auto", time_col=opts.get("time_col"),
                               node_col=opts.get("node_col") or "node", value_col=opts.get("value_col") or "value",
                               channel_col=opts.get("channel_col") or "channel", null_value=opts.get("null_value"),
                               step_minutes=opts.get("step_minutes"), keep_exact=keep_exact)
        adj = getattr(args, "adjacency", None)
        if adj:
            data.adjacency = load_adjacency_file(adj, data.num_nodes, data.meta.name, node_ids=data.node_ids)
            data.extra["adjacency_file"] = str(adj)  # a model file's own graph must not silently win over it
        return data
    if getattr(args, "adjacency", None):  # never silently ignored
        raise StcastError(f"--adjacency {args.adjacency}: '{spec}' is a registered dataset with its own graph; "
                          "--adjacency is for a table of your own (a .csv / .parquet path)")
    return load_dataset(spec, getattr(args, "data_dir", None))


PLACEMENT_FLAGS = ("accelerator", "devices", "num_nodes", "strategy", "precision", "logger")


def train_config(args, base: dict | None = None, source: str = "train"):
    from stcast.config import TrainConfig

    if base is not None and not isinstance(base, dict):
        raise StcastError(f"{source}: 'train' must be a mapping of training settings")
    raw = dict(base or {})
    for key in ("epochs", "batch_size", "lr", "seed", "max_minutes", "patience") + PLACEMENT_FLAGS:
        v = getattr(args, key, None)
        if v is not None:
            raw[key] = v
    return TrainConfig.from_dict(raw, source)


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


def dataset_source(spec: str) -> str:
    """A registered name as given; a path made absolute, so `evaluate --model-file` finds it again."""
    path = Path(spec)
    return str(path.resolve()) if path.exists() else spec


INPUT_FLAGS = ("dataset", "adjacency", "model_file", "config", "init_from", "parts", "files")
OUTPUT_FLAGS = ("out", "checkpoint", "log_csv", "errors_out")


def _flag(dest: str) -> str:
    return dest if dest in ("parts", "files") else "--" + dest.replace("_", "-")


def _paths(args, dests) -> list[tuple[str, Path]]:
    found = []
    for dest in dests:
        value = getattr(args, dest, None)
        for item in value if isinstance(value, list | tuple) else [value]:
            if dest == "dataset" and isinstance(item, str) and not is_table_path(item):
                continue  # a registered dataset's name, not a file of the user's
            if isinstance(item, str | Path) and str(item):
                found.append((_flag(dest), Path(item)))
    return found


def _same_file(a: Path, b: Path, b_must_exist: bool = True) -> bool:
    """One file under two names (links, `..`, a folder not made yet: `sub/../table.csv`). An input that is not a
    file (a registered dataset's name) is no file to overwrite."""
    try:
        if a.exists() and b.exists():
            return a.samefile(b)
        if b_must_exist and not b.exists():
            return False
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def check_no_clobber(args) -> None:
    """Nothing a user hands us is lost: an output path that is one of the command's input files (the table, its
    graph, the model file, the config, a part to merge), or two outputs on one path, is an error before any work.
    `train --resume` reads and writes its --checkpoint by design, the one exception. `--resume` (keep an earlier
    run) with `--overwrite` (discard it) is a contradiction, refused here for every command that has both."""
    if getattr(args, "resume", False) and getattr(args, "overwrite", False):
        raise StcastError("--resume continues the earlier run and --overwrite discards it: give one of them")
    outputs = _paths(args, OUTPUT_FLAGS)
    for i, (flag, path) in enumerate(outputs):
        for other_flag, other in outputs[i + 1:]:
            if _same_file(path, other, b_must_exist=False):
                raise StcastError(f"{flag} and {other_flag} are the same file ({path}): one would overwrite the "
                                  "other; give each its own path")
        for in_flag, source in _paths(args, INPUT_FLAGS):
            if _same_file(path, source):
                raise StcastError(f"{flag} {path} is the file given as {in_flag} {source}: writing there would "
                                  f"overwrite your input; choose another {flag} path")


def check_table_out(out: str) -> None:
    """--out of forecast/impute: a CSV (optionally .csv.gz) or Parquet path, writable; checked first."""
    suffix = Path(out).suffix.lower()
    if suffix not in TABLE_SUFFIXES or (suffix == ".gz" and not out.lower().endswith(".csv.gz")):
        raise StcastError(f"--out {out}: stcast writes .csv, .csv.gz or .parquet tables; {suffix or 'no suffix'} "
                          "is not one of them")
    check_writable(out)


def write_table(df, out: str) -> None:
    from stcast.engine.distributed import is_global_zero

    if not is_global_zero():
        return
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # written beside, then moved over: a kill or a full disk mid-write leaves the old file whole, never half a table
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    try:
        if out_path.suffix in (".parquet", ".pq"):
            try:
                df.to_parquet(tmp, index=False)
            except ImportError as e:
                raise StcastError("writing Parquet needs pyarrow: pip install 'stcast[parquet]'") from e
        else:
            df.to_csv(tmp, index=False, compression="gzip" if out_path.suffix.lower() == ".gz" else None)
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)


def check_node(node: int, num_nodes: int, where: str) -> None:
    if not 0 <= node < num_nodes:
        raise StcastError(f"--node {node}: {where} has sensors 0..{num_nodes - 1}")


def index_list(text: str, flag: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise StcastError(f"{flag} {text!r}: expected comma-separated sensor indices, e.g. 0,1,2") from None


def data_args(sp) -> None:
    """How a dataset or the user's own table is found and read."""
    sp.add_argument("--data-dir", default=None, help="data directory (default $STCAST_DATA or ~/.cache/stcast)")
    sp.add_argument("--layout", default=None, choices=["auto", "wide", "long"],
                    help="own table layout (default: auto, or what the model file records)")
    sp.add_argument("--time-col", default=None, help="timestamp column of an own table")
    sp.add_argument("--step-minutes", type=positive_int, default=None, help="time step of an own table")
    sp.add_argument("--adjacency", default=None,
                    help="the graph of your own table: .npy/.npz/CSV matrix (sensor ids, if given, are matched to "
                    "the table), an edge list CSV from,to,cost|weight, or DCRNN's adj_mx.pkl")
    sp.add_argument("--node-col", default=None, help="node column of a long table (default: node)")
    sp.add_argument("--value-col", default=None, help="value column of a long table (default: value)")
    sp.add_argument("--channel-col", default=None, help="channel column of a long table (default: channel)")
    sp.add_argument("--null-value", type=float, default=None,
                    help="a value that means 'no reading' in an own table (e.g. 0 for loop detectors)")


def placement_args(sp) -> None:
    """Lightning Fabric placement: `--devices 2` starts the processes itself; under torchrun/`fabric run` the
    processes exist already (README: one GPU, 8 GPUs, 2 nodes). Choices come from the config home."""
    sp.add_argument("--accelerator", default=None, choices=config.ACCELERATORS)
    sp.add_argument("--devices", type=_devices, default=None, help="processes/GPUs per node, or auto")
    sp.add_argument("--num-nodes", type=positive_int, default=None)
    sp.add_argument("--strategy", default=None, choices=config.STRATEGIES)
    sp.add_argument("--precision", default=None, choices=["32", "bf16-mixed", "16-mixed"])


def train_args(sp) -> None:
    """Training settings that override a config's `train:` section."""
    for name, typ in (("epochs", non_negative_int), ("batch-size", positive_int), ("lr", positive_float),
                      ("seed", non_negative_int), ("max-minutes", positive_float), ("patience", positive_int)):
        sp.add_argument(f"--{name}", type=typ, default=None)
    sp.add_argument("--quantiles", type=_levels, default=None, metavar="Q1,Q2,...",
                    help="predict these quantile levels too (e.g. 0.1,0.5,0.9): a quantile head on any model, "
                         "trained with the pinball loss, scored with CRPS and coverage")
    placement_args(sp)
    sp.add_argument("--logger", default=None, choices=config.train.LOGGERS,
                    help="csv (always, with --log-csv) or tensorboard as well (needs the tensorboard package)")
    sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config entry, e.g. --set model_kw.stid.embed_dim=64")
    sp.add_argument("--config", default=None, help="YAML config")


def load_saved(args):
    """(model, scaler, info, data, record) of `--model-file`: the data it was trained on (or `--dataset`, checked to
    fit it) and the record of how its test windows are cut (its own split and protocol unless flags say otherwise,
    with a warning that names both)."""
    import warnings

    from stcast.engine.checkpoint import check_data_fits, load_model

    model, scaler, info = load_model(args.model_file)
    trained = info["protocol"]  # how the model was trained: evaluate on the same split and protocol
    data = resolve_dataset(args.dataset or trained.get("source") or info["dataset"], args, trained.get("reading"))
    check_data_fits(model, data, info)
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
    return model, scaler, info, data, record
