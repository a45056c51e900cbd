"""scripts/setup.sh's two package sets and the Makefile entry points that use them: `make serve`
installs and builds only what serving needs and passes ARGS to pkmserve; `make test` installs
everything."""
import os
import subprocess

import pytest

# Needed by tests, training, the benchmarks or the dashboard shot, never by the server.
TEST_ONLY = ["python3-torch", "python3-pytest", "python3-grpcio", "libgtest-dev",
             "libbenchmark-dev", "prometheus", "chromium", "nodejs"]


def package_set(name):
    out = subprocess.run(["bash", "scripts/setup.sh", "--list", name], capture_output=True,
                         text=True, check=True)
    return out.stdout.split()


def make_dry_run(*args):
    out = subprocess.run(["make", "-n", "--no-print-directory", *args], capture_output=True,
                         text=True, check=True)
    return out.stdout


def test_the_serve_set_holds_no_test_package():
    serve, everything = package_set("serve"), package_set("all")
    assert set(serve) < set(everything)
    assert not set(TEST_ONLY) & set(serve)
    assert set(TEST_ONLY) <= set(everything)
    bad = subprocess.run(["bash", "scripts/setup.sh", "nonsense"], capture_output=True, text=True)
    assert bad.returncode == 2 and "expected serve or all" in bad.stderr


def test_the_serve_set_holds_what_the_tokenizers_link():
    # SentencePiece and PCRE2 (the tiktoken pre-tokenizer) serve requests, not only tests.
    assert {"libsentencepiece-dev", "libpcre2-dev"} <= set(package_set("serve"))


def test_make_serve_uses_the_serve_set_and_passes_args():
    plan = make_dry_run("serve", "ARGS=--log-format json --listen 127.0.0.1:0")
    assert "scripts/setup.sh serve" in plan and "scripts/setup.sh all" not in plan
    assert "-DPKMSERVE_BUILD_TESTS=OFF" in plan
    assert plan.rstrip().endswith(
        "bin/pkmserve --model models/pkm-small --log-format json --listen 127.0.0.1:0")
    assert "scripts/setup.sh all" in make_dry_run("test")


def test_the_serve_build_configures_without_test_packages(tmp_path):
    """CMake configures the serve build with GoogleTest and Google Benchmark made unfindable, as
    on a machine that ran only `scripts/setup.sh serve`."""
    out = subprocess.run(
        ["cmake", "-S", ".", "-B", str(tmp_path / "build"), "-DCMAKE_BUILD_TYPE=Release",
         "-DPKMSERVE_BUILD_TESTS=OFF", "-DCMAKE_DISABLE_FIND_PACKAGE_GTest=ON",
         "-DCMAKE_DISABLE_FIND_PACKAGE_benchmark=ON"],
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    # The targets make serve builds exist in that configuration.
    targets = subprocess.run(["cmake", "--build", str(tmp_path / "build"), "--target", "help"],
                             capture_output=True, text=True, check=True).stdout
    for target in ("pkmserve", "pkm"):
        assert f"{target}:" in targets or f" {target}\n" in targets, targets
