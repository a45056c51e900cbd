"""pkm against a real pkmserve on loopback: every subcommand, exit codes, and score's
perplexity against the PyTorch reference (tests/client/reference_ppl.py) within 1e-4."""
import json
import math
import re
import signal
import subprocess

import pytest

from tests.client.reference_ppl import reference
from tests.client.servers import make_tls, run_pkm, start_server

HELDOUT = "tests/data/heldout.txt"


def pkm(binaries, *args, stdin=None):
    return run_pkm(binaries[1], *args, stdin=stdin)


@pytest.mark.parametrize("mode,ctx,stride", [("chunks", 256, None), ("chunks", 64, None),
                                             ("stride", 256, 128), ("stride", 64, 16)])
def test_score_matches_the_reference(binaries, server, mode, ctx, stride):
    args = ["score", "--server", server, "--json", "--mode", mode, "--ctx", str(ctx)]
    if stride:
        args += ["--stride", str(stride)]
    out = pkm(binaries, *args, HELDOUT)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    with open(HELDOUT) as f:
        want = reference("models/pkm-small", f.read(), mode, ctx, stride or 0)
    assert got["scored_tokens"] == want["scored_tokens"]
    assert math.isclose(got["perplexity"], want["perplexity"], rel_tol=1e-4)
    assert math.isclose(got["mean_nll"], want["mean_nll"], rel_tol=1e-4)
    if mode == "stride":
        assert got["scored_tokens"] == got["tokens"] - 1  # every token after the first, once


def test_score_text_output_per_token_and_stdin(binaries, server, tmp_path):
    tsv = tmp_path / "tokens.tsv"
    out = pkm(binaries, "score", "--server", server, "--per-token", str(tsv), "-",
              stdin=open(HELDOUT).read())
    assert out.returncode == 0, out.stderr
    m = re.match(r"-: PPL = ([0-9.]+) \+/- ([0-9.]+) \((\d+) tokens scored", out.stdout)
    assert m, out.stdout
    ppl, err, count = float(m.group(1)), float(m.group(2)), int(m.group(3))
    rows = tsv.read_text().splitlines()
    assert rows[0] == "file\tindex\tid\tpiece\tlogprob" and len(rows) == count + 1
    nll = [-float(r.split("\t")[4]) for r in rows[1:]]
    mean = sum(nll) / len(nll)
    assert math.isclose(ppl, math.exp(mean), rel_tol=1e-3)
    sd = math.sqrt(sum((x - mean) ** 2 for x in nll) / len(nll) / (len(nll) - 1))
    assert math.isclose(err, ppl * sd, rel_tol=1e-3)
    assert "\r" not in out.stderr  # no progress bar when stderr is not a terminal


def test_generate_streams_text_and_json_events(binaries, server):
    text = pkm(binaries, "generate", "--server", server, "--max-tokens", "12", "--seed", "3",
               "--ignore-eos", "The sea")
    assert text.returncode == 0, text.stderr
    events = pkm(binaries, "generate", "--server", server, "--max-tokens", "12", "--seed", "3",
                 "--ignore-eos", "--json", "The sea")
    assert events.returncode == 0, events.stderr
    lines = [json.loads(line) for line in events.stdout.splitlines()]
    assert lines[0]["seed"] == 3
    assert lines[-1]["finish_reason"] == "FINISH_REASON_LENGTH"
    assert lines[-1]["usage"]["completion_tokens"] == 12
    assert sum(len(e["tokens"]) for e in lines) == 12
    assert "".join(e["text"] for e in lines) + "\n" == text.stdout  # same seed, same text


def test_info_health_tokenize(binaries, server):
    info = pkm(binaries, "info", "--server", server, "--json")
    assert info.returncode == 0, info.stderr
    j = json.loads(info.stdout)
    assert j["name"] == "pkm-small" and j["max_seq_len"] == 256
    assert j["pkm_layers"][0]["slots"] == j["pkm_layers"][0]["n_keys"] ** 2
    # The family and each memory's variant (the bundled model: format 1, read as format 2).
    assert (j["family"], j["norm"], j["block"], j["positions"], j["ffn"]) == \
        ("pkmserve", "layernorm", "pre_norm", "rope", "gelu")
    assert j["n_kv_heads"] == j["n_heads"] and j["head_dim"] * j["n_heads"] == j["d_model"]
    memory = j["pkm_layers"][0]
    assert (memory["mode"], memory["query_norm"], memory["output"], memory["values"]) == \
        ("replace", "none", "sum", "layers.4.pkm.values")
    text = pkm(binaries, "info", "--server", server).stdout
    assert "family      pkmserve: layernorm pre_norm, rope positions, gelu FFN 1024" in text
    assert "memory      layer 4 (replace)" in text and "output sum" in text
    health = pkm(binaries, "health", "--server", server)
    assert health.returncode == 0 and health.stdout.strip().endswith("SERVING")
    tok = pkm(binaries, "tokenize", "--server", server, "--json", "Hello world")
    ids = json.loads(tok.stdout)
    assert ids["ids"][0] == j["bos_id"] and len(ids["ids"]) == len(ids["pieces"])


def test_exit_codes_and_help(binaries, server):
    assert pkm(binaries, "score", "--bogus").returncode == 2
    assert pkm(binaries, "nosuchcommand").returncode == 2
    assert pkm(binaries, "generate", "--temperature", "500", "x").returncode == 2
    down = pkm(binaries, "info", "--server", "127.0.0.1:1", "--timeout", "5")
    assert down.returncode == 3 and down.stderr.startswith("pkm: UNAVAILABLE:")
    bad = pkm(binaries, "generate", "--server", server, "--max-tokens", "100000", "x")
    assert bad.returncode == 4
    assert re.fullmatch(r"pkm: INVALID_ARGUMENT: --max-tokens must be in .*\n", bad.stderr)
    assert "usage: pkm [global flags] COMMAND" in pkm(binaries, "--help").stdout
    for cmd in ["generate", "score", "info", "health", "tokenize", "detokenize", "bench"]:
        h = pkm(binaries, cmd, "--help")
        assert h.returncode == 0 and f"usage: pkm {cmd}" in h.stdout and "--server" in h.stdout


def test_bench_closed_and_open_loop(binaries, server):
    closed = pkm(binaries, "bench", "--server", server, "--num-requests", "12", "--concurrency",
                 "4", "--prompt-len", "8:16", "--output-len", "5:9", "--json")
    assert closed.returncode == 0, closed.stderr
    r = json.loads(closed.stdout)
    assert r["mode"] == "closed" and r["successful_requests"] == 12 and r["failed_requests"] == 0
    assert 12 * 5 <= r["total_output_tokens"] <= 12 * 9
    assert 12 * 8 <= r["total_input_tokens"] <= 12 * 16
    assert r["ttft"]["count"] == 12 and r["e2e"]["count"] == 12
    assert r["ttft"]["p50_ms"] <= r["ttft"]["p99_ms"] <= r["ttft"]["max_ms"]
    assert r["e2e"]["mean_ms"] >= r["ttft"]["mean_ms"]
    # One gap per token after each request's first message (which may carry several tokens).
    assert 0 < r["itl"]["count"] <= r["total_output_tokens"] - 12
    opened = pkm(binaries, "bench", "--server", server, "--num-requests", "6", "--rate", "50",
                 "--output-len", "4")
    assert opened.returncode == 0, opened.stderr
    assert "open loop" in opened.stdout and re.search(r"Successful requests:\s+6", opened.stdout)


def test_bench_counts_errors_by_status_code(binaries, server):
    # max_new_tokens beyond the server's limit: every request fails with INVALID_ARGUMENT,
    # reported by name with the first message, in bench's own flag terms.
    out = pkm(binaries, "bench", "--server", server, "--num-requests", "5", "--output-len",
              "100000", "--json")
    assert out.returncode == 4
    r = json.loads(out.stdout)
    assert r["failed_requests"] == 5 and r["errors_by_code"] == {"INVALID_ARGUMENT": 5}
    assert r["first_error_by_code"]["INVALID_ARGUMENT"].startswith("--output-len must be in [1, ")
    text = pkm(binaries, "bench", "--server", server, "--num-requests", "2", "--output-len",
               "100000")
    assert re.search(r"INVALID_ARGUMENT:\s+2\n    first: --output-len must be in", text.stdout)


def test_tls_and_bearer_token(binaries, tmp_path):
    """--tls-ca and --auth-token-file against a server that requires both."""
    d = str(tmp_path)
    make_tls(tmp_path)
    (tmp_path / "token").write_text("t0ken\n")
    (tmp_path / "wrong").write_text("nope\n")
    proc, address, _ = start_server(binaries[0], "--threads", "1", "--kv-cache-bytes", "16M",
                                    "--tls-cert", f"{d}/server.pem", "--tls-key", f"{d}/server.key",
                                    "--auth-token-file", f"{d}/token")
    try:
        common = ["--server", address, "--timeout", "10"]
        ok = pkm(binaries, "info", *common, "--tls-ca", f"{d}/ca.pem",
                 "--auth-token-file", f"{d}/token")
        assert ok.returncode == 0, ok.stderr
        wrong = pkm(binaries, "info", *common, "--tls-ca", f"{d}/ca.pem",
                    "--auth-token-file", f"{d}/wrong")
        assert wrong.returncode == 4 and wrong.stderr.startswith("pkm: UNAUTHENTICATED:")
        plain = pkm(binaries, "info", *common, "--auth-token-file", f"{d}/token")
        assert plain.returncode == 3  # a plaintext client cannot talk to a TLS server
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
