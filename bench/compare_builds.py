"""Decode and scoring speed of two builds (or two settings) of engine_bench on the same model, in one run.

The two binaries run alternately, `--rounds` times each, so that noise from the machine falls on
both; each figure is the best of its rounds, and the result is the ratio new / old. Used to show
that a change (e.g. composing blocks from parts) does not slow the bundled model down.

  /usr/bin/python3 bench/compare_builds.py --old OLD/bin/engine_bench --new build/bin/engine_bench \
      --out bench/results/compare_builds.json
  # one build, weights widened to fp32 (as before typed weights) against as stored:
  /usr/bin/python3 bench/compare_builds.py --old build/bin/engine_bench --old-args="--weights-dtype f32" \
      --new build/bin/engine_bench --out bench/results/weights_dtype.json
"""
import argparse
import json
import subprocess
from pathlib import Path

FIGURES = ("decode_tokens_per_s", "score_tokens_per_s")
MEMORY = ("weight_bytes", "peak_rss_bytes")


def run(binary, model, extra):
    out = subprocess.run([binary, "--model", model, "--repeats", "1", *extra], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out[out.index("{"):])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", required=True, help="engine_bench of the previous build")
    ap.add_argument("--new", required=True, help="engine_bench of this build")
    ap.add_argument("--model", default="models/pkm-small")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--old-args", default="", help="extra engine_bench flags of the old side")
    ap.add_argument("--new-args", default="", help="extra engine_bench flags of the new side")
    ap.add_argument("--out", type=Path, default=Path("bench/results/compare_builds.json"))
    args = ap.parse_args()
    best = {"old": {}, "new": {}}
    for _ in range(args.rounds):
        for side, binary, extra in (("old", args.old, args.old_args), ("new", args.new, args.new_args)):
            r = run(binary, args.model, extra.split())
            for f in FIGURES:
                best[side][f] = max(best[side].get(f, 0.0), r[f])
            for f in MEMORY:
                best[side][f] = r[f]
    result = {"model": args.model, "rounds": args.rounds, "old_args": args.old_args, "new_args": args.new_args,
              "old": best["old"], "new": best["new"],
              "ratio_new_over_old": {f: best["new"][f] / best["old"][f] for f in FIGURES + MEMORY}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"| figure | old {args.old_args} | new {args.new_args} | ratio |\n| --- | --- | --- | --- |")
    for f in FIGURES + MEMORY:
        print(f"| {f} | {best['old'][f]:.1f} | {best['new'][f]:.1f} | "
              f"{result['ratio_new_over_old'][f]:.3f} |")


if __name__ == "__main__":
    main()
