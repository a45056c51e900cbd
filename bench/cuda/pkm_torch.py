"""The PyTorch eager baseline of bench/cuda/pkm_bench.cu: the reference ProductKeyMemory
(training/pkm.py, XLM's algorithm) on the GPU in fp16, with torch.topk selection (its fast
path) and F.embedding_bag for the gather, timed from the layer's input to its output like the
CUDA layer. Same memories and token counts.

    python3 bench/cuda/pkm_torch.py [--iters N] [--out FILE]
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from training.pkm import ProductKeyMemory  # noqa: E402

CONFIGS = {"paper": dict(d_model=1024, heads=4, knn=32, n_keys=512, k_dim=512, v_dim=1024),
           "bundled": dict(d_model=256, heads=4, knn=32, n_keys=128, k_dim=128, v_dim=256)}
TOKENS = [1, 8, 64, 512, 1024, 4096, 8192]


def median_ms(fn, iters):
    for _ in range(3):
        fn()
    times = []
    for _ in range(iters):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop))
    return sorted(times)[len(times) // 2]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "runs": []}
    print("| memory | tokens | torch eager ms |\n| --- | --- | --- |")
    for name, c in CONFIGS.items():
        m = ProductKeyMemory(**c).cuda().half()
        m.train()  # torch.topk selection, XLM's
        for n in TOKENS:
            x = torch.randn(n, c["d_model"], device="cuda", dtype=torch.half)
            with torch.no_grad():
                ms = median_ms(lambda: m(x), args.iters)
            print(f"| {name} | {n} | {ms:.4f} |")
            report["runs"].append({"memory": name, "tokens": n, "ms": ms})
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
