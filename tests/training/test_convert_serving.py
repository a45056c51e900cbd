"""Converted models served end to end: an XLM checkpoint with its dictionary and fastBPE codes
(learned here on a Debian licence text), and a Memory Layers at Scale one with the bundled
SentencePiece tokenizer, served by pkmserve; `pkm score` on a text equals the perplexity of the
SOURCE forward (tests/training/convert_sources.py) on the same ids within 1e-4, and `pkm
generate` streams. The XLM model's tokenize and detokenize equal XLM's pipeline
(tests/training/xlm_bpe.py) on real text, and without its codes it takes ids and returns text.

ctest runs it as convert.ServesEndToEnd with the built binaries; a plain `pytest tests/training`
skips it when they have not been built.
"""
import json
import math
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import torch
import torch.nn.functional as F

import convert_sources as cs
import xlm_bpe

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "client"))
sys.path.insert(0, str(ROOT))
from tests.client.servers import run_pkm, start_server  # noqa: E402

TOKENIZER = ROOT / "models/pkm-small/tokenizer.model"
TEXT = "The whale swam past the ship, and the sailors watched it go under the grey waves."
# XLM's codes and dictionary are learned on one licence and checked on others, so that words
# outside the dictionary (split back by its vocabulary check, or <unk>) occur.
BPE_CORPUS = Path("/usr/share/common-licenses/GPL-3")
BPE_CHECKED = [Path("/usr/share/common-licenses/Apache-2.0"), Path("/usr/share/common-licenses/MPL-2.0"),
               Path("/usr/share/common-licenses/Artistic")]


@pytest.fixture(scope="module")
def xlm_bpe_files(tmp_path_factory):
    """(codes path, dictionary words, reference Bpe)."""
    codes, words = xlm_bpe.build(BPE_CORPUS.read_text(), merges=1500, size=1200)
    path = tmp_path_factory.mktemp("bpe") / "codes"
    path.write_text(xlm_bpe.codes_text(codes))
    return path, words, xlm_bpe.Bpe(codes, words)


@pytest.fixture(scope="module")
def binaries(request):
    paths = Path(request.config.getoption("--pkmserve")), Path(request.config.getoption("--pkm"))
    for p in paths:
        if not p.exists():
            pytest.skip(f"{p} not built: this is ctest's convert.ServesEndToEnd (make build)")
    return [str(p) for p in paths]


@pytest.fixture(scope="module")
def served(binaries, xlm_bpe_files, tmp_path_factory):
    """name -> (gRPC address, source forward); "xlm_ids" is the XLM model without its codes."""
    tmp = tmp_path_factory.mktemp("served")
    sources = {}
    codes, words, _ = xlm_bpe_files
    src, forward = cs.xlm_checkpoint(tmp / "xlm.pth", words=words)
    cs.convert(["xlm", src, "--out", tmp / "xlm", "--tokenizer", codes])
    sources["xlm"] = forward
    cs.convert(["xlm", src, "--out", tmp / "xlm_ids"])
    sources["xlm_ids"] = forward
    params = cs.lingua_params()
    params["model"]["vocab_size"] = 8000
    step = tmp / "lingua/checkpoints/0000000010"
    src, forward = cs.lingua_checkpoint(step, params=params)
    cs.convert(["lingua", step, "--out", tmp / "lingua", "--tokenizer", TOKENIZER])
    sources["lingua"] = forward
    # lucidrains' package has no tokenizer of its own: served on token ids.
    src, forward = cs.lucidrains_checkpoint(tmp / "lucidrains.pt", tmp / "layout.json")
    cs.convert(["lucidrains", src, "--layout", tmp / "layout.json", "--topk", cs.PKM_TOPK, "--out",
                tmp / "lucidrains"])
    sources["lucidrains"] = forward
    procs, out = [], {}
    for name, forward in sources.items():
        proc, address, _ = start_server(binaries[0], "--model", str(tmp / name), "--threads", "2",
                                        "--kv-cache-bytes", "8M", "--metrics-listen", "off")
        procs.append(proc)
        out[name] = (address, forward)
    out["xlm_words"], out["xlm_bpe"] = words, xlm_bpe_files[2]
    yield out
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def words_of(served):
    return served["xlm_words"]


def xlm_bpe_reference(served):
    return served["xlm_bpe"]


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
    if name == "xlm":  # BOS is XLM's </s>
        assert ids == [1] + xlm_bpe.index(words_of(served), xlm_bpe_reference(served).apply(TEXT))
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


def test_lucidrains_scores_and_streams_on_token_ids(binaries, served, api):
    pb, rpc = api
    address, forward = served["lucidrains"]
    ids = cs.sequences(64)[2].tolist()
    with grpc.insecure_channel(address) as channel:
        stub = rpc.InferenceStub(channel)
        scored = stub.Score(pb.ScoreRequest(tokens=pb.TokenIds(ids=ids)), timeout=60)
        msgs = list(stub.Generate(pb.GenerateRequest(tokens=pb.TokenIds(ids=ids[:5]), max_new_tokens=6,
                                                     ignore_eos=True, seed=1), timeout=60))
    want, count = source_perplexity(forward, ids)
    assert scored.token_count == count
    assert math.isclose(scored.perplexity, want, rel_tol=1e-4), (scored.perplexity, want)
    assert sum(len(m.tokens) for m in msgs) == 6  # in one message or several, as the server sends
    assert msgs[-1].finish_reason == pb.FINISH_REASON_LENGTH
    info = pkm_json(binaries, address, "info")
    assert (info["family"], info["tokenizer"]) == ("lucidrains", "none")


def pkm_json(binaries, address, *args):
    out = run_pkm(binaries[1], "--server", address, *args, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("path", BPE_CHECKED, ids=lambda p: p.name)
def test_xlm_tokenizes_and_detokenizes_as_xlm_does(binaries, served, path):
    address, words, bpe = served["xlm"][0], served["xlm_words"], served["xlm_bpe"]
    text = path.read_text()
    got = pkm_json(binaries, address, "tokenize", "--no-bos", "--file", str(path))
    want = xlm_bpe.index(words, bpe.apply(text))
    assert len(want) > 1000 and xlm_bpe.UNK in want  # long enough, and it meets unknown words
    assert got["ids"] == want
    assert got["pieces"][:50] == [words[i] for i in want[:50]]
    # Detokenize gives XLM's tokenized text back: the words, with continued pieces joined.
    detok = pkm_json(binaries, address, "detokenize", *map(str, want[:3000]))
    assert detok["text"] == xlm_bpe.detokenize(words, want[:3000])


def test_xlm_without_codes_takes_ids_and_returns_text(binaries, served, api):
    pb, _ = api
    address, words = served["xlm_ids"][0], served["xlm_words"]
    info = pkm_json(binaries, address, "info")
    assert (info["tokenizer"], info["encodes_text"], info["decodes_text"]) == ("xlm", False, True)
    refused = run_pkm(binaries[1], "--server", address, "tokenize", "the whale")
    assert refused.returncode != 0 and "xlm_bpe_codes.txt" in refused.stderr, refused.stderr
    ids = [1, words.index("the"), words.index("work")]
    assert pkm_json(binaries, address, "detokenize", *map(str, ids))["text"] == "the work"
    with grpc.insecure_channel(address) as channel:
        stub = api[1].InferenceStub(channel)
        req = pb.GenerateRequest(tokens=pb.TokenIds(ids=ids), max_new_tokens=8, ignore_eos=True, seed=1)
        msgs = list(stub.Generate(req, timeout=60))
    generated = [t.id for m in msgs for t in m.tokens]
    assert len(generated) == 8
    assert "".join(m.text for m in msgs) == xlm_bpe.detokenize(words, ids + generated)[len("the work"):]
