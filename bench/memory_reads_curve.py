"""Quality against speed of reading less of the memory per request (memory_knn, memory_heads)
on the bundled model, in one run: for each setting, the held-out perplexity (pkmserve, `pkm
score --memory-knn K --memory-heads H`) and engine_bench's decode (batch 1) and scoring
tokens/s with the same reads.

  make corpus   # data/corpus/heldout.txt
  /usr/bin/python3 bench/memory_reads_curve.py --out bench/results/memory_reads_curve.json
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


def main():
    args = heldout_args.parse(__doc__, "memory_reads_curve.json")
    pkm = str(args.build / "bin/pkm")
    proc, address, _ = start_server(str(args.build / "bin/pkmserve"), "--model", args.model,
                                    "--threads", "2", "--metrics-listen", "off")
    try:
        info = json.loads(run_pkm(pkm, "--server", address, "info", "--json").stdout)
        layer = info["pkm_layers"][0]
        knn, heads = layer["knn"], layer["heads"]
        settings = [(k, heads) for k in (knn, knn // 2, knn // 4, knn // 8, 2, 1) if k >= 1]
        settings += [(knn, h) for h in range(heads - 1, 0, -1)]
        rows = []
        for k, h in settings:
            out = run_pkm(pkm, "--server", address, "score", "--json", "--memory-knn", str(k),
                          "--memory-heads", str(h), str(args.heldout))
            if out.returncode != 0:
                raise SystemExit(out.stderr)
            scored = json.loads(out.stdout.splitlines()[-1])
            bench = subprocess.run([str(args.build / "bin/engine_bench"), "--model", args.model,
                                    "--repeats", "3", "--memory-knn", str(k), "--memory-heads", str(h)],
                                   capture_output=True, text=True, check=True).stdout
            speed = json.loads(bench[bench.index("{"):])
            rows.append({"memory_knn": k, "memory_heads": h, "perplexity": scored["perplexity"],
                         "decode_tokens_per_s": speed["decode_tokens_per_s"],
                         "score_tokens_per_s": speed["score_tokens_per_s"]})
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    base = rows[0]
    for r in rows:
        r["perplexity_vs_trained"] = r["perplexity"] / base["perplexity"] - 1
        r["decode_vs_trained"] = r["decode_tokens_per_s"] / base["decode_tokens_per_s"]
        r["score_vs_trained"] = r["score_tokens_per_s"] / base["score_tokens_per_s"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": args.model, "heldout": str(args.heldout),
                                    "trained": {"knn": knn, "heads": heads}, "rows": rows}, indent=1) + "\n")
    print("| memory_knn | memory_heads | held-out ppl | vs trained | decode tok/s | vs trained | score tok/s | vs trained |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['memory_knn']} | {r['memory_heads']} | {r['perplexity']:.3f} | {100 * r['perplexity_vs_trained']:+.2f}% "
              f"| {r['decode_tokens_per_s']:.0f} | {r['decode_vs_trained']:.2f}x | {r['score_tokens_per_s']:.0f} "
              f"| {r['score_vs_trained']:.2f}x |")


if __name__ == "__main__":
    main()
