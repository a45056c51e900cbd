#!/usr/bin/env bash
# On the GPU machine (the device tool, from the repository root): builds the CUDA kernels and
# their tests with only CUDA, CMake and a compiler (no gRPC, Abseil or SentencePiece there),
# runs the tests plainly and under compute-sanitizer's memcheck and racecheck, and writes
# every log to $OUT. Run scripts/gpu-deps.sh here first and carry .gpu-deps:
#   run(command="bash scripts/gpu-check.sh", carry=[".gpu-deps"])
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
ARCH=${CUDA_ARCH:-90}
status=0
step() {  # step NAME COMMAND...: runs, logs to $OUT/NAME.log, prints a line of the table
  local name=$1; shift
  local start=$SECONDS
  if "$@" > "$OUT/$name.log" 2>&1; then
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
  -DPKMSERVE_WITH_SERVER=OFF -DPKMSERVE_WITH_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$ARCH" \
  -DPKMSERVE_DEPS_DIR="$PWD/.gpu-deps"
step build cmake --build build-gpu --parallel --target kernels_cuda_test kernels_cpu_test \
  pkm_cuda_bench pkm_cuda test_engine_cuda test_backend_loader engine_bench
step kernels_cuda_test build-gpu/tests/kernels_cuda_test
step kernels_cpu_test build-gpu/tests/kernels_cpu_test --gtest_brief=1
step test_backend_loader build-gpu/tests/test_backend_loader --gtest_brief=1
step test_engine_cuda build-gpu/tests/test_engine_cuda
step memcheck compute-sanitizer --tool memcheck --error-exitcode 1 \
  build-gpu/tests/kernels_cuda_test --gtest_brief=1
step memcheck_engine compute-sanitizer --tool memcheck --error-exitcode 1 \
  build-gpu/tests/test_engine_cuda --gtest_brief=1
step racecheck compute-sanitizer --tool racecheck --error-exitcode 1 \
  build-gpu/tests/kernels_cuda_test --gtest_brief=1
step bench build-gpu/bin/pkm_cuda_bench --out "$OUT/pkm_cuda.json"
step bench_torch python3 bench/cuda/pkm_torch.py --out "$OUT/pkm_torch.json"
step ncu ncu --kernel-name regex:'SelectKernel|GatherKernel' --launch-skip 6 --launch-count 2 \
  --section SpeedOfLight --section MemoryWorkloadAnalysis build-gpu/bin/pkm_cuda_bench --iters 1
# The engine (issue 9): decode at batch 1, 16, 64 and scoring, ours on CUDA vs the PyTorch
# reference on the same GPU.
for b in 1 16 64; do
  step "engine_cuda_b$b" build-gpu/bin/engine_bench --device cuda --decode-batch "$b" \
    --out "$OUT/engine_cuda_b$b.json"
  step "reference_cuda_b$b" python3 bench/reference_bench.py --device cuda --decode-batch "$b" \
    --out "$OUT/reference_cuda_b$b.json"
done
command -v nsys > /dev/null && step nsys_decode nsys profile --stats=true -o "$OUT/decode" build-gpu/bin/engine_bench \
  --device cuda --decode-tokens 32 --repeats 1 --score-batch 1 --score-len 16
cat "$OUT/bench.log" "$OUT/bench_torch.log" 2>/dev/null
cat "$OUT"/engine_cuda_b*.json "$OUT"/reference_cuda_b*.json 2>/dev/null
exit $status
