"""The Prometheus integration test: the shared binaries (tests/conftest.py) plus the Debian
tools it drives, and where to keep the dashboard's screenshot."""
import shutil

import pytest


def pytest_addoption(parser):
    parser.addoption("--screenshot", default="",
                     help="also keep the console dashboard's screenshot at this path")


@pytest.fixture(scope="session")
def tools(binaries):
    for tool in ("prometheus", "chromium"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: scripts/setup.sh installs it (make setup)")
    return binaries
