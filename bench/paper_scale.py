"""The engine at paper scale against the engine holding fp32 (as it did before typed weights) and
PyTorch eager, in one run: the bundled model and the synthetic ones (make synthetic).

Per model and engine: load time, peak resident memory (and its ratio to the model file), decode
tokens/s at batch 1 and 16, prefill tokens/s (last logits only), scoring tokens/s (every
position), the memory layers' µs per decode token, and batch-1 decode as a share of its
bandwidth limit (bytes a token reads ÷ read bandwidth measured in the same run; bench/bandwidth.h).
Each engine_bench and reference_bench run is a fresh process, so load time and resident memory
are each engine's own.

  /usr/bin/python3 bench/paper_scale.py --out bench/results/paper_scale.json
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"pkm-small": "models/pkm-small", "paper": "data/synthetic/paper", "memplus": "data/synthetic/memplus"}
ENGINES = {"as stored": ["--weights-dtype", "as-stored"], "fp32": ["--weights-dtype", "f32", "--pkm-values-dtype", "f32"]}
FIGURES = ("load_seconds", "peak_rss_bytes", "rss_over_file", "decode_tokens_per_s", "decode16_tokens_per_s",
           "prefill_tokens_per_s", "score_tokens_per_s", "pkm_us_per_decode_token",
           "decode_share_of_bandwidth_limit")


def workload(name: str, args) -> list:
    """The bundled model is small enough for the usual workload; the others get a shorter one."""
    if name == "pkm-small":
        return ["--decode-tokens", "64", "--prefill-tokens", "128", "--score-batch", "8", "--score-len", "256"]
    return ["--decode-tokens", str(args.decode_tokens), "--prefill-tokens", "128", "--score-batch", "2",
            "--score-len", "128"]


def run_json(cmd) -> dict:
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return json.loads(out[out.index("{"):out.rindex("}") + 1])


def engine_figures(binary: Path, model: str, flags: list, load: list, repeats: int) -> dict:
    base = [binary, "--model", model, "--repeats", repeats, *flags, *load]
    one = run_json(base)
    sixteen = run_json([*base, "--decode-batch", "16"])
    return {**one, "decode16_tokens_per_s": sixteen["decode_tokens_per_s"]}


def eager_figures(model: str, load: list, repeats: int, out: Path) -> dict:
    flags = dict(zip(load[::2], load[1::2]))
    cmd = [sys.executable, "bench/reference_bench.py", "--model", model, "--out", out, "--repeats", repeats,
           "--decode-tokens", flags["--decode-tokens"], "--prefill-tokens", flags["--prefill-tokens"],
           "--score-batch", flags["--score-batch"], "--score-len", flags["--score-len"], "--decode-batch", "1", "16"]
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, capture_output=True)
    r = json.loads((ROOT / out).read_text())
    file_bytes = (ROOT / model / "model.safetensors").stat().st_size
    return {**r, "decode16_tokens_per_s": r["decode_tokens_per_s_by_batch"]["16"],
            "rss_over_file": r["peak_rss_bytes"] / file_bytes}


def cell(figure: str, value) -> str:
    if value is None:
        return "-"
    if figure == "peak_rss_bytes":
        return f"{value / 2**20:.0f} MiB"
    if figure in ("rss_over_file", "decode_share_of_bandwidth_limit"):
        return f"{value:.2f}"
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine-bench", type=Path, default=Path("build/bin/engine_bench"))
    ap.add_argument("--models", nargs="*", choices=sorted(MODELS), default=list(MODELS))
    ap.add_argument("--decode-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-eager", action="store_true", help="leave PyTorch eager out (it is the slow part)")
    ap.add_argument("--out", type=Path, default=Path("bench/results/paper_scale.json"))
    args = ap.parse_args()
    results = {}
    for name in args.models:
        model, load = MODELS[name], workload(name, args)
        if not (ROOT / model / "model.safetensors").exists():
            sys.exit(f"paper_scale: {model} is missing (make synthetic writes the synthetic models)")
        row = {label: engine_figures(args.engine_bench, model, flags, load, args.repeats)
               for label, flags in ENGINES.items()}
        if not args.no_eager:
            row["pytorch eager"] = eager_figures(model, load, args.repeats, Path(f"bench/results/{name}.eager.tmp"))
        for label in row:
            row[label] = {f: row[label].get(f) for f in FIGURES} | {"settings": row[label].get("settings")}
        stored = row["as stored"]
        row["ratios"] = {f"over {other}": {f: stored[f] / row[other][f] for f in FIGURES
                                           if stored[f] and row[other].get(f)}
                         for other in row if other != "as stored"}
        results[name] = row
        print(f"paper_scale: {name} done", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    for name, row in results.items():
        engines = [e for e in row if e != "ratios"]
        print(f"\n**{name}**\n\n| figure | " + " | ".join(engines) + " | as stored ÷ fp32 | as stored ÷ eager |")
        print("| --- " * (len(engines) + 3) + "|")
        for f in FIGURES:
            ratios = [row["ratios"].get(f"over {o}", {}).get(f) for o in ("fp32", "pytorch eager")]
            print(f"| {f} | " + " | ".join(cell(f, row[e][f]) for e in engines) + " | " +
                  " | ".join("-" if r is None else f"{r:.2f}x" for r in ratios) + " |")


if __name__ == "__main__":
    main()
