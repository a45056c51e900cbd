"""The server's Python tests: the pkmserve binary (option --pkmserve, tests/conftest.py; the
gRPC stubs are tests/conftest.py's api)."""
import os

import pytest


@pytest.fixture(scope="session")
def pkmserve(request):
    path = request.config.getoption("--pkmserve")
    if not os.path.exists(path):
        pytest.fail(f"{path} not found: build it first (make build)")
    return path


def pytest_addoption(parser):
    parser.addoption("--requests", type=int, default=10000,
                     help="requests of test_reliability.py's random cancel and deadline mix")
    parser.addoption("--sanitized", action="store_true",
                     help="pkmserve is a sanitizer build: memory figures are not compared")
    parser.addoption("--cuda-plugin", default=os.path.join("build", "lib", "libpkm_cuda_emu.so"),
                     help="the CUDA backend plugin that test_emulated_cuda.py serves with")
