"""Interoperability: a Python client (Debian's python3-grpcio) built from the .proto alone.

Stubs are generated at test time with protoc and grpc_python_plugin (the `api` fixture of
tests/server/conftest.py), so this proves the public proto is all another language needs.
Run by ctest:
    /usr/bin/python3 -m pytest tests/server/test_interop.py --pkmserve build/bin/pkmserve
"""
import math
import re
import signal
import subprocess
import urllib.request

import grpc
import pytest

from tests.client.servers import drain_stderr

REPO = __file__.rsplit("/tests/server/", 1)[0]
METRICS_URL = []


@pytest.fixture(scope="module")
def stub(api, pkmserve):
    proc = subprocess.Popen(
        [pkmserve, "--model", f"{REPO}/models/pkm-small", "--listen", "127.0.0.1:0",
         "--metrics-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
         "--threads", "1", "--kv-cache-bytes", "32M"],
        stderr=subprocess.PIPE, text=True)
    port = None
    for line in proc.stderr:
        m = re.search(r"metrics on (http://\S+)", line)
        if m:
            METRICS_URL.append(m.group(1))
        m = re.search(r"listening on [^ ]*:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    assert port, "pkmserve did not start"
    drain_stderr(proc, [])
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield api[1].InferenceStub(channel)
    channel.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0


def test_generate_streams_and_is_deterministic_when_greedy(api, stub):
    pb, _ = api
    req = pb.GenerateRequest(text="The whale", max_new_tokens=12, temperature=0.0,
                             ignore_eos=True, logprobs=True)
    runs = []
    for _ in range(2):
        msgs = list(stub.Generate(req, timeout=60))
        assert msgs[-1].finish_reason == pb.FINISH_REASON_LENGTH
        assert msgs[-1].usage.completion_tokens == 12
        ids = [t.id for m in msgs for t in m.tokens]
        assert len(ids) == 12
        assert all(t.logprob <= 0.0 for m in msgs for t in m.tokens)
        runs.append((ids, "".join(m.text for m in msgs)))
    assert runs[0] == runs[1]
    # The streamed text is the detokenized continuation.
    detok = stub.Detokenize(pb.DetokenizeRequest(ids=runs[0][0]), timeout=30)
    assert detok.text.strip() == runs[0][1].strip()


def test_score_reports_consistent_perplexity(api, stub):
    pb, _ = api
    text = "It is a truth universally acknowledged that a whale is large. " * 3
    tokens = stub.Tokenize(pb.TokenizeRequest(text=text), timeout=30).ids
    resp = stub.Score(pb.ScoreRequest(text=text, top_n=2), timeout=60)
    assert resp.token_count == len(tokens) - 1 == len(resp.tokens)
    assert [t.id for t in resp.tokens] == list(tokens[1:])
    assert math.isclose(resp.sum_nll, -sum(t.logprob for t in resp.tokens), rel_tol=1e-5)
    assert math.isclose(resp.perplexity, math.exp(resp.sum_nll / resp.token_count), rel_tol=1e-12)
    assert all(len(t.top) == 2 and t.top[0].logprob >= t.logprob for t in resp.tokens)


def test_tokenize_round_trip_and_model_info(api, stub):
    pb, _ = api
    text = "Call me Ishmael. Some years ago, never mind how long precisely."
    tok = stub.Tokenize(pb.TokenizeRequest(text=text), timeout=30)
    assert len(tok.ids) == len(tok.pieces) > 5
    assert stub.Detokenize(pb.DetokenizeRequest(ids=tok.ids), timeout=30).text == text
    info = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=30)
    assert info.name == "pkm-small"
    assert info.vocab_size == 8000 and info.max_seq_len == 256
    assert tok.ids[0] == info.bos_id
    assert len(info.pkm_layers) == 1 and info.pkm_layers[0].slots == info.pkm_layers[0].n_keys ** 2
    assert info.limits.kv_cache_tokens > 0


def test_invalid_argument_reaches_python(api, stub):
    pb, _ = api
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Generate(pb.GenerateRequest(text="x", temperature=500.0), timeout=30))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "temperature" in err.value.details()


def test_metrics_endpoint_serves_prometheus_text(api, stub):
    pb, _ = api
    msgs = list(stub.Generate(pb.GenerateRequest(text="Count me", max_new_tokens=7,
                                                 ignore_eos=True), timeout=30))
    assert sum(len(m.tokens) for m in msgs) == 7
    assert METRICS_URL, "pkmserve did not print its metrics address"
    body = urllib.request.urlopen(METRICS_URL[0], timeout=10).read().decode()
    assert "# TYPE pkmserve_time_to_first_token_seconds histogram" in body
    tokens = re.search(r'^pkmserve_generation_tokens_total\{model="pkm-small"\} (\S+)$', body, re.M)
    assert tokens and float(tokens.group(1)) >= 7
