"""pkmserve --device cuda on the CUDA backend built on HIP-CPU (libpkm_cuda_emu.so, the same
backend source as libpkm_cuda.so, run on the CPU): the server comes up on cuda, and what it serves
equals the CPU backend's: the perplexity of a file within 1e-3 relative, and greedy text."""
import json
import math
import os
import signal
import subprocess

import pytest

from tests.client.servers import start_server

HELDOUT = "tests/data/heldout.txt"


@pytest.fixture(scope="module")
def servers(request, binaries):
    plugin = request.config.getoption("--cuda-plugin")
    if not os.path.exists(plugin):
        pytest.fail(f"{plugin} not found: build it first (make build)")
    # The servers inherit the environment; the cpu one does not open the plugin.
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("PKMSERVE_CUDA_PLUGIN", plugin)
    started = {}
    for device in ("cuda", "cpu"):
        started[device] = start_server(binaries[0], "--device", device, "--threads", "2",
                                       "--kv-cache-bytes", "32M")[:2]
    monkeypatch.undo()
    yield {d: a for d, (_, a) in started.items()}
    for proc, _ in started.values():
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0


def pkm(binaries, *args):
    out = subprocess.run([binaries[1], *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_serves_on_the_cuda_backend(binaries, servers):
    info = json.loads(pkm(binaries, "info", "--server", servers["cuda"], "--json"))
    assert info["device"] == "cuda"
    assert json.loads(pkm(binaries, "info", "--server", servers["cpu"], "--json"))["device"] == "cpu"


def test_perplexity_equals_the_cpu_backends(binaries, servers, tmp_path):
    # A slice of the held-out text in two windows: the emulated device runs a block's threads
    # one after another, about 50 ms per scored position at this model's size.
    text = tmp_path / "heldout-start.txt"
    with open(HELDOUT) as f:
        text.write_text(" ".join(f.read().split()[:60]) + "\n")
    got = {d: json.loads(pkm(binaries, "score", "--server", a, "--json", "--mode", "stride",
                             "--ctx", "64", "--stride", "32", str(text)))
           for d, a in servers.items()}
    assert got["cuda"]["windows"] >= 2
    assert got["cuda"]["scored_tokens"] == got["cpu"]["scored_tokens"] > 0
    assert math.isclose(got["cuda"]["perplexity"], got["cpu"]["perplexity"], rel_tol=1e-3)


def test_greedy_text_equals_the_cpu_backends(binaries, servers):
    text = {d: pkm(binaries, "generate", "--server", a, "--max-tokens", "12", "--temperature", "0",
                   "--ignore-eos", "The sea")
            for d, a in servers.items()}
    assert text["cuda"].strip() and text["cuda"] == text["cpu"]
