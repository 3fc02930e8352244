"""A benchmark: models x datasets under one protocol and budget (`stcast benchmark --config`, the demo)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from stcast.config.fields import check_fields, setting
from stcast.config.models import check_model_kw
from stcast.config.train import TrainConfig
from stcast.errors import StcastError, did_you_mean
from stcast.task import Task

# how a user's own table in `datasets` is read (`tables: {path: {...}}`, or the same flags on the command line)
TABLE_OPTIONS = ("name", "layout", "time_col", "node_col", "value_col", "channel_col", "adjacency", "null_value",
                 "step_minutes")
CLUSTER_OPTIONS = ("k", "by", "reduce", "seed")
DEFAULT_STEPS = [3, 6, 12]  # the per-step columns of the field's 12 -> 12 tables
_TEXT = (lambda v: isinstance(v, str) and bool(v), "a non-empty text")
TABLE_CHECKS = {  # option -> (check, what it asks for)
    "name": _TEXT, "time_col": _TEXT, "node_col": _TEXT, "value_col": _TEXT, "channel_col": _TEXT,
    "adjacency": (lambda v: isinstance(v, str) and bool(v), "a CSV/NPY path"),
    "layout": (lambda v: v in ("auto", "wide", "long"), "auto, wide or long"),
    "null_value": (lambda v: isinstance(v, int | float) and not isinstance(v, bool), "a number (e.g. 0)"),
    "step_minutes": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "a whole number of "
                     "minutes >= 1"),
}


def _ge(lo: int):
    return lambda v: v >= lo


@dataclass
class BenchConfig:
    """One benchmark. Loaded from YAML (`BenchConfig.from_yaml`), fields overridable from the CLI."""

    models: list[str] = setting(factory=lambda: ["ha", "last-value", "stid"], asks="a list of model names")
    datasets: list[str] = setting(factory=lambda: ["los-loop"], asks="a list of dataset names or table paths")
    task: str = setting("forecast", lambda v: v in {t.value for t in Task}, "forecast, impute or multitask")
    input_len: int | None = setting(None, _ge(1), "an integer >= 1, or null")
    horizon: int | None = setting(None, _ge(1), "an integer >= 1, or null")
    split: str | list | None = setting(None, None, "a ratio such as 7:1:2, or null")
    protocol: str | None = setting(None, None, "a protocol name (aqi36), or null")
    missing: str = setting("point", lambda v: v in ("point", "block"), "point or block")
    missing_kw: dict = setting(factory=dict, asks="a mapping of the missingness pattern's settings")
    few_shot: float | None = setting(None, lambda v: 0 < v <= 1, "a fraction in (0, 1], or null")
    # a longer lookback than input_len, scored on the same targets (engine/splits.py); variants may set their own
    context_len: int | None = setting(None, _ge(1), "an integer >= input_len, or null")
    # every k-th validation/test window (ablations within a method; 1 = the protocol)
    eval_stride: int = setting(1, _ge(1), "an integer >= 1")
    # every k-th validation window only (early stopping of dear models; the test set is untouched); variants too
    val_stride: int | None = setting(None, _ge(1), "an integer >= 1, or null (= eval_stride)")
    steps: list[int] = setting(factory=lambda: list(DEFAULT_STEPS), check=lambda v: all(s >= 1 for s in v),
                               asks="a list of horizon steps >= 1")
    # a quantile head for every model (nn/quantile.py)
    quantiles: list[float] = setting(factory=list, asks="a list of increasing levels in (0, 1)")
    train: dict = setting(factory=dict, asks="a mapping of training settings")  # TrainConfig fields
    model_kw: dict = setting(factory=dict, asks="a mapping: model name -> hyper-parameters")
    model_train: dict = setting(factory=dict, asks="a mapping: model name -> training settings")
    plot_node: int | None = setting(None, _ge(0), "a node index >= 0, or null")
    name: str = setting("benchmark", bool, "a name")
    # {k, by, reduce, seed}: aggregate every dataset to k nodes (stcast.data.transforms)
    cluster: dict | None = setting(None, lambda v: not set(v) - set(CLUSTER_OPTIONS),
                                   f"a mapping with keys {', '.join(CLUSTER_OPTIONS)}, or null")
    transfer_to: str | None = setting(None, None, "a dataset name, or null")  # zero-shot: evaluate here, no updates
    # label -> {model: name, [few_shot: f], **hyper-parameters}
    variants: dict = setting(factory=dict, asks="a mapping: label -> {model: name, ...}")
    # the user's own tables in `datasets` (CSV/Parquet paths): path -> how to read it (TABLE_OPTIONS)
    tables: dict = setting(factory=dict, asks="a mapping: table path -> reading options")
    source: str = "config"  # where it was read from: named in every error (not a config key)

    def __post_init__(self) -> None:
        check_fields(self, f"{self.source}:")

    @classmethod
    def from_yaml(cls, path) -> BenchConfig:
        from stcast.config.files import read_yaml

        return cls.from_dict(read_yaml(path), source=str(path))

    @classmethod
    def from_dict(cls, raw: dict, source: str = "config") -> BenchConfig:
        """Every key, type and range checked, every row's model, hyper-parameters and training settings
        resolved, before anything is loaded or trained."""
        from stcast.config import check_keys
        from stcast.data.registry import get_info, is_table_path
        from stcast.models.registry import get_model_class, model_names

        check_keys(raw, CONFIG_KEYS, source)
        raw = dict(raw)
        for key in ("models", "datasets"):
            if isinstance(raw.get(key), str):
                raw[key] = [s.strip() for s in raw[key].split(",") if s.strip()]
        cfg = cls(**raw, source=source)
        TrainConfig.from_dict(cfg.train, f"{source}: train")  # types, ranges and unknown keys, before any run
        for name, over in cfg.model_train.items():
            if not isinstance(over, dict):
                raise StcastError(f"{source}: model_train.{name} must be a mapping of training settings")
            TrainConfig.from_dict({**cfg.train, **over}, f"{source}: model_train.{name}")
        for key in ("models", "datasets"):  # a row twice would be trained twice and written as two equal rows
            names = list(getattr(cfg, key) or [])
            twice = sorted({n for n in names if isinstance(n, str) and names.count(n) > 1})
            if twice:
                raise StcastError(f"{source}: {key} lists {', '.join(twice)} more than once")
        beyond = [s for s in cfg.steps if "steps" in raw and cfg.horizon is not None and s > cfg.horizon]
        if beyond:  # asked-for steps would be left out of every table without a word (the runner cuts the defaults)
            raise StcastError(f"{source}: steps {beyond} lie beyond the horizon ({cfg.horizon}); report steps 1 to "
                              f"{cfg.horizon}")
        if cfg.context_len is not None and cfg.input_len is not None and cfg.context_len < cfg.input_len:
            raise StcastError(f"{source}: context_len={cfg.context_len} is shorter than input_len={cfg.input_len}: "
                              "it is the longer lookback read before the same targets")
        for label, v in cfg.variants.items():
            if not isinstance(v, dict) or "model" not in v:
                raise StcastError(f"{source}: variant {label!r} needs a 'model' key naming a registered model")
            try:
                get_model_class(v["model"])
            except StcastError as e:  # name the variant: the bad name is in the config, not on the command line
                raise StcastError(f"{source}: variants.{label}.model: {e}") from None
            fs = v.get("few_shot")
            if fs is not None and (isinstance(fs, bool) or not isinstance(fs, int | float) or not 0 < fs <= 1):
                raise StcastError(f"{source}: variants.{label}.few_shot={fs!r} is invalid: expected a fraction in "
                                  "(0, 1], or null (every row is checked before the first one runs)")
            cl = v.get("context_len")
            if cl is not None and (isinstance(cl, bool) or not isinstance(cl, int) or cl < (cfg.input_len or 1)):
                raise StcastError(f"{source}: variants.{label}.context_len={cl!r} is invalid: expected an integer >= "
                                  f"input_len ({cfg.input_len}), or null")
            vs = v.get("val_stride")
            if vs is not None and (isinstance(vs, bool) or not isinstance(vs, int) or vs < 1):
                raise StcastError(f"{source}: variants.{label}.val_stride={vs!r} is invalid: expected an integer >= 1, "
                                  "or null")
            check_model_kw(v["model"], {k: x for k, x in v.items() if k not in WINDOW_KEYS},
                           f"{source}: variants.{label}")
        for key, kw in cfg.model_kw.items():  # keyed by model name or variant label; every value checked now
            if key in cfg.variants:
                check_model_kw(cfg.variants[key]["model"], kw, f"{source}: model_kw")
            elif key in model_names():
                check_model_kw(key, kw, f"{source}: model_kw")
            else:
                raise StcastError(f"{source}: model_kw.{key}: not a model name or variant label"
                                  f"{did_you_mean(key, model_names() + list(cfg.variants))}")
        for m in cfg.models:
            if m not in cfg.variants:
                get_model_class(m)  # fail early on an unknown model
        for d in cfg.datasets + ([cfg.transfer_to] if cfg.transfer_to else []):
            if not is_table_path(d):
                get_info(d)
        for path, opts in cfg.tables.items():
            if not isinstance(opts, dict):
                raise StcastError(f"{source}: tables.{path} must be a mapping of reading options "
                                  f"({', '.join(TABLE_OPTIONS)}); got {opts!r}")
            if set(opts) - set(TABLE_OPTIONS):
                bad = sorted(set(opts) - set(TABLE_OPTIONS))
                raise StcastError(f"{source}: tables.{path}: unknown options {bad}; known: {', '.join(TABLE_OPTIONS)}")
            for key, value in opts.items():
                ok, asks = TABLE_CHECKS[key]
                if value is not None and not ok(value):
                    raise StcastError(f"{source}: tables.{path}.{key}={value!r} is invalid: expected {asks}")
            if path not in cfg.datasets and path != cfg.transfer_to:
                raise StcastError(f"{source}: tables.{path}: no such table in datasets "
                                  f"({', '.join(cfg.datasets)}); its options would be ignored")
        return cfg

    @property
    def task_type(self) -> Task:
        return Task.parse(self.task)

    def base_model(self, label: str) -> str:
        return self.variants[label]["model"] if label in self.variants else label

    def few_shot_of(self, label: str) -> float | None:
        """A variant's own few-shot fraction (`few_shot: 0.1`, or null for full-shot), else the config's."""
        return self.variants[label].get("few_shot", self.few_shot) if label in self.variants else self.few_shot

    def context_len_of(self, label: str) -> int | None:
        """A variant's own lookback (`context_len: 288`), else the config's."""
        return self.variants[label].get("context_len", self.context_len) if label in self.variants \
            else self.context_len

    def val_stride_of(self, label: str) -> int | None:
        """A variant's own validation stride (`val_stride: 4`), else the config's."""
        return self.variants[label].get("val_stride", self.val_stride) if label in self.variants \
            else self.val_stride

    def model_kwargs(self, label: str) -> dict:
        """The base model's model_kw, then the variant's settings, then model_kw under the label itself."""
        own = {k: v for k, v in self.variants.get(label, {}).items() if k not in WINDOW_KEYS}
        return {**self.model_kw.get(self.base_model(label), {}), **own, **self.model_kw.get(label, {})} \
            if label in self.variants else dict(self.model_kw.get(label, {}))

    def train_config(self, model: str) -> TrainConfig:
        base = self.base_model(model)
        over = {**self.model_train.get(base, {}), **(self.model_train.get(model, {}) if model != base else {})}
        return TrainConfig(**{**self.train, **over})


# a variant's keys that set its windows, not its model's hyper-parameters
WINDOW_KEYS = ("model", "few_shot", "context_len", "val_stride")
CONFIG_KEYS = tuple(f.name for f in fields(BenchConfig) if f.name != "source")
