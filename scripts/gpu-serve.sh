#!/usr/bin/env bash
# On the GPU machine (the device tool, from the repository root), with .gpu-serve/ made here by
# scripts/gpu-serve-bundle.sh: serves the bundled model with pkmserve --device=cuda, then with
# --device=cpu on the same machine, and for each runs `pkm bench` at concurrency 1, 16 and 64,
# scores a file, and scrapes /metrics. Every log and JSON goes to $OUT.
#   run(command="bash scripts/gpu-serve.sh", carry=[".gpu-serve"])
# The binaries run under the carried dynamic loader with the carried libraries first and the
# machine's CUDA toolkit and driver after them.
set -uo pipefail
OUT=${OUT:-gpu-out}
MODEL=${MODEL:-models/pkm-small}
DEVICES=${DEVICES:-"cuda cpu"}
CONCURRENCY=${CONCURRENCY:-"1 16 64"}
mkdir -p "$OUT"
[[ -x .gpu-serve/lib/ld-linux.so ]] || { echo "gpu-serve: .gpu-serve/ is missing: run scripts/gpu-serve-bundle.sh here and carry .gpu-serve" >&2; exit 1; }
BUNDLE=$PWD/.gpu-serve
CUDA_LIBS=$(ls -d /usr/local/cuda/lib64 /usr/local/cuda/targets/*/lib 2>/dev/null | paste -sd:)
export PKMSERVE_CUDA_PLUGIN=$BUNDLE/lib/libpkm_cuda.so
bundled() {  # bundled PROGRAM ARGS...: runs a carried binary under the carried loader
  local prog=$1; shift
  "$BUNDLE/lib/ld-linux.so" --library-path "$BUNDLE/lib:$CUDA_LIBS" "$BUNDLE/bin/$prog" "$@"
}
# The server runs in the background as its own process (exec), so that SIGTERM reaches it and
# its drain, not a subshell.
serve() { exec "$BUNDLE/lib/ld-linux.so" --library-path "$BUNDLE/lib:$CUDA_LIBS" "$BUNDLE/bin/pkmserve" "$@"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
status=0
bundled pkmserve --model "$MODEL" --device cuda --check > "$OUT/check_cuda.log" 2>&1 ||
  { echo "gpu-serve: pkmserve --check --device=cuda failed:"; cat "$OUT/check_cuda.log"; status=1; }

for device in $DEVICES; do
  (serve --model "$MODEL" --device "$device" --listen 127.0.0.1:50051 \
    --metrics-listen 127.0.0.1:9464 > "$OUT/serve_$device.log" 2>&1) &
  server=$!
  up=0
  for _ in $(seq 120); do
    if bundled pkm health > /dev/null 2>&1; then up=1; break; fi
    kill -0 "$server" 2> /dev/null || break
    sleep 0.5
  done
  if (( !up )); then
    echo "gpu-serve: pkmserve --device=$device did not come up:"; tail -20 "$OUT/serve_$device.log"
    kill "$server" 2> /dev/null; wait "$server" 2> /dev/null; status=1; continue
  fi
  bundled pkm info > "$OUT/info_$device.txt" 2>&1
  bundled pkm score README.md docs/training.md > "$OUT/score_$device.txt" 2>&1 || status=1
  for c in $CONCURRENCY; do
    n=$(( c * 8 > 64 ? c * 8 : 64 ))
    bundled pkm bench --concurrency "$c" --num-requests "$n" --seed 1 --json \
      > "$OUT/bench_${device}_c$c.json" 2> "$OUT/bench_${device}_c$c.err" || status=1
    python3 - "$OUT/bench_${device}_c$c.json" "$device" "$c" <<'PY' || cat "$OUT/bench_${device}_c$c.err"
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:5} c={sys.argv[3]:3} {r['output_token_throughput']:9.1f} tok/s  "
      f"TTFT p50 {r['ttft']['p50_ms']:7.2f} p99 {r['ttft']['p99_ms']:7.2f} ms  "
      f"ITL p50 {r['itl']['p50_ms']:6.2f} p99 {r['itl']['p99_ms']:6.2f} ms  failed {r['failed_requests']}")
PY
  done
  /usr/bin/env python3 -c 'import urllib.request,sys; sys.stdout.write(urllib.request.urlopen("http://127.0.0.1:9464/metrics").read().decode())' \
    > "$OUT/metrics_$device.txt" 2>&1 || true
  kill -TERM "$server"; wait "$server"
  echo "pkmserve --device=$device exited $?"
done
echo "== perplexity served on each device (equal to 1e-3 relative is the bar)"
python3 - "$OUT" $DEVICES <<'PY' || status=1
import re, sys
from pathlib import Path
out, devices = Path(sys.argv[1]), sys.argv[2:]
ppl = {}
for d in devices:
    f = out / f"score_{d}.txt"
    text = f.read_text() if f.exists() else ""
    ppl[d] = dict(re.findall(r"^(\S+): PPL = ([0-9.]+)", text, re.M))
    print(d, text.strip() or "(no scores)")
if len(devices) == 2 and all(ppl.values()):
    a, b = (ppl[d] for d in devices)
    worst = max(abs(float(a[k]) - float(b[k])) / float(b[k]) for k in a.keys() & b.keys())
    print(f"largest relative difference {devices[0]} vs {devices[1]}: {worst:.2e}")
    sys.exit(0 if worst <= 1e-3 else 1)
PY
exit $status
