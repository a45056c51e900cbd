"""Options shared by the Python tests that drive the built binaries (ctest passes the paths)."""
import os

import pytest


def pytest_addoption(parser):
    parser.addoption("--pkmserve", default=os.path.join("build", "bin", "pkmserve"),
                     help="path of the pkmserve binary")
    parser.addoption("--pkm", default=os.path.join("build", "bin", "pkm"),
                     help="path of the pkm CLI")
    parser.addoption("--test-families", default=os.path.join("build", "tests", "test_families"),
                     help="path of the C++ family parity test (tests/engine/test_families.cc)")


@pytest.fixture(scope="session")
def binaries(request):
    """(pkmserve, pkm) paths; fails when they are not built."""
    paths = request.config.getoption("--pkmserve"), request.config.getoption("--pkm")
    for p in paths:
        if not os.path.exists(p):
            pytest.fail(f"{p} not found: build it first (make build)")
    return paths
