"""Options shared by the Python tests that drive the built binaries (ctest passes the paths),
the gRPC stubs they call pkmserve with, and where their figures go."""
import importlib
import os
import subprocess
import sys

import pytest

from tests.server import figures

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_addoption(parser):
    parser.addoption("--pkmserve", default=os.path.join("build", "bin", "pkmserve"),
                     help="path of the pkmserve binary")
    parser.addoption("--pkm", default=os.path.join("build", "bin", "pkm"),
                     help="path of the pkm CLI")
    parser.addoption("--test-families", default=os.path.join("build", "tests", "test_families"),
                     help="path of the C++ family parity test (tests/engine/test_families.cc)")
    parser.addoption("--figures", default=None,
                     help="a JSON file the fault, load and scale-out tests write their figures to")


@pytest.fixture(scope="session")
def binaries(request):
    """(pkmserve, pkm) paths; fails when they are not built."""
    paths = request.config.getoption("--pkmserve"), request.config.getoption("--pkm")
    for p in paths:
        if not os.path.exists(p):
            pytest.fail(f"{p} not found: build it first (make build)")
    return paths


@pytest.fixture(scope="session", autouse=True)
def figures_file(request):
    figures.OUT = request.config.getoption("--figures")


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """(inference_pb2, inference_pb2_grpc), generated with protoc and grpc_python_plugin."""
    out = tmp_path_factory.mktemp("stubs")
    subprocess.run(
        ["protoc", f"-I{REPO}/proto", f"--python_out={out}", f"--grpc_out={out}",
         "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin",
         f"{REPO}/proto/pkmserve/v1/inference.proto"],
        check=True)
    sys.path.insert(0, str(out))
    pb = importlib.import_module("pkmserve.v1.inference_pb2")
    rpc = importlib.import_module("pkmserve.v1.inference_pb2_grpc")
    return pb, rpc
