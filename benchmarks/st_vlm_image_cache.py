"""What ST-VLM's correlation images cost drawn versus read back from the on-disk cache (issue 28, section 2).

    .venv/bin/python benchmarks/st_vlm_image_cache.py [--windows 256] [--threads 1]

Full METR-LA 12 -> 12 (207 sensors, DTW + every lag of the cross-correlation + spectral Pearson), the first
`windows` training windows in batches of 32, in this one process: drawn (a cold cache), then read from disk by a
second model with a fresh in-memory cache (what another row, epoch past the memory bound, or process sees).
Prints seconds per window for both, the ratio, the bytes per image, and checks the images are identical.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from stcast.data.registry import load_dataset
from stcast.engine.splits import prepare_windows
from stcast.models import st_vlm
from stcast.models.registry import build_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    s = prepare_windows(load_dataset("metr-la"), "forecast", 12, 12, "7:1:2")
    batches = list(s.train.batches(32, shuffle=False))[: max(1, args.windows // 32)]
    n = sum(len(b.x) for b in batches)
    with tempfile.TemporaryDirectory() as root:
        times, images = [], []
        for _ in range(2):
            st_vlm.ImageCache._shared.clear()
            m = build_model("st-vlm", s.spec, pretrained=False, image_cache_dir=root).train()
            t0 = time.perf_counter()
            images.append([m.image(b) for b in batches])
            times.append(time.perf_counter() - t0)
        same = all(torch.equal(a, b) for a, b in zip(*images))
        size = images[0][0][0].numel() * 2
    print(f"metr-la, {n} windows, {args.threads} thread(s), image {tuple(images[0][0].shape[1:])} float16 = "
          f"{size / 1024:.0f} KiB")
    print(f"drawn:          {times[0] / n * 1000:8.2f} ms per window")
    print(f"read from disk: {times[1] / n * 1000:8.2f} ms per window   ({times[0] / times[1]:.1f}x faster; "
          f"identical: {same})")
    print(f"a full pass over the 23,974 training windows: {times[0] / n * 23974 / 60:.1f} min of images drawn, "
          f"{times[1] / n * 23974 / 60:.2f} min read")


if __name__ == "__main__":
    main()
