"""Evaluates an exported model on the corpus: perplexity and the paper's memory statistics.

Perplexity: exp(mean NLL) over non-overlapping windows of --seq-len tokens (each window starts
a fresh context, every token scored once), on the whole held-out split and on --train-windows
windows spread evenly over the training split.

Memory statistics (Lample et al. 2019, section 4.4), per memory layer, over all held-out tokens:
  z_i   = sum over tokens and heads of the softmax weight given to slot i
  usage = #{i : z_i > 0} / n_slots                    (share of slots ever read)
  KL    = sum_i p_i log(p_i * n_slots), p = z / sum(z) (KL of the weight distribution from uniform)

Usage: /usr/bin/python3 -m training.evaluate --model models/pkm-small --tokens data/train --out docs/training-eval.json
"""
import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from training.checkpoint import load_model


@torch.no_grad()
def evaluate_stream(model, stream: torch.Tensor, seq_len: int, max_windows: int = 0, batch: int = 16):
    total_windows = (len(stream) - 1) // seq_len
    n = min(total_windows, max_windows) if max_windows else total_windows
    # A sample spread evenly over the stream, so it covers every source of the corpus.
    starts = [i * total_windows // n * seq_len for i in range(n)]
    # Keyed "4" for a block's memory and "4_after" for an after memory (their lookup order).
    names = [str(layer) + ("_after" if placement == "after" else "") for layer, placement, _ in model.memories()]
    z = {name: torch.zeros(m.n_keys ** 2, dtype=torch.float64) for name, (_, _, m) in zip(names, model.memories())}
    total, count = 0.0, 0
    for start in range(0, n, batch):
        x = torch.stack([stream[s:s + seq_len + 1] for s in starts[start:start + batch]])
        lookups = []
        logits = model(x[:, :-1], lookups=lookups)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="sum").item()
        count += x[:, 1:].numel()
        for name, (ids, w) in zip(names, lookups):
            z[name].index_add_(0, ids.reshape(-1), w.reshape(-1).double())
    memory = {}
    for name, zi in z.items():
        slots = zi.numel()
        p = zi / zi.sum()
        nz = p[p > 0]
        memory[name] = {"usage": (zi > 0).float().mean().item(),
                        "kl_to_uniform": (nz * torch.log(nz * slots)).sum().item()}
    return {"nll": total / count, "ppl": math.exp(total / count), "tokens": count, "memory": memory}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("models/pkm-small"))
    ap.add_argument("--tokens", type=Path, default=Path("data/train"), help="folder with tokens_{train,heldout}.npy")
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--train-windows", type=int, default=448, help="training windows sampled (same count as held-out)")
    ap.add_argument("--out", type=Path, default=Path("docs/training-eval.json"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = load_model(args.model)
    result = {"seq_len": args.seq_len}
    for split, windows in (("heldout", 0), ("train", args.train_windows)):
        stream = torch.from_numpy(np.load(args.tokens / f"tokens_{split}.npy").astype(np.int64))
        result[split] = evaluate_stream(model, stream, args.seq_len, windows)
        r = result[split]
        mem = ", ".join(f"layer {k}: usage {v['usage']:.1%}, KL {v['kl_to_uniform']:.3f}" for k, v in r["memory"].items())
        print(f"{split}: ppl {r['ppl']:.2f} over {r['tokens']} tokens; {mem}", flush=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
