"""What LLM-TS Net's texts cost: writing every sensor and window description of a dataset with an LM (an empty
cache), against the template, and the text encoder's share of a training step.

    .venv/bin/python benchmarks/description_cost.py --dataset los-loop --threads 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="los-loop")
    ap.add_argument("--writer", default="smollm2-135m")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ["STCAST_CACHE"] = tempfile.mkdtemp(prefix="stcast-desc-")  # an empty cache: everything is written
    from stcast.data import descriptions as D
    from stcast.data.registry import load_dataset
    from stcast.engine.splits import prepare_windows
    from stcast.models.baselines.naive import training_steps

    data = load_dataset(args.dataset)
    splits = prepare_windows(data, "forecast", 12, 12)
    steps = training_steps(splits.train)
    t0 = time.perf_counter()
    stats = D.node_statistics(np.asarray(data.values[steps][..., 0]), np.asarray(data.observed(steps))[..., 0],
                              data.timestamps[steps], data.meta)
    t_stats = time.perf_counter() - t0
    qs = D.node_questions(stats, data.meta.name, data.meta.units) + D.window_questions(data.meta.name, "hour", "hour")
    texts, rep = D.describe(qs, D.get_writer(args.writer))
    _, again = D.describe(qs, D.get_writer(args.writer))
    words = np.mean([len(t.split()) for t in texts])
    print(f"{args.dataset}: {len(qs)} texts ({data.num_nodes} sensors + {D.NUM_KINDS} window kinds), statistics "
          f"{t_stats:.2f} s; {args.writer}: {rep.seconds:.1f} s written ({rep.seconds / len(qs):.2f} s/text, "
          f"{words:.0f} words/text), {again.seconds:.3f} s from the cache; {args.threads} threads")


if __name__ == "__main__":
    main()
