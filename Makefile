# Entry points: make serve (set up, build, serve the bundled model) and make test (set up,
# build, run every test). Scripts use Debian's interpreter, which sees python3-torch & co.
PY       ?= /usr/bin/python3
BUILD    ?= build
MODEL    ?= models/pkm-small
GENERATOR := $(shell command -v ninja >/dev/null 2>&1 && echo "-G Ninja")
CMAKE_FLAGS ?=
ifeq ($(CI),true)
  CMAKE_FLAGS += -DPKMSERVE_WERROR=ON
endif

.PHONY: setup setup-serve build build-serve test test-cpp test-asan test-python serve bench dashboard-screenshot corpus tokenizer train export golden families synthetic model clean

# Two package sets (scripts/setup.sh): serving needs a compiler and the server's libraries;
# testing, training and the benchmarks add GoogleTest, torch, Prometheus and Chromium.
setup:
	@bash scripts/setup.sh all

setup-serve:
	@bash scripts/setup.sh serve

build: setup
	@cmake -S . -B $(BUILD) $(GENERATOR) -DCMAKE_BUILD_TYPE=Release -DPKMSERVE_BUILD_TESTS=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) --parallel

# The server, its CUDA plugin and the CLI, without the tests (which need GoogleTest).
build-serve: setup-serve
	@cmake -S . -B $(BUILD) $(GENERATOR) -DCMAKE_BUILD_TYPE=Release -DPKMSERVE_BUILD_TESTS=OFF $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) --parallel --target pkmserve pkm

test: build
	@$(MAKE) --no-print-directory test-cpp test-python test-asan

test-cpp:
	@ctest --test-dir $(BUILD) --output-on-failure --timeout 600

# The loader reads untrusted files, the engine indexes by ids, the scheduler shares state and
# the CUDA kernels (on HIP-CPU) index shared and device memory by hand:
# they run again under ASan + UBSan.
ASAN_TESTS := dtype_test model_config_test model_config_v2_test safetensors_test model_loader_test \
  bundled_model_test test_engine test_families test_pkm_usage test_scheduler kernels_cuda_emu_test \
  test_backend_ops_emu test_families_cuda_emu tiktoken_test
test-asan:
	@cmake -S . -B $(BUILD)-asan $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPKMSERVE_SANITIZE=address,undefined \
	  -DPKMSERVE_WITH_SERVER=OFF -DPKMSERVE_WITH_CUDA=OFF $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD)-asan --parallel --target $(ASAN_TESTS)
	@set -e; for t in $(ASAN_TESTS); do \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 $(BUILD)-asan/tests/$$t --gtest_brief=1; done

test-python:
	@$(PY) -m pytest -q tests/training

# ARGS goes to pkmserve: make serve ARGS="--listen 0.0.0.0:50051 --log-format json"
ARGS ?=
serve: build-serve
	$(BUILD)/bin/pkmserve --model $(MODEL) $(ARGS)

bench: build
	@$(PY) bench/compare_cpu.py --model $(MODEL) --build $(BUILD)
	@OMP_WAIT_POLICY=passive $(BUILD)/bin/server_bench --model $(MODEL) --out bench/results/server.json
	@OMP_WAIT_POLICY=passive $(BUILD)/bin/metrics_bench --model $(MODEL) --out bench/results/metrics.json

# The console dashboard under load, as docs/metrics.md shows it (a real Prometheus + Chromium).
dashboard-screenshot: build
	@$(PY) -m pytest -q -p no:cacheprovider tests/deploy/test_prometheus.py -k console \
	  --pkmserve $(BUILD)/bin/pkmserve --pkm $(BUILD)/bin/pkm --screenshot docs/dashboard-console.png

# ---- reproducing the bundled model (see docs/training.md) -----------------------------------
corpus: setup
	$(PY) training/corpus.py --out data/corpus --cache data/npm

tokenizer: corpus
	$(PY) training/tokenizer.py --corpus data/corpus --vocab 8000 --out data/tokenizer

train: tokenizer
	$(PY) -m training.train --out data/train --minutes 90 --lr 2e-3 --warmup 100 --eval-every 100

export:
	$(PY) -m training.export --checkpoint data/train/best.pt --tokenizer data/tokenizer.model --out $(MODEL) --dtype float16

golden:
	$(PY) -m training.golden --model $(MODEL) --out tests/data/golden

# Tiny random-weight models of every format 2 option, with their goldens (docs/training.md).
families:
	$(PY) -m training.families --out tests/data/families

# The paper-scale models of the benchmarks, random weights (data/synthetic, about 4 GB; docs/benchmarks.md).
synthetic: setup
	$(PY) -m training.synthetic --out data/synthetic

model: train export golden

clean:
	rm -rf $(BUILD)
