"""Throughput of the PyTorch reference model (eager; CPU, or a GPU with --device cuda): the baseline the
C++ engine is measured against.

Measures, on one model and thread count:
  decode  greedy decoding of --decode-batch streams with a KV cache: tokens/s over --decode-tokens
          steps after a --prompt-tokens prefill
  prefill one prompt of --prefill-tokens tokens, the last position's logits only: tokens/s
  score   batch --score-batch x --score-len token windows, one forward each: tokens/s
and the load time (model directory to model ready) and peak resident memory. Token ids are drawn with a fixed seed: speed does not depend on content.

Writes --out (JSON) and prints a Markdown table row.
Usage: /usr/bin/python3 bench/reference_bench.py --model models/pkm-small --out bench/results/reference.json
"""
import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from training.checkpoint import load_model  # noqa: E402


def sync(device: str):
    if device == "cuda":
        torch.cuda.synchronize()


def best_of(fn, repeats: int, device: str) -> float:
    """Seconds of the fastest of `repeats` runs (after one warm-up run)."""
    fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


@torch.no_grad()
def decode_seconds(model, prompt_tokens: int, decode_tokens: int, batch: int, gen: torch.Generator,
                   device: str) -> float:
    prompt = torch.randint(0, model.cfg.vocab_size, (batch, prompt_tokens), generator=gen).to(device)
    cache = model.new_cache()
    logits = model(prompt, cache=cache)
    sync(device)
    start = time.perf_counter()
    for _ in range(decode_tokens):
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        logits = model(nxt, cache=cache)
    sync(device)
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("models/pkm-small"))
    ap.add_argument("--out", type=Path, default=Path("bench/results/reference.json"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=16)
    ap.add_argument("--decode-tokens", type=int, default=128)
    ap.add_argument("--prefill-tokens", type=int, default=128)
    ap.add_argument("--score-batch", type=int, default=32)
    ap.add_argument("--score-len", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--decode-batch", type=int, nargs="+", default=[1], help="streams decoded in lockstep (one run each)")
    ap.add_argument("--topk", choices=["ordered", "torch"], default="torch",
                    help="PKM selection: torch.topk (fastest; ties unordered) or the tie-exact sort of eval mode")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model = load_model(args.model).to(args.device)
    sync(args.device)
    load_s = time.perf_counter() - start
    if args.topk == "torch":
        # Training mode switches the memory to torch.topk; the exported model has no BatchNorm
        # or dropout, so nothing else changes. This is the faster, stronger baseline.
        for _, pkm in model.pkm_modules():
            pkm.train()
    gen = torch.Generator().manual_seed(0)

    decode_tps = {}
    for batch in args.decode_batch:
        seconds = min(decode_seconds(model, args.prompt_tokens, args.decode_tokens, batch, gen, args.device)
                      for _ in range(args.repeats + 1))  # the first warms up
        decode_tps[str(batch)] = batch * args.decode_tokens / seconds
    prompt = torch.randint(0, model.cfg.vocab_size, (1, args.prefill_tokens), generator=gen).to(args.device)
    prefill_s = best_of(lambda: torch.no_grad()(model)(prompt, last_only=True), args.repeats, args.device)
    windows = torch.randint(0, model.cfg.vocab_size, (args.score_batch, args.score_len), generator=gen).to(args.device)
    score_s = best_of(lambda: torch.no_grad()(model)(windows), args.repeats, args.device)

    result = {
        "engine": f"pytorch-reference-eager ({args.topk} top-k)", "torch": torch.__version__, "threads": args.threads,
        "cpu": platform.processor() or platform.machine(), "model": str(args.model),
        "device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
        "load_seconds": load_s,
        "decode_tokens_per_s": decode_tps[str(args.decode_batch[0])],
        "decode_tokens_per_s_by_batch": decode_tps,
        "prefill_tokens_per_s": args.prefill_tokens / prefill_s,
        "score_tokens_per_s": args.score_batch * args.score_len / score_s,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "settings": {k: v for k, v in vars(args).items() if k not in ("model", "out")},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"| engine | threads | decode tok/s (batch {args.decode_batch[0]}) | score tok/s (batch {args.score_batch}) | peak RSS MiB |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| {result['engine']} | {args.threads} | {result['decode_tokens_per_s']:.1f} | "
          f"{result['score_tokens_per_s']:.0f} | {result['peak_rss_bytes'] / 2**20:.0f} |")


if __name__ == "__main__":
    main()
