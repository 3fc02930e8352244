"""FactoST-v2 zero-shot on Los-loop 12 -> 12 (the shipped checkpoint, bare backbone): the paper's prediction of the
full H_max truncated to 12 steps (`full_horizon=True`, six future placeholders) against one placeholder
(`full_horizon=False`, how the earlier tables ran), same test windows, in one process.

    python benchmarks/factost_full_horizon.py
"""

import time

import torch

from stcast.data.registry import load_dataset
from stcast.engine.scoring import evaluate
from stcast.engine.splits import prepare_windows
from stcast.models.registry import build_model


def main() -> None:
    torch.set_num_threads(2)
    splits = prepare_windows(load_dataset("los-loop"), "forecast", 12, 12)
    bare = {"use_stmf": False, "use_stf": False, "use_dspa": False, "use_cmr": False}
    seconds = {}
    for full in (False, True):
        model = build_model("factost", splits.spec, full_horizon=full, **bare)
        t0 = time.time()
        mae = evaluate(model, splits.test, 64)["mae"]
        seconds[full] = time.time() - t0
        print(f"full_horizon={full!s:5}  MAE {mae:.4f}  scored the test set in {seconds[full]:.1f} s")
    print(f"cost ratio (full / one placeholder): {seconds[True] / seconds[False]:.2f}x")


if __name__ == "__main__":
    main()
