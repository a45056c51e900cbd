"""The command line the held-out benchmarks share (dtype_perplexity.py, memory_reads_curve.py):
the build, the model, the held-out text (`make corpus`) and the JSON to write."""
import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse(description: str, out_name: str):
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", type=Path, default=ROOT / "build")
    ap.add_argument("--model", default=str(ROOT / "models/pkm-small"))
    ap.add_argument("--heldout", type=Path, default=ROOT / "data/corpus/heldout.txt")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results" / out_name)
    args = ap.parse_args()
    if not args.heldout.exists():
        raise SystemExit(f"{args.heldout}: not found; `make corpus` writes it")
    return args
