"""Plots the training and held-out loss curves of a training log (log.jsonl) to a PNG.

Usage: /usr/bin/python3 -m training.plot --log data/train/log.jsonl --out docs/training-loss.png
"""
import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log", type=Path, default=Path("data/train/log.jsonl"))
    ap.add_argument("--out", type=Path, default=Path("docs/training-loss.png"))
    args = ap.parse_args()
    rows = [json.loads(line) for line in args.log.read_text().splitlines() if line.strip()]
    tokens = [r["tokens"] / 1e6 for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    ax.plot(tokens, [r["train_loss"] for r in rows], label="train (EMA of batch loss)")
    ax.plot(tokens, [r["heldout_loss"] for r in rows], label="held-out", marker="o", markersize=3)
    ax.set_xlabel("training tokens (millions)")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title("pkm-small: d=256, 6 layers, PKM in layer 4 (16,384 slots)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"plot: {args.out}")


if __name__ == "__main__":
    main()
