"""The server's Python tests: the pkmserve binary (option --pkmserve, tests/conftest.py) and
Python stubs generated from the public proto."""
import importlib
import os
import subprocess
import sys

import pytest

from tests.server import figures

REPO = __file__.rsplit("/tests/server/", 1)[0]


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


@pytest.fixture(scope="session")
def pkmserve(request):
    path = request.config.getoption("--pkmserve")
    if not os.path.exists(path):
        pytest.fail(f"{path} not found: build it first (make build)")
    return path


@pytest.fixture(scope="session", autouse=True)
def figures_file(request):
    figures.OUT = request.config.getoption("--figures")


def pytest_addoption(parser):
    parser.addoption("--requests", type=int, default=10000,
                     help="requests of test_reliability.py's random cancel and deadline mix")
    parser.addoption("--sanitized", action="store_true",
                     help="pkmserve is a sanitizer build: memory figures are not compared")
    parser.addoption("--figures", default=None,
                     help="a JSON file the fault tests write their figures to")
    parser.addoption("--cuda-plugin", default=os.path.join("build", "lib", "libpkm_cuda_emu.so"),
                     help="the CUDA backend plugin that test_emulated_cuda.py serves with")
