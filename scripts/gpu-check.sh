#!/usr/bin/env bash
# On the GPU machine (the device tool, from the repository root): builds the CUDA kernels, the
# CUDA backend plugin, their tests and the benchmarks with only CUDA, CMake and a compiler (no
# gRPC, Abseil or SentencePiece there), runs them, and writes every log and JSON to $OUT.
# Run scripts/gpu-deps.sh here first and carry .gpu-deps; carry .gpu-serve too (made by
# scripts/gpu-serve-bundle.sh) to serve with pkmserve there in the same run:
#   run(command="bash scripts/gpu-check.sh", carry=[".gpu-deps", ".gpu-serve"], timeout_s=590)
# Steps run in the order of what matters most (build, tests, benchmark figures, the server,
# then the sanitizers and profilers); each has a time limit, and once DEADLINE seconds have
# passed the rest are listed as skipped, so the run always comes back with its table.
# ONLY="name1 name2" runs just the steps whose names start with one of those words (and the
# configure and build steps).
set -uo pipefail
OUT=${OUT:-gpu-out}
ARCH=${CUDA_ARCH:-90}
DEADLINE=${DEADLINE:-540}
STEP_LIMIT=${STEP_LIMIT:-240}
ONLY=${ONLY:-}
mkdir -p "$OUT"
status=0
wanted() {
  [[ -z $ONLY || $1 == configure || $1 == build ]] && return 0
  local w; for w in $ONLY; do [[ $1 == "$w"* ]] && return 0; done
  return 1
}
step() {  # step NAME COMMAND...: runs with a time limit, logs to $OUT/NAME.log, prints a row
  local name=$1; shift
  wanted "$name" || return 0
  if (( SECONDS >= DEADLINE )); then
    printf '%-28s skip        (past the %ss deadline)\n' "$name" "$DEADLINE"; return 0
  fi
  local limit=$(( DEADLINE - SECONDS < STEP_LIMIT ? DEADLINE - SECONDS : STEP_LIMIT ))
  local start=$SECONDS
  if timeout -k 5 "$limit" "$@" > "$OUT/$name.log" 2>&1; then
    printf '%-28s ok    %4ss\n' "$name" $((SECONDS - start))
  else
    printf '%-28s FAIL  %4ss  (tail of %s.log below)\n' "$name" $((SECONDS - start)) "$name"
    tail -20 "$OUT/$name.log"
    status=1
  fi
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
step configure cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DPKMSERVE_WITH_SERVER=OFF -DPKMSERVE_WITH_CUDA=ON -DPKMSERVE_CUDA_ON_CPU=OFF -DCMAKE_CUDA_ARCHITECTURES="$ARCH" \
  -DPKMSERVE_DEPS_DIR="$PWD/.gpu-deps"
step build cmake --build build-gpu --parallel --target kernels_cuda_test kernels_cpu_test \
  pkm_cuda_bench pkm_cuda test_engine_cuda test_backend_loader test_backend_ops engine_bench
# Correctness: the kernels and ops against the CPU reference, the engine on CUDA against the
# CPU engine.
step kernels_cuda_test build-gpu/tests/kernels_cuda_test
step kernels_cpu_test build-gpu/tests/kernels_cpu_test --gtest_brief=1
step test_backend_loader build-gpu/tests/test_backend_loader --gtest_brief=1
step test_backend_ops build-gpu/tests/test_backend_ops --gtest_brief=1
step test_engine_cuda build-gpu/tests/test_engine_cuda
# Issue 8's figures: the layer fused vs unfused vs PyTorch eager, gather vs copy bandwidth.
step bench_pkm build-gpu/bin/pkm_cuda_bench --out "$OUT/pkm_cuda.json"
step bench_pkm_torch python3 bench/cuda/pkm_torch.py --out "$OUT/pkm_torch.json"
# Issue 9's: decode at batch 1, 16, 64 and scoring, ours on CUDA vs the PyTorch reference on
# the same GPU.
for b in 1 16 64; do
  step "engine_cuda_b$b" build-gpu/bin/engine_bench --device cuda --decode-batch "$b" \
    --out "$OUT/engine_cuda_b$b.json"
  step "engine_torch_b$b" python3 bench/reference_bench.py --device cuda --decode-batch "$b" \
    --out "$OUT/reference_cuda_b$b.json"
done
# The whole server, from what scripts/gpu-serve-bundle.sh packed.
[[ -d .gpu-serve ]] && step serve env OUT="$OUT" bash scripts/gpu-serve.sh
step memcheck_kernels compute-sanitizer --tool memcheck --error-exitcode 1 \
  build-gpu/tests/kernels_cuda_test --gtest_brief=1
step racecheck_kernels compute-sanitizer --tool racecheck --error-exitcode 1 \
  build-gpu/tests/kernels_cuda_test --gtest_brief=1
step memcheck_engine compute-sanitizer --tool memcheck --error-exitcode 1 \
  build-gpu/tests/test_engine_cuda --gtest_brief=1
step ncu_pkm ncu --kernel-name regex:'SelectKernel|GatherKernel' --launch-skip 6 --launch-count 2 \
  --section SpeedOfLight --section MemoryWorkloadAnalysis build-gpu/bin/pkm_cuda_bench --iters 1
command -v nsys > /dev/null && step nsys_decode nsys profile --stats=true -o "$OUT/decode" \
  build-gpu/bin/engine_bench --device cuda --decode-tokens 32 --repeats 1 --score-batch 1 \
  --score-len 16
echo "== figures"
cat "$OUT/bench_pkm.log" "$OUT/bench_pkm_torch.log" 2>/dev/null
grep -h '"engine"\|tokens_per_s\|decode_batch' "$OUT"/engine_*.log 2>/dev/null
grep -h 'c=' "$OUT/serve.log" 2>/dev/null
exit $status
