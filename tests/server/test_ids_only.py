"""A model directory without tokenizer.model is served on token ids: GetModelInfo says so,
token-id requests work (Score equals the reference's goldens), and every text field, stop
strings, Tokenize and Detokenize get FAILED_PRECONDITION naming what to send instead."""
import json
import math
import signal
import subprocess

import grpc
import pytest
import torch

from tests.client.servers import start_server
from training import safetensors_io

MODEL = "tests/data/families/llama"  # a format 2 family model: no tokenizer.model


@pytest.fixture(scope="module")
def served(pkmserve, api):
    proc, address, _ = start_server(pkmserve, "--model", MODEL, "--threads", "2",
                                    "--kv-cache-bytes", "4M", "--metrics-listen", "off")
    channel = grpc.insecure_channel(address)
    yield proc, address, api[1].InferenceStub(channel)
    channel.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0


def test_model_info_and_log_say_token_ids_only(request, served):
    proc, address, _ = served
    assert any("serving token ids only" in line for line in proc.log_lines)
    pkm = request.config.getoption("--pkm")
    info = subprocess.run([pkm, "--server", address, "info", "--json"], capture_output=True,
                          text=True, timeout=60)
    assert info.returncode == 0, info.stderr
    j = json.loads(info.stdout)
    assert j["tokenizer"] == "none" and j["family"] == "llama"
    assert j["encodes_text"] is False and j["decodes_text"] is False
    text = subprocess.run([pkm, "--server", address, "info"], capture_output=True, text=True,
                          timeout=60).stdout
    assert "tokenizer   none: served on token ids only" in text


def test_score_on_token_ids_equals_the_reference(api, served):
    pb, _ = api
    golden = safetensors_io.load(f"{MODEL}/golden.safetensors")
    tokens = golden["seq1.tokens"].tolist()
    logits = golden["seq1.logits"].double()
    want = torch.log_softmax(logits[:-1], dim=-1).gather(1, torch.tensor(tokens[1:]).unsqueeze(1))
    resp = served[2].Score(pb.ScoreRequest(tokens=pb.TokenIds(ids=tokens)), timeout=60)
    got = [t.logprob for t in resp.tokens]
    assert len(got) == len(tokens) - 1
    for g, w in zip(got, want.squeeze(1).tolist()):
        assert math.isclose(g, w, rel_tol=1e-4, abs_tol=1e-5), (g, w)


def test_generate_on_token_ids_streams(api, served):
    pb, _ = api
    req = pb.GenerateRequest(tokens=pb.TokenIds(ids=[1, 5, 9]), max_new_tokens=4, ignore_eos=True,
                             temperature=0)
    msgs = list(served[2].Generate(req, timeout=60))
    assert sum(len(m.tokens) for m in msgs) == 4
    assert msgs[-1].finish_reason == pb.FINISH_REASON_LENGTH


@pytest.mark.parametrize("call,want", [
    ("generate_text", "text needs a tokenizer that encodes text, and this model is served on token "
                      "ids only: its directory has no tokenizer"),
    ("score_text", "send tokens (token ids) instead"),
    ("stop", "stop needs a tokenizer that decodes text"),
    ("tokenize", "Tokenize needs a tokenizer that encodes text"),
    ("detokenize", "Detokenize needs a tokenizer that decodes text"),
])
def test_text_is_refused_naming_what_to_send(api, served, call, want):
    pb, _ = api
    stub = served[2]
    calls = {
        "generate_text": lambda: list(stub.Generate(pb.GenerateRequest(text="hi"), timeout=30)),
        "score_text": lambda: stub.Score(pb.ScoreRequest(text="hi there"), timeout=30),
        "stop": lambda: list(stub.Generate(pb.GenerateRequest(tokens=pb.TokenIds(ids=[1, 2]),
                                                              stop=["x"]), timeout=30)),
        "tokenize": lambda: stub.Tokenize(pb.TokenizeRequest(text="hi"), timeout=30),
        "detokenize": lambda: stub.Detokenize(pb.DetokenizeRequest(ids=[1, 2]), timeout=30),
    }
    with pytest.raises(grpc.RpcError) as err:
        calls[call]()
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert want in err.value.details(), err.value.details()
