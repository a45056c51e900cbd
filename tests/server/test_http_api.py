"""The OpenAI-compatible HTTP API (docs/http-api.md) against the gRPC API of the same server,
with clients nobody here wrote: Python's urllib and curl. Completions equal Generate's tokens,
echo + logprobs equal Score's numbers exactly, streams are framed as server-sent events ending
in [DONE], bad requests get OpenAI's error shape with a 4xx status and leave the server serving,
and a bearer token guards every route but /health."""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import grpc
import pytest

from tests.client.servers import make_tls, start_server

BASE = ["--threads", "2", "--kv-cache-bytes", "32M"]
PROMPT = "Once upon a time"


def call(url, path, body=None, token=None, raw=None, method=None):
    """(status, parsed JSON body) of one request; raw: bytes sent as they are."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def served(pkmserve, api):
    proc, address, metrics = start_server(pkmserve, *BASE)
    channel = grpc.insecure_channel(address)
    yield proc, proc.http_url, api[1].InferenceStub(channel), metrics
    channel.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0


def test_health_models_and_the_log_line(served):
    proc, url, _, _ = served
    assert any(re.search(r"INFO http on http://127\.0\.0\.1:\d+/v1", l) for l in proc.log_lines)
    assert call(url, "/health") == (200, {"status": "ok"})
    status, models = call(url, "/v1/models")
    assert status == 200 and models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["pkm-small"]
    assert models["data"][0]["max_model_len"] == 256


def test_tokenize_and_detokenize_equal_grpc(api, served):
    pb, _ = api
    _, url, stub, _ = served
    status, got = call(url, "/tokenize", {"prompt": PROMPT})
    want = stub.Tokenize(pb.TokenizeRequest(text=PROMPT), timeout=30)
    assert status == 200 and got["tokens"] == list(want.ids) and got["pieces"] == list(want.pieces)
    _, bare = call(url, "/tokenize", {"prompt": PROMPT, "add_special_tokens": False})
    assert bare["tokens"] == list(want.ids)[1:]
    status, text = call(url, "/detokenize", {"tokens": got["tokens"]})
    assert status == 200 and text == {"content": PROMPT}


def test_a_completion_equals_generate(api, served):
    pb, _ = api
    _, url, stub, _ = served
    status, got = call(url, "/v1/completions", {"model": "pkm-small", "prompt": PROMPT, "max_tokens": 12,
                                                "temperature": 0, "logprobs": 2})
    msgs = list(stub.Generate(pb.GenerateRequest(text=PROMPT, max_new_tokens=12, temperature=0,
                                                 logprobs=True, top_logprobs=2), timeout=60))
    tokens = [t for m in msgs for t in m.tokens]
    assert status == 200 and got["object"] == "text_completion" and got["id"].startswith("cmpl-")
    choice = got["choices"][0]
    assert choice["text"] == "".join(m.text for m in msgs)
    assert choice["finish_reason"] == "length"
    assert got["usage"] == {"prompt_tokens": msgs[-1].usage.prompt_tokens, "completion_tokens": 12,
                            "total_tokens": msgs[-1].usage.prompt_tokens + 12}
    lp = choice["logprobs"]
    assert lp["tokens"] == [t.piece for t in tokens]
    assert lp["token_logprobs"] == [t.logprob for t in tokens]  # exact: float32 through JSON
    assert [list(d) for d in lp["top_logprobs"]] == [[a.piece for a in t.top_logprobs] for t in tokens]
    assert lp["text_offset"][0] == 0 and lp["text_offset"] == sorted(lp["text_offset"])


def test_token_id_prompts_and_stop_strings(served):
    _, url, _, _ = served
    _, ids = call(url, "/tokenize", {"prompt": PROMPT})
    _, by_text = call(url, "/v1/completions", {"prompt": PROMPT, "max_tokens": 8, "temperature": 0})
    _, by_ids = call(url, "/v1/completions", {"prompt": ids["tokens"], "max_tokens": 8, "temperature": 0})
    assert by_ids["choices"][0]["text"] == by_text["choices"][0]["text"]
    word = by_text["choices"][0]["text"].split()[1]
    _, stopped = call(url, "/v1/completions", {"prompt": PROMPT, "max_tokens": 8, "temperature": 0,
                                               "stop": [word]})
    assert stopped["choices"][0]["finish_reason"] == "stop"
    assert word not in stopped["choices"][0]["text"]
    assert by_text["choices"][0]["text"].startswith(stopped["choices"][0]["text"])


def test_echo_with_logprobs_equals_score_exactly(api, served):
    """The log-likelihood request of lm-eval-harness: echo, max_tokens 0, logprobs."""
    pb, _ = api
    _, url, stub, _ = served
    text = "The quick brown fox jumps over the lazy dog."
    status, got = call(url, "/v1/completions", {"prompt": text, "max_tokens": 0, "echo": True, "logprobs": 1})
    scored = stub.Score(pb.ScoreRequest(text=text, per_token=True, top_n=1), timeout=60)
    assert status == 200
    choice = got["choices"][0]
    assert choice["text"] == text
    lp = choice["logprobs"]
    assert lp["token_logprobs"][0] is None and lp["top_logprobs"][0] is None
    assert lp["token_logprobs"][1:] == [t.logprob for t in scored.tokens]
    assert lp["tokens"][1:] == [t.piece for t in scored.tokens]
    assert [list(d.items()) for d in lp["top_logprobs"][1:]] == \
        [[(a.piece, a.logprob) for a in t.top] for t in scored.tokens]
    # Offsets index the echoed text: each token's text starts where the prefix before it ends.
    assert lp["text_offset"] == sorted(lp["text_offset"]) and lp["text_offset"][-1] < len(text)
    assert got["usage"]["completion_tokens"] == 0


def test_echo_then_generation(served):
    _, url, _, _ = served
    _, plain = call(url, "/v1/completions", {"prompt": PROMPT, "max_tokens": 5, "temperature": 0, "logprobs": 0})
    _, echoed = call(url, "/v1/completions", {"prompt": PROMPT, "max_tokens": 5, "temperature": 0,
                                              "logprobs": 0, "echo": True})
    assert echoed["choices"][0]["text"] == PROMPT + plain["choices"][0]["text"]
    _, bare = call(url, "/v1/completions", {"prompt": PROMPT, "max_tokens": 5, "temperature": 0, "echo": True})
    assert bare["choices"][0]["text"] == echoed["choices"][0]["text"]
    assert bare["choices"][0]["logprobs"] is None
    lp, gen = echoed["choices"][0]["logprobs"], plain["choices"][0]["logprobs"]
    assert lp["token_logprobs"][-5:] == gen["token_logprobs"]
    assert lp["text_offset"][-5:] == [o + len(PROMPT) for o in gen["text_offset"]]


def sse(url, body, token=None):
    """curl's view of a stream: the raw bytes."""
    cmd = ["curl", "-sN", "-X", "POST", url + "/v1/completions", "-H", "Content-Type: application/json",
           "-d", json.dumps(body)]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(cmd, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.decode()


def test_a_stream_is_server_sent_events_ending_in_done(served):
    _, url, _, _ = served
    raw = sse(url, {"prompt": PROMPT, "max_tokens": 10, "temperature": 0, "stream": True})
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    chunks = [json.loads(e[len("data: "):]) for e in events[:-2]]
    assert all(e.startswith("data: ") for e in events[:-2])
    assert all(c["object"] == "text_completion" for c in chunks)
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "length"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    _, whole = call(url, "/v1/completions", {"prompt": PROMPT, "max_tokens": 10, "temperature": 0})
    assert "".join(c["choices"][0]["text"] for c in chunks) == whole["choices"][0]["text"]
    assert chunks[-1]["usage"]["completion_tokens"] == 10


def kv_usage(metrics):
    text = urllib.request.urlopen(f"http://{metrics}/metrics", timeout=30).read().decode()
    return float(re.search(r"^pkmserve_kv_cache_usage_ratio(?:\{[^}]*\})? (\S+)$", text, re.M).group(1))


def test_a_client_that_leaves_a_stream_frees_its_cache(served):
    _, url, _, metrics = served
    host, port = url[len("http://"):].rsplit(":", 1)
    proc = served[0]
    # Greedy from this prompt meets no EOS in 240 tokens, so the stream is still running when
    # the client leaves.
    request = {"prompt": PROMPT, "max_tokens": 240, "temperature": 0}
    _, whole = call(url, "/v1/completions", request)
    assert whole["usage"]["completion_tokens"] == 240
    body = json.dumps({**request, "stream": True}).encode()
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        received = b""
        while b"data: " not in received:  # the headers may come alone first
            chunk = s.recv(4096)
            assert chunk, received
            received += chunk
    deadline = time.time() + 30
    while kv_usage(metrics) > 0 and time.time() < deadline:
        time.sleep(0.2)
    assert kv_usage(metrics) == 0
    # Cancelled, not run to its 240 tokens.
    deadline = time.time() + 10
    while not any("request failed" in l and "api=http" in l and "code=CANCELLED" in l
                  for l in proc.log_lines) and time.time() < deadline:
        time.sleep(0.1)
    assert any("request failed" in l and "api=http" in l and "code=CANCELLED" in l
               for l in proc.log_lines), "".join(proc.log_lines[-5:])
    assert call(url, "/health")[0] == 200


@pytest.mark.parametrize("raw,status,words", [
    (b"{not json", 400, "not valid JSON"),
    (b'{"prompt": 5}', 400, "field 'prompt': expected a string or an array of token ids"),
    (b'{"prompt": "x", "max_tokens": "9"}', 400, "field 'max_tokens': expected an integer"),
    (b'{"prompt": "x", "n": 2}', 400, "field 'n'"),
    (b'{"prompt": "x", "temperature": 500}', 400, "temperature must be in [0, 100]"),
    (b'{"prompt": [1, 999999]}', 400, "999999"),
    (b'{"prompt": "x", "max_tokens": 100000}', 400, "max_new_tokens"),
])
def test_bad_requests_get_openai_errors_and_the_server_keeps_serving(served, raw, status, words):
    _, url, _, _ = served
    got_status, body = call(url, "/v1/completions", raw=raw)
    assert got_status == status, body
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "invalid_request_error"
    assert words in body["error"]["message"], body
    assert call(url, "/health")[0] == 200


def test_unknown_routes_and_huge_bodies(served):
    _, url, _, _ = served
    status, body = call(url, "/v1/chat/nothing", {"x": 1})
    assert status == 404 and "no such route" in body["error"]["message"]
    status, body = call(url, "/v1/completions", raw=b'{"prompt": "' + b"a" * (2 << 20) + b'"}')
    assert status == 413 and "too large: at most 1048576 bytes" in body["error"]["message"]
    assert call(url, "/health")[0] == 200


def test_a_bearer_token_guards_every_route_but_health(pkmserve, tmp_path):
    token = "s3cret-token"
    (tmp_path / "token").write_text(token + "\n")
    proc, _, _ = start_server(pkmserve, *BASE, "--auth-token-file", str(tmp_path / "token"))
    try:
        url = proc.http_url
        missing = call(url, "/v1/models")
        wrong = call(url, "/v1/models", token="not-it")
        assert missing[0] == wrong[0] == 401 and missing[1] == wrong[1]  # which one is not said
        assert missing[1]["error"]["type"] == "authentication_error"
        assert call(url, "/v1/models", token=token)[0] == 200
        assert call(url, "/health")[0] == 200
        status, _ = call(url, "/v1/completions", {"prompt": "x", "max_tokens": 1}, token=token)
        assert status == 200
        assert token not in "".join(proc.log_lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def test_off_serves_no_http(pkmserve):
    proc, _, _ = start_server(pkmserve, *BASE, "--http-listen", "off")
    try:
        assert proc.http_url is None
        assert not any("http on" in l for l in proc.log_lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


OPENAI_CLIENT = f"{__file__.rsplit('/', 1)[0]}/openai_client"


def openai_sdk():
    """The official openai npm package, installed from package-lock.json when missing."""
    if not os.path.isdir(f"{OPENAI_CLIENT}/node_modules/openai"):
        npm = shutil.which("npm")
        assert npm, "npm is missing (scripts/setup.sh installs nodejs with npm)"
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=OPENAI_CLIENT, check=True,
                       capture_output=True, timeout=300)
    return ["node", f"{OPENAI_CLIENT}/client.mjs"]


def test_the_official_openai_sdk_talks_to_it(pkmserve, tmp_path):
    token = "sdk-token"
    (tmp_path / "token").write_text(token)
    proc, _, _ = start_server(pkmserve, *BASE, "--auth-token-file", str(tmp_path / "token"))
    try:
        url = proc.http_url
        run = subprocess.run([*openai_sdk(), url, token], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        sdk = json.loads(run.stdout)
        assert sdk["models"] == ["pkm-small"]
        _, want = call(url, "/v1/completions", {"prompt": PROMPT, "max_tokens": 8, "temperature": 0},
                       token=token)
        assert sdk["plain"]["text"] == want["choices"][0]["text"]
        assert sdk["plain"]["finish_reason"] == "length" and sdk["plain"]["usage"] == want["usage"]
        assert "".join(sdk["stream"]["texts"]) == want["choices"][0]["text"]
        assert sdk["stream"]["finish_reason"] == "length" and len(sdk["stream"]["texts"]) >= 2
        _, lp = call(url, "/v1/completions", {"prompt": PROMPT, "max_tokens": 4, "temperature": 0,
                                              "logprobs": 2}, token=token)
        assert sdk["logprobs"] == lp["choices"][0]["logprobs"]
        assert sdk["echo"]["text"] == PROMPT and sdk["echo"]["logprobs"]["token_logprobs"][0] is None
        assert sdk["wrong_key"]["status"] == 401 and sdk["wrong_key"]["name"] == "AuthenticationError"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def test_metrics_count_http_calls_apart_from_grpc(served):
    _, url, _, metrics = served

    def count(name, **labels):
        text = urllib.request.urlopen(f"http://{metrics}/metrics", timeout=30).read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    ok_before = count("pkmserve_request_success_total", api="http", finish_reason="length")
    bad_before = count("pkmserve_request_failure_total", api="http", code="INVALID_ARGUMENT")
    grpc_before = count("pkmserve_request_success_total", api="grpc")
    call(url, "/v1/completions", {"prompt": PROMPT, "max_tokens": 2, "temperature": 0})
    call(url, "/v1/completions", raw=b"{")
    assert count("pkmserve_request_success_total", api="http", finish_reason="length") == ok_before + 1
    assert count("pkmserve_request_failure_total", api="http", code="INVALID_ARGUMENT") == bad_before + 1
    assert count("pkmserve_request_success_total", api="grpc") == grpc_before


def test_tls_serves_https_only(pkmserve, tmp_path):
    ca, cert, key = make_tls(tmp_path)
    proc, _, _ = start_server(pkmserve, *BASE, "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        url = proc.http_url
        assert url.startswith("https://"), url
        context = ssl.create_default_context(cafile=str(ca))
        with urllib.request.urlopen(url + "/v1/models", context=context, timeout=30) as r:
            assert json.loads(r.read())["data"][0]["id"] == "pkm-small"
        # Plaintext gets no answer: the connection ends in the TLS handshake.
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
            urllib.request.urlopen(url.replace("https://", "http://") + "/v1/models", timeout=30).read()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def test_draining_answers_503_and_finishes_accepted_streams(pkmserve):
    proc, _, _ = start_server(pkmserve, *BASE)
    url = proc.http_url
    host, port = url[len("http://"):].rsplit(":", 1)
    # Eight streams of 120 tokens (no EOS, as above): still running when SIGTERM comes.
    request = json.dumps({"prompt": PROMPT, "max_tokens": 120, "temperature": 0, "stream": True}).encode()
    streams = []
    for _ in range(8):
        s = socket.create_connection((host, int(port)), timeout=60)
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  + f"Content-Length: {len(request)}\r\n\r\n".encode() + request)
        streams.append(s)
    received = [b""] * len(streams)
    while not all(b"data: " in r for r in received):  # every stream is running
        for i, s in enumerate(streams):
            if b"data: " not in received[i]:
                received[i] += s.recv(65536)
    proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30  # the signal is handled asynchronously
    while (health := call(url, "/health")) == (200, {"status": "ok"}) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert health == (503, {"status": "draining"})
    status, body = call(url, "/v1/completions", {"prompt": PROMPT, "max_tokens": 2})
    assert status == 503 and body["error"]["type"] == "server_error"
    for i, s in enumerate(streams):  # each accepted stream runs to its end
        while b"data: [DONE]" not in received[i]:
            chunk = s.recv(65536)
            assert chunk, received[i][-300:]
            received[i] += chunk
        assert b'"finish_reason":"length"' in received[i]
        s.close()
    assert proc.wait(timeout=60) == 0


def test_idle_connections_do_not_stop_it_serving(served):
    _, url, _, _ = served
    host, port = url[len("http://"):].rsplit(":", 1)
    idle = [socket.create_connection((host, int(port)), timeout=30) for _ in range(32)]
    try:
        idle[0].sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        status, body = call(url, "/v1/completions", {"prompt": PROMPT, "max_tokens": 2, "temperature": 0})
        assert status == 200 and body["usage"]["completion_tokens"] == 2
    finally:
        for s in idle:
            s.close()


def test_the_listener_queues_a_burst_of_connections(served):
    # httplib's own backlog is 5: a sixth client connecting before the accept loop runs again
    # would have its SYN dropped and wait a second. ss's Send-Q of a listening socket is its
    # backlog (capped by net.core.somaxconn).
    _, url, _, _ = served
    port = url.rsplit(":", 1)[1]
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True,
                         check=True).stdout.split()
    somaxconn = int(open("/proc/sys/net/core/somaxconn").read())
    assert out[0] == "LISTEN" and int(out[2]) == min(somaxconn, socket.SOMAXCONN), out


def test_a_client_that_stalls_mid_request_is_answered_400_after_the_timeout(pkmserve):
    proc, _, _ = start_server(pkmserve, *BASE, "--http-timeout", "1")
    try:
        host, port = proc.http_url[len("http://"):].rsplit(":", 1)
        for partial in [b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{",
                        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"]:
            with socket.create_connection((host, int(port)), timeout=30) as s:
                s.sendall(partial)
                started = time.monotonic()
                answer = s.recv(65536)
                assert time.monotonic() - started < 10
                # The headers and the body may come in separate segments.
                head, _, body = answer.partition(b"\r\n\r\n")
                length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
                while len(body) < length and (chunk := s.recv(65536)):
                    body += chunk
                answer = head + b"\r\n\r\n" + body
            assert answer.startswith(b"HTTP/1.1 400 "), answer
            assert b"sent nothing for 1 s (--http-timeout)" in answer, answer
        status, body = call(proc.http_url, "/v1/completions", {"prompt": PROMPT, "max_tokens": 2})
        assert status == 200 and body["usage"]["completion_tokens"] == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def test_health_says_loading_until_the_model_is_ready(pkmserve, tmp_path):
    """The API listens before the model loads. A config.json that is a FIFO holds the loader in
    open() until the test opens the other end, which it then finds not to be a regular file."""
    model = tmp_path / "model"
    model.mkdir()
    os.mkfifo(model / "config.json")
    proc = subprocess.Popen([pkmserve, "--model", str(model), "--listen", "127.0.0.1:0",
                             "--metrics-listen", "off", "--http-listen", "127.0.0.1:0"],
                            stderr=subprocess.PIPE, text=True)
    try:
        url = None
        for line in proc.stderr:
            m = re.search(r"http on (http://[^ ]+:\d+)/v1", line)
            if m:
                url = m.group(1)
                break
        assert url, "no 'http on' line before the model loads"
        assert call(url, "/health") == (503, {"status": "loading"})
        status, body = call(url, "/v1/models")
        assert status == 503 and body["error"]["message"] == "the model is loading"
        status, _ = call(url, "/v1/completions", {"prompt": "x"})
        assert status == 503
    finally:
        with open(model / "config.json", "w"):
            pass  # lets the loader's open() return
        rest = proc.stderr.read()
        assert proc.wait(timeout=60) == 2, rest
    assert "not a regular file" in rest
