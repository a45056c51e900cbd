"""pkmserve as a new user meets it: flags, environment, start-up checks, UTF-8, truncation, the
default length, the log and the outcome counters. Run by ctest:
    /usr/bin/python3 -m pytest tests/server/test_front_door.py --pkmserve build/bin/pkmserve
"""
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request

import grpc
import pytest

from tests.client.servers import scrape, series, start_server

REPO = __file__.rsplit("/tests/server/", 1)[0]
MODEL = f"{REPO}/models/pkm-small"
BASE = ["--threads", "1", "--kv-cache-bytes", "32M"]
TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def run(pkmserve, *args, env=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PKMSERVE_")}
    full_env.update(env or {})
    return subprocess.run([pkmserve, *args], capture_output=True, text=True, timeout=60,
                          env=full_env)


# ---- flags -----------------------------------------------------------------------------------

def test_help_lists_every_flag_dashed_with_default_and_env(pkmserve):
    out = run(pkmserve, "--help")
    assert out.returncode == 0, out.stderr
    flags = re.findall(r"^  --([a-z0-9-]+)", out.stdout, re.M)
    for name in ["model", "listen", "metrics-listen", "max-batch-tokens", "max-prompt-tokens",
                 "log-format", "log-stats-interval", "version"]:
        assert name in flags, out.stdout
    assert not [f for f in flags if "_" in f]
    assert "flagfile" not in out.stdout and "No flags matched" not in out.stdout
    # Every flag (but help and version) shows its default and its environment variable.
    for name in flags:
        if name in ("help", "version"):
            continue
        block = out.stdout.split(f"  --{name}", 1)[1].split("\n  --", 1)[0]
        env = "PKMSERVE_" + name.upper().replace("-", "_")
        assert "default: " in block and f"env: {env}" in block, block
    assert run(pkmserve, "-h").stdout == out.stdout
    assert run(pkmserve, "--helpfull").returncode == 0


def test_version_names_the_commit(pkmserve):
    out = run(pkmserve, "--version")
    assert out.returncode == 0
    m = re.fullmatch(r"pkmserve (\d+\.\d+\.\d+) \(commit (\S+), (\w+) build\)\n", out.stdout)
    assert m, out.stdout
    head = subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True,
                          text=True)
    if head.returncode == 0:
        assert head.stdout.startswith(m.group(2).split("-")[0])
    cache = os.path.join(os.path.dirname(os.path.dirname(pkmserve)), "CMakeCache.txt")
    if os.path.exists(cache):
        build_type = re.search(r"^CMAKE_BUILD_TYPE:\w+=(\w*)$", open(cache).read(), re.M)
        assert m.group(3) == build_type.group(1)


def test_a_typo_gets_the_nearest_flag(pkmserve):
    out = run(pkmserve, "--modle", "x")
    assert out.returncode == 1
    assert "unknown flag --modle; did you mean --model?" in out.stderr
    out = run(pkmserve, "--max-batch-token=3")
    assert out.returncode == 1 and "did you mean --max-batch-tokens?" in out.stderr


def test_the_model_may_be_the_one_positional_argument(pkmserve, tmp_path):
    missing = str(tmp_path / "no-such-model")
    out = run(pkmserve, "--check", missing)
    assert out.returncode == 2 and missing in out.stderr, out.stderr  # the argument was used
    assert run(pkmserve, "--check", MODEL).returncode == 0
    out = run(pkmserve, "--check", MODEL, "extra")
    assert out.returncode == 1 and "unexpected argument 'extra'" in out.stderr
    out = run(pkmserve, "--check", "--model", MODEL, missing)
    assert out.returncode == 1 and "the model is given twice" in out.stderr


def test_flags_come_from_the_environment_and_the_command_line_wins(pkmserve, api):
    pb, rpc = api
    out = run(pkmserve, "--check", env={"PKMSERVE_MAX_BATCH_TOKENS": "0"})
    assert out.returncode == 1 and "PKMSERVE_MAX_BATCH_TOKENS" in out.stderr
    assert run(pkmserve, "--check", "--max-batch-tokens", "8",
               env={"PKMSERVE_MAX_BATCH_TOKENS": "0"}).returncode == 0
    env = dict(os.environ, PKMSERVE_MAX_PROMPT_TOKENS="7", PKMSERVE_MODEL=MODEL)
    proc, address, _ = start_server(pkmserve, *BASE, env=env)
    try:
        with grpc.insecure_channel(address) as channel:
            info = rpc.InferenceStub(channel).GetModelInfo(pb.GetModelInfoRequest(), timeout=30)
        assert info.limits.max_prompt_tokens == 7
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


# ---- start-up checks -------------------------------------------------------------------------

@pytest.mark.parametrize("flag", ["--listen", "--metrics-listen", "--http-listen"])
def test_a_busy_port_is_refused_before_the_model_loads(pkmserve, flag):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = f"127.0.0.1:{busy.getsockname()[1]}"
        args = {"--listen": "127.0.0.1:0", "--metrics-listen": "127.0.0.1:0",
                "--http-listen": "127.0.0.1:0", flag: address}
        out = run(pkmserve, *[x for kv in args.items() for x in kv], *BASE)
    assert out.returncode == 3, out.stderr
    assert f"{flag}: cannot listen on {address}: address already in use" in out.stderr
    assert "model loaded" not in out.stderr


def test_grpc_does_not_share_a_port_with_another_server(pkmserve):
    proc, address, _ = start_server(pkmserve, *BASE)
    try:
        out = run(pkmserve, "--listen", address, "--metrics-listen", "127.0.0.1:0",
                  "--http-listen", "127.0.0.1:0", *BASE)
        assert out.returncode == 3 and "address already in use" in out.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


@pytest.mark.parametrize("flag", ["--max-prompt-tokens", "--max-new-tokens"])
def test_limits_beyond_the_context_are_refused(pkmserve, flag):
    out = run(pkmserve, "--check", flag, "1000")
    assert out.returncode == 1
    assert re.search(flag + r" is 1000, more than the model's context allows: max_seq_len is 256, "
                     r"so at most 255", out.stderr), out.stderr


# ---- requests --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def served(pkmserve):
    proc, address, metrics = start_server(pkmserve, "--model", MODEL, *BASE,
                                          "--log-stats-interval", "0.2")
    proc.address = address  # for the tests that run pkm against it
    channel = grpc.insecure_channel(address)
    yield channel, metrics, proc
    channel.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0


def raw_call(channel, method, payload):
    call = channel.unary_unary(f"/pkmserve.v1.Inference/{method}")
    with pytest.raises(grpc.RpcError) as err:
        call(payload, timeout=30)
    return err.value


def field(number, data):
    """A length-delimited protobuf field (numbers < 16, data < 128 bytes)."""
    return bytes([number << 3 | 2, len(data)]) + data


def test_outcome_counters_start_at_zero(served):
    _, metrics, _ = served
    values = scrape(metrics)
    for code in ["INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "UNAVAILABLE", "DEADLINE_EXCEEDED"]:
        assert series(values, "pkmserve_request_failure_total", api="grpc", code=code) is not None, code
    for reason in ["length", "stop", "eos", "scored"]:
        assert series(values, "pkmserve_request_success_total", api="grpc", finish_reason=reason) is not None
    assert series(values, "pkmserve_build_info") == 1


def test_text_that_is_not_utf8_is_refused_naming_field_and_offset(served):
    channel, metrics, _ = served
    before = series(scrape(metrics), "pkmserve_request_failure_total", api="grpc", code="INVALID_ARGUMENT")
    cases = [
        ("Tokenize", field(1, b"ab\xffc"), "text is not valid UTF-8: byte 2 (0xff)"),
        ("Generate", field(1, b"caf\xc3"), "text is not valid UTF-8: byte 3 (0xc3)"),
        ("Generate", field(1, b"ok") + field(9, b"x") + field(9, b"\xed\xa0\x80"),
         "stop[1] is not valid UTF-8: byte 0"),
        ("Score", field(1, b"\xc0\xaf long enough"), "text is not valid UTF-8: byte 0"),
        ("Score", b"\xff\xff\xff", "the request is not a valid pkmserve.v1.ScoreRequest message"),
    ]
    for method, payload, message in cases:
        if method == "Generate":
            call = channel.unary_stream(f"/pkmserve.v1.Inference/{method}")
            with pytest.raises(grpc.RpcError) as err:
                list(call(payload, timeout=30))
            error = err.value
        else:
            error = raw_call(channel, method, payload)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (method, error)
        assert message in error.details(), error.details()
    after = series(scrape(metrics), "pkmserve_request_failure_total", api="grpc", code="INVALID_ARGUMENT")
    assert after - before == len(cases)


def tokenize(api, stub, text):
    pb, _ = api
    return list(stub.Tokenize(pb.TokenizeRequest(text=text), timeout=30).ids)


def generate(stub, request):
    msgs = list(stub.Generate(request, timeout=120))
    return [t.id for m in msgs for t in m.tokens], msgs[-1]


def test_truncate_keeps_the_last_prompt_tokens(api, served):
    pb, rpc = api
    stub = rpc.InferenceStub(served[0])
    text = open(f"{REPO}/tests/data/heldout.txt").read()[:4000]
    ids = tokenize(api, stub, text)
    assert len(ids) > 300
    with pytest.raises(grpc.RpcError) as err:
        generate(stub, pb.GenerateRequest(text=text, max_new_tokens=4))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "set truncate" in err.value.details() and "--" not in err.value.details()
    got, last = generate(stub, pb.GenerateRequest(text=text, truncate=100, max_new_tokens=6,
                                                  temperature=0, ignore_eos=True))
    assert last.usage.prompt_tokens == 100
    # The same as sending BOS + the last 99 tokens.
    want, _ = generate(stub, pb.GenerateRequest(
        tokens=pb.TokenIds(ids=[ids[0]] + ids[-99:]), max_new_tokens=6, temperature=0,
        ignore_eos=True))
    assert got == want
    with pytest.raises(grpc.RpcError) as err:
        generate(stub, pb.GenerateRequest(text="hi", truncate=1000))
    assert "truncate must be in [1, 255]" in err.value.details()


def test_unset_max_new_tokens_generates_as_many_as_fit(api, served):
    pb, rpc = api
    stub = rpc.InferenceStub(served[0])
    ids = tokenize(api, stub, "The sea was calm and the ship sailed on")
    got, last = generate(stub, pb.GenerateRequest(tokens=pb.TokenIds(ids=ids), ignore_eos=True,
                                                  temperature=0))
    assert last.finish_reason == pb.FINISH_REASON_LENGTH
    assert len(got) == last.usage.completion_tokens == 256 - len(ids)
    with pytest.raises(grpc.RpcError) as err:
        generate(stub, pb.GenerateRequest(text="x", max_new_tokens=1000))
    assert "max_new_tokens must be in [1, 255]" in err.value.details()
    assert "--" not in err.value.details()


def test_scored_tokens_and_requests_are_counted_once(api, served):
    pb, rpc = api
    channel, metrics, _ = served
    stub = rpc.InferenceStub(channel)
    ids = tokenize(api, stub, open(f"{REPO}/tests/data/heldout.txt").read()[:3000])
    before = scrape(metrics)
    # One call with the server's windows, one with context-only tokens.
    whole = stub.Score(pb.ScoreRequest(tokens=pb.TokenIds(ids=ids), context=128, stride=64),
                       timeout=120)
    part = stub.Score(pb.ScoreRequest(tokens=pb.TokenIds(ids=ids[:128]), score_from=64),
                      timeout=120)
    assert whole.windows > 1 and whole.token_count == len(ids) - 1
    assert part.token_count == 64 and len(part.tokens) == 64
    assert part.tokens[0].id == ids[64]
    # The kept scores are those of the full window's last 64 tokens.
    full = stub.Score(pb.ScoreRequest(tokens=pb.TokenIds(ids=ids[:128])), timeout=120)
    assert [t.logprob for t in part.tokens] == pytest.approx(
        [t.logprob for t in full.tokens[-64:]], abs=1e-6)
    after = scrape(metrics)
    assert (series(after, "pkmserve_scored_tokens_total") -
            series(before, "pkmserve_scored_tokens_total")) == len(ids) - 1 + 64 + 127
    assert (series(after, "pkmserve_request_success_total", api="grpc", finish_reason="scored") -
            series(before, "pkmserve_request_success_total", api="grpc", finish_reason="scored")) == 3


def test_the_log_has_a_line_per_request_and_stats_but_no_prompt(api, served):
    pb, rpc = api
    channel, _, proc = served
    stub = rpc.InferenceStub(channel)
    secret = "Zanzibarquux"
    generate(stub, pb.GenerateRequest(text=f"{secret} said", max_new_tokens=60, ignore_eos=True))
    with pytest.raises(grpc.RpcError):
        generate(stub, pb.GenerateRequest(text=secret, top_p=2))
    time.sleep(0.5)
    log = "".join(proc.log_lines)
    assert secret not in log
    assert re.search(TIMESTAMP + r" INFO request finished id=\d+ method=generate "
                     r"prompt_tokens=\d+ output_tokens=60 queue_ms=[0-9.]+ ttft_ms=[0-9.]+ "
                     r"e2e_ms=[0-9.]+ finish=length", log), log
    assert re.search(TIMESTAMP + r" INFO request failed id=\d+ method=generate .*"
                     r"code=INVALID_ARGUMENT error=\"top_p must be", log), log
    assert re.search(TIMESTAMP + r" INFO stats prompt_tok_s=[0-9.]+ gen_tok_s=[0-9.]+ "
                     r"scored_tok_s=[0-9.]+ running=\d+ waiting=\d+ kv_cache_pct=[0-9.]+", log)
    for line in proc.log_lines:
        assert re.match(TIMESTAMP + r" (INFO|WARNING|ERROR) ", line), line


def test_json_log_lines_parse(pkmserve):
    proc, _, _ = start_server(pkmserve, "--model", MODEL, *BASE, "--log-format", "json")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    time.sleep(0.2)
    lines = [json.loads(line) for line in proc.log_lines]
    assert {"ts", "level", "msg"} <= set(lines[0])
    assert any(line["msg"].startswith("listening on") for line in lines)
    assert lines[-1]["msg"].startswith("drained")


# ---- weights -----------------------------------------------------------------------------------

def model_info(api, channel):
    pb, rpc = api
    return rpc.InferenceStub(channel).GetModelInfo(pb.GetModelInfoRequest(), timeout=30)


def test_weights_are_held_as_stored_by_default_and_converted_when_asked(pkmserve, api, served):
    pb, rpc = api
    info = model_info(api, served[0])
    assert (info.weight_dtype, info.held_dtype) == ("float16", "float16")
    # Every fp16 tensor read from the file; only norms, biases and keys widened (fp32).
    assert 0.95 * info.weight_bytes < info.mapped_weight_bytes < info.weight_bytes
    text = open(f"{REPO}/tests/data/heldout.txt").read()
    fp16 = rpc.InferenceStub(served[0]).Score(pb.ScoreRequest(text=text), timeout=60).perplexity
    for flags, held, check in [
        (["--weights-dtype", "f32", "--pkm-values-dtype", "f32"], "float32",
         lambda got: got.weight_bytes - info.weight_bytes > info.weight_bytes * 0.9
         and got.mapped_weight_bytes == 0),
        # int8 matrices converted at load; the fp16 value table still read from the file.
        (["--weights-dtype", "int8"], "int8+float16",
         lambda got: got.weight_bytes < info.weight_bytes * 0.8
         and 0 < got.mapped_weight_bytes < got.weight_bytes)]:
        proc, address, _ = start_server(pkmserve, "--model", MODEL, *BASE, *flags,
                                        "--metrics-listen", "off")
        try:
            with grpc.insecure_channel(address) as channel:
                got = model_info(api, channel)
                ppl = rpc.InferenceStub(channel).Score(pb.ScoreRequest(text=text),
                                                       timeout=60).perplexity
            assert got.held_dtype == held, flags
            assert check(got), (flags, got.weight_bytes, got.mapped_weight_bytes, info.weight_bytes)
            # fp32 is fp16 widened exactly; int8 moves the perplexity a little.
            assert (ppl == fp16) if held == "float32" else (abs(ppl / fp16 - 1) < 0.02), (flags, ppl)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
    out = run(pkmserve, "--check", "--weights-dtype", "f8")
    assert out.returncode == 1
    assert "--weights-dtype must be as-stored, f32, f16, bf16 or int8, got 'f8'" in out.stderr, out.stderr


# ---- memory reads per request ----------------------------------------------------------------

def test_a_request_may_read_less_of_the_memory(pkmserve, api, served, tmp_path):
    pb, rpc = api
    stub = rpc.InferenceStub(served[0])
    info = model_info(api, served[0])
    knn, heads = info.pkm_layers[0].knn, info.pkm_layers[0].heads
    text = open(f"{REPO}/tests/data/heldout.txt").read()

    def ppl(**reads):
        return stub.Score(pb.ScoreRequest(text=text, **reads), timeout=60).perplexity

    full = ppl()
    assert ppl(memory_knn=knn, memory_heads=heads) == full
    assert ppl(memory_knn=knn // 4) != full and ppl(memory_heads=1) != full
    with pytest.raises(grpc.RpcError) as err:
        ppl(memory_knn=knn + 1)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"memory_knn must be in [1, {knn}]" in err.value.details()
    # The CLI: pkm score and pkm generate take the same reads, named in its flags' terms.
    pkm = os.path.join(os.path.dirname(pkmserve), "pkm")
    (tmp_path / "t.txt").write_text(text)
    target = ["--server", served[2].address]
    scored = subprocess.run([pkm, *target, "score", "--json", "--memory-knn", str(knn // 4),
                             str(tmp_path / "t.txt")], capture_output=True, text=True, timeout=60)
    assert scored.returncode == 0, scored.stderr
    assert abs(json.loads(scored.stdout)["perplexity"] / ppl(memory_knn=knn // 4) - 1) < 1e-3
    bad = subprocess.run([pkm, *target, "generate", "--memory-heads", str(heads + 1), "hi"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "--memory-heads must be in [1, " in bad.stderr, bad.stderr
