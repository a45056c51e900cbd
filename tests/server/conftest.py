"""Options for the server's Python tests (ctest passes the binary's path)."""
import os

import pytest


def pytest_addoption(parser):
    parser.addoption("--pkmserve", default=os.path.join("build", "bin", "pkmserve"),
                     help="path of the pkmserve binary")


@pytest.fixture(scope="session")
def pkmserve(request):
    path = request.config.getoption("--pkmserve")
    if not os.path.exists(path):
        pytest.fail(f"{path} not found: build it first (make build)")
    return path
