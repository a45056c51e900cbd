"""pkmserve --device cuda on the CUDA backend built on HIP-CPU (libpkm_cuda_emu.so, the same
backend source as libpkm_cuda.so, run on the CPU): the server comes up on cuda, and what it serves
equals the CPU backend's: the perplexity of a file within 1e-3 relative, and greedy text."""
import json
import math
import os
import signal
import subprocess
from pathlib import Path

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


def test_memory_reads_are_refused_on_cuda_and_served_on_the_cpu(binaries, servers):
    args = ["generate", "--max-tokens", "2", "--memory-knn", "2", "The sea"]
    out = subprocess.run([binaries[1], "--server", servers["cuda"], *args], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode != 0 and "reads every memory in full" in out.stderr, out.stderr
    assert pkm(binaries, "--server", servers["cpu"], *args).strip()


def refused_by_cuda(out):
    """A random-weight model that the CUDA PKM lookup refuses (v_dim 30: its 16-byte value
    loads need a multiple of 4), with the bundled tokenizer so that it serves text."""
    import torch
    from training.config import FFN, Attention, Config, LMHead, Memory, Norm, Positions
    from training.export import export
    from training.model import PKMTransformer
    torch.manual_seed(0)
    cfg = Config(vocab_size=8000, d_model=30, n_layers=2, max_seq_len=64, bos_id=1, eos_id=2,
                 family="pkmserve", dtype="float32", norm=Norm("layernorm", 1e-5, True),
                 positions=Positions("rope", theta=10000.0), attention=Attention(3, 3, 10, True),
                 ffn=FFN("gelu", 64, True), lm_head=LMHead(True, False),
                 memories=[Memory(layer=1, placement="replace", heads=2, knn=4, n_keys=8, k_dim=8,
                                  v_dim=30, query_bias=True)])
    export(PKMTransformer(cfg).eval(), Path("models/pkm-small/tokenizer.model"), out)
    return out


def test_auto_falls_back_to_the_cpu_when_cuda_refuses_a_part(request, binaries, tmp_path):
    model = refused_by_cuda(tmp_path / "v30")
    env = {**os.environ, "PKMSERVE_CUDA_PLUGIN": request.config.getoption("--cuda-plugin")}
    must = subprocess.run([binaries[0], "--device", "cuda", "--model", str(model), "--check"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert must.returncode != 0
    assert "cannot run the memory of layer 1 (replace)" in must.stderr, must.stderr
    assert "pkm_v_dim must be a multiple of 4" in must.stderr, must.stderr
    proc, address, _ = start_server(binaries[0], "--device", "auto", "--model", str(model),
                                    "--threads", "2", "--kv-cache-bytes", "8M", env=env)
    try:
        log = "".join(proc.log_lines)
        assert "--device=auto: the cuda" in log and "serving on the CPU" in log, log
        assert json.loads(pkm(binaries, "info", "--server", address, "--json"))["device"] == "cpu"
        pkm(binaries, "generate", "--server", address, "--max-tokens", "3", "x")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
