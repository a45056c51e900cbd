"""The server's Python tests: the pkmserve binary (option --pkmserve, tests/conftest.py)."""
import os

import pytest


@pytest.fixture(scope="session")
def pkmserve(request):
    path = request.config.getoption("--pkmserve")
    if not os.path.exists(path):
        pytest.fail(f"{path} not found: build it first (make build)")
    return path


def pytest_addoption(parser):
    parser.addoption("--cuda-plugin", default=os.path.join("build", "lib", "libpkm_cuda_emu.so"),
                     help="the CUDA backend plugin that test_emulated_cuda.py serves with")
