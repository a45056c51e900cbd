"""Options for the CLI's Python tests (ctest passes the binaries' paths)."""
import os

import pytest


def pytest_addoption(parser):
    parser.addoption("--pkmserve", default=os.path.join("build", "bin", "pkmserve"))
    parser.addoption("--pkm", default=os.path.join("build", "bin", "pkm"))


@pytest.fixture(scope="session")
def binaries(request):
    paths = request.config.getoption("--pkmserve"), request.config.getoption("--pkm")
    for p in paths:
        if not os.path.exists(p):
            pytest.fail(f"{p} not found: build it first (make build)")
    return paths
