"""Options for the Prometheus integration test (ctest passes the binaries' paths)."""
import os
import shutil

import pytest


def pytest_addoption(parser):
    parser.addoption("--pkmserve", default=os.path.join("build", "bin", "pkmserve"))
    parser.addoption("--pkm", default=os.path.join("build", "bin", "pkm"))
    parser.addoption("--screenshot", default="",
                     help="also keep the console dashboard's screenshot at this path")


@pytest.fixture(scope="session")
def binaries(request):
    paths = request.config.getoption("--pkmserve"), request.config.getoption("--pkm")
    for p in paths:
        if not os.path.exists(p):
            pytest.fail(f"{p} not found: build it first (make build)")
    for tool in ("prometheus", "chromium"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: scripts/setup.sh installs it (make setup)")
    return paths
