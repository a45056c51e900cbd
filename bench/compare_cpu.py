"""CPU engine vs the PyTorch reference, one run, same machine, same model, same thread count.

Runs build/bin/engine_bench and bench/reference_bench.py (its faster torch.topk variant, the
stronger baseline) back to back on the same workloads
(single-stream decode; one step scoring a batch of 32 x 256 tokens), then writes
bench/results/cpu_engine.json with both records and the ratios, and prints a Markdown table
for docs/benchmarks.md.

Usage: /usr/bin/python3 bench/compare_cpu.py [--model models/pkm-small] [--threads 2]
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/pkm-small")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--build", default="build")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/cpu_engine.json")
    args = ap.parse_args()
    results = ROOT / "bench/results"
    results.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(ROOT / args.build / "bin/engine_bench"), "--model", args.model, "--threads",
                    str(args.threads), "--out", str(results / "engine.json")], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, str(ROOT / "bench/reference_bench.py"), "--model", args.model, "--threads",
                    str(args.threads), "--out", str(results / "reference.json")], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    ours = json.loads((results / "engine.json").read_text())
    ref = json.loads((results / "reference.json").read_text())
    ratios = {"decode": ours["decode_tokens_per_s"] / ref["decode_tokens_per_s"],
              "score": ours["score_tokens_per_s"] / ref["score_tokens_per_s"]}
    args.out.write_text(json.dumps({"engine": ours, "reference": ref, "ratios": ratios}, indent=1) + "\n")
    mib = 2 ** 20
    print(f"| workload | pkmserve CPU engine | PyTorch {ref['torch']} eager | ratio | goal |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| decode, batch 1 (tokens/s) | {ours['decode_tokens_per_s']:.1f} | {ref['decode_tokens_per_s']:.1f} "
          f"| **{ratios['decode']:.2f}x** | >= 3x |")
    print(f"| scoring, batch 32 x 256 (tokens/s) | {ours['score_tokens_per_s']:.0f} | {ref['score_tokens_per_s']:.0f} "
          f"| **{ratios['score']:.2f}x** | >= 1.5x |")
    print(f"| peak RSS (MiB) | {ours['peak_rss_bytes'] / mib:.0f} | {ref['peak_rss_bytes'] / mib:.0f} | | |")
    print()
    print(f"Engine memory: weights {ours['weight_bytes'] / mib:.1f} MiB (fp32) + KV cache "
          f"{ours['kv_cache_bytes'] / mib:.1f} MiB; peak RSS / (weights + KV) = "
          f"**{ours['rss_over_weights_plus_kv']:.2f}** (goal <= 1.20).")


if __name__ == "__main__":
    main()
