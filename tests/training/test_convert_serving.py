"""Converted models served end to end: an XLM checkpoint and a Memory Layers at Scale one,
converted with the bundled SentencePiece tokenizer, served by pkmserve; `pkm score` on a text
equals the perplexity of the SOURCE forward (tests/training/convert_sources.py) on the same
ids within 1e-4, and `pkm generate` streams.

ctest runs it as convert.ServesEndToEnd with the built binaries; a plain `pytest tests/training`
skips it when they have not been built.
"""
import json
import math
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import convert_sources as cs

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "client"))
sys.path.insert(0, str(ROOT))
from tests.client.servers import run_pkm, start_server  # noqa: E402

TOKENIZER = ROOT / "models/pkm-small/tokenizer.model"
TEXT = "The whale swam past the ship, and the sailors watched it go under the grey waves."


@pytest.fixture(scope="module")
def binaries(request):
    paths = Path(request.config.getoption("--pkmserve")), Path(request.config.getoption("--pkm"))
    for p in paths:
        if not p.exists():
            pytest.skip(f"{p} not built: this is ctest's convert.ServesEndToEnd (make build)")
    return [str(p) for p in paths]


@pytest.fixture(scope="module")
def served(binaries, tmp_path_factory):
    """name -> (gRPC address, source forward)."""
    tmp = tmp_path_factory.mktemp("served")
    sources = {}
    src, forward = cs.xlm_checkpoint(tmp / "xlm.pth", vocab=8000)
    cs.convert(["xlm", src, "--out", tmp / "xlm", "--tokenizer", TOKENIZER])
    sources["xlm"] = forward
    params = cs.lingua_params()
    params["model"]["vocab_size"] = 8000
    step = tmp / "lingua/checkpoints/0000000010"
    src, forward = cs.lingua_checkpoint(step, params=params)
    cs.convert(["lingua", step, "--out", tmp / "lingua", "--tokenizer", TOKENIZER])
    sources["lingua"] = forward
    procs, out = [], {}
    for name, forward in sources.items():
        proc, address, _ = start_server(binaries[0], "--model", str(tmp / name), "--threads", "2",
                                        "--kv-cache-bytes", "8M", "--metrics-listen", "off")
        procs.append(proc)
        out[name] = (address, forward)
    yield out
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def source_perplexity(forward, ids):
    with torch.no_grad():
        logits = forward(torch.tensor(ids, dtype=torch.int64))
    logprobs = F.log_softmax(logits[:-1].double(), dim=-1).gather(1, torch.tensor(ids[1:]).unsqueeze(1))
    return math.exp(-logprobs.mean().item()), len(ids) - 1


@pytest.mark.parametrize("name", ["xlm", "lingua"])
def test_score_equals_the_source_forward(binaries, served, name, tmp_path):
    address, forward = served[name]
    tok = run_pkm(binaries[1], "--server", address, "tokenize", "--json", TEXT)
    assert tok.returncode == 0, tok.stderr
    ids = json.loads(tok.stdout)["ids"]
    (tmp_path / "text.txt").write_text(TEXT)
    score = run_pkm(binaries[1], "--server", address, "score", "--json", str(tmp_path / "text.txt"))
    assert score.returncode == 0, score.stderr
    got = json.loads(score.stdout)
    want, count = source_perplexity(forward, ids)
    assert got["tokens"] == len(ids) and got["scored_tokens"] == count
    assert math.isclose(got["perplexity"], want, rel_tol=1e-4), (got["perplexity"], want)


@pytest.mark.parametrize("name", ["xlm", "lingua"])
def test_generate_streams(binaries, served, name):
    address, _ = served[name]
    out = run_pkm(binaries[1], "--server", address, "generate", "--json", "--max-tokens", "6",
                  "--ignore-eos", "--seed", "1", "The whale")
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert sum(len(e["tokens"]) for e in events) == 6
    assert events[-1]["finish_reason"] == "FINISH_REASON_LENGTH"
    info = json.loads(run_pkm(binaries[1], "--server", address, "info", "--json").stdout)
    assert info["family"] == {"xlm": "xlm", "lingua": "llama"}[name]
