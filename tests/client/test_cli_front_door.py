"""pkm as a new user meets it: global flags anywhere and from the environment, -h, versions,
prompts from stdin or a file, UTF-8 refused on the client naming the source, detokenize,
--logprobs/--top-logprobs, --truncate, errors in pkm's flag terms, and `score` counted once per
scored token by the server. Each test fails against the CLI before these changes."""
import json
import os
import re
import urllib.request

from tests.client.servers import run_pkm

HELDOUT = "tests/data/heldout.txt"
VERSION_LINE = re.compile(r"\d+\.\d+\.\d+ \(commit [0-9a-f]+(-dirty)?, \w+ build\)")


def pkm(binaries, *args, stdin=None, env=None):
    return run_pkm(binaries[1], *args, stdin=stdin, env=env)


def test_global_flags_before_the_command_and_from_the_environment(binaries, server):
    before = pkm(binaries, "--server", server, "--timeout", "30", "info", "--json")
    assert before.returncode == 0, before.stderr
    assert json.loads(before.stdout)["server"] == server
    from_env = pkm(binaries, "info", "--json", env={**os.environ, "PKM_SERVER": server})
    assert from_env.returncode == 0, from_env.stderr
    assert json.loads(from_env.stdout)["server"] == server
    # A flag on the command line beats the environment.
    beaten = pkm(binaries, "--server", server, "health",
                 env={**os.environ, "PKM_SERVER": "127.0.0.1:1"})
    assert beaten.returncode == 0, beaten.stderr
    typo = pkm(binaries, "--srver", server, "info")
    assert typo.returncode == 2
    assert "unknown global flag --srver; did you mean --server?" in typo.stderr
    flag_typo = pkm(binaries, "generate", "--server", server, "--max-token", "3", "x")
    assert flag_typo.returncode == 2 and "did you mean --max-tokens?" in flag_typo.stderr
    command_typo = pkm(binaries, "genrate", "x")
    assert command_typo.returncode == 2 and "did you mean 'generate'?" in command_typo.stderr


def test_dash_h_and_versions(binaries, server):
    for args in (["-h"], ["--help"], ["generate", "-h"], ["--server", server, "score", "-h"]):
        out = pkm(binaries, *args)
        assert out.returncode == 0 and out.stdout.startswith("usage: pkm"), (args, out.stderr)
    for args in (["--version"], ["version"]):
        out = pkm(binaries, *args)
        assert out.returncode == 0
        assert re.fullmatch(r"pkm " + VERSION_LINE.pattern + r"\n", out.stdout), out.stdout
    served = json.loads(pkm(binaries, "--server", server, "info", "--json").stdout)
    assert VERSION_LINE.fullmatch(served["server_version"]), served
    pkmserve = run_pkm(binaries[0], "--version")
    assert pkmserve.stdout.strip() == "pkmserve " + served["server_version"]


def test_text_from_stdin_or_a_file(binaries, server, tmp_path):
    text = "The sea was calm."
    (tmp_path / "prompt.txt").write_text(text)
    want = pkm(binaries, "--server", server, "tokenize", "--json", text)
    assert want.returncode == 0, want.stderr
    for args, stdin in ((["-"], text), (["--file", str(tmp_path / "prompt.txt")], None)):
        got = pkm(binaries, "--server", server, "tokenize", "--json", *args, stdin=stdin)
        assert got.returncode == 0, got.stderr
        assert got.stdout == want.stdout  # "-" is stdin, not a one-character prompt
    greedy = ["--server", server, "generate", "--max-tokens", "6", "--temperature", "0"]
    assert (pkm(binaries, *greedy, "-", stdin=text).stdout ==
            pkm(binaries, *greedy, text).stdout)
    both = pkm(binaries, *greedy, "--file", str(tmp_path / "prompt.txt"), text)
    assert both.returncode == 2 and "not both" in both.stderr


def test_text_that_is_not_utf8_is_refused_naming_its_source(binaries, server, tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("café au lait".encode("latin-1"))  # 0xe9 at byte 3
    offset = "byte 3 (0xe9) of 12"
    for args, source in ((["generate", "--file", str(bad)], str(bad)),
                         (["tokenize", "--file", str(bad)], str(bad)),
                         (["score", str(bad)], str(bad)),
                         (["bench", "--prompt-file", str(bad), "--num-requests", "1"], str(bad))):
        out = pkm(binaries, "--server", server, *args)
        assert out.returncode == 2, (args, out.stderr)  # refused before any request
        assert f"{source} is not valid UTF-8: {offset}" in out.stderr, out.stderr
    piped = pkm(binaries, "--server", server, "generate", "-", stdin=bad.read_bytes())
    assert piped.returncode == 2 and f"stdin is not valid UTF-8: {offset}" in piped.stderr
    argument = run_pkm(binaries[1], "--server", server, "tokenize", os.fsdecode(bad.read_bytes()))
    assert argument.returncode == 2
    assert f"the text argument is not valid UTF-8: {offset}" in argument.stderr


def test_detokenize_inverts_tokenize(binaries, server):
    text = "Hello, world. The sea was calm."
    tok = json.loads(pkm(binaries, "--server", server, "tokenize", "--no-bos", "--json",
                         text).stdout)
    ids = tok["ids"]
    spaced = pkm(binaries, "--server", server, "detokenize", *map(str, ids))
    assert spaced.returncode == 0, spaced.stderr
    assert spaced.stdout == text + "\n"
    listed = pkm(binaries, "--server", server, "detokenize", "--json", "-",
                 stdin=json.dumps(ids))  # a JSON list, as tokenize --json prints it
    assert json.loads(listed.stdout) == {"text": text}
    bad = pkm(binaries, "--server", server, "detokenize", "12", "x7")
    assert bad.returncode == 2 and "'x7' is not a token id" in bad.stderr
    out_of_range = pkm(binaries, "--server", server, "detokenize", "99999999")
    assert out_of_range.returncode == 4 and "ids[0] must be a token id in [0, " in out_of_range.stderr


def test_logprobs_and_top_logprobs(binaries, server):
    common = ["--server", server, "generate", "--max-tokens", "5", "--temperature", "0",
              "--ignore-eos", "The sea"]
    table = pkm(binaries, *common, "--top-logprobs", "3")
    assert table.returncode == 0, table.stderr
    rows = table.stdout.split("\nindex")[1].strip().splitlines()[1:]
    assert len(rows) == 5
    events = [json.loads(line) for line in
              pkm(binaries, *common, "--top-logprobs", "3", "--json").stdout.splitlines()]
    tokens = [t for e in events for t in e["tokens"]]
    assert len(tokens) == 5
    for row, t in zip(rows, tokens):
        index, token_id, logprob = row.split()[:3]
        assert int(token_id) == t["id"] and abs(float(logprob) - t["logprob"]) < 1e-4
        assert len(t["top_logprobs"]) == 3 and t["piece"]
        # Greedy: the chosen token is the most likely one.
        assert t["top_logprobs"][0]["id"] == t["id"]
        assert t["top_logprobs"][0]["piece"] == t["piece"]
        assert t["top_logprobs"][0]["logprob"] >= t["top_logprobs"][1]["logprob"]
    plain = pkm(binaries, *common, "--logprobs")
    assert len(plain.stdout.split("\nindex")[1].strip().splitlines()) == 6


def test_truncate_and_errors_in_flag_terms(binaries, server):
    long_prompt = open(HELDOUT).read()[:4000]  # several hundred tokens; the context is 256
    base = ["--server", server, "generate", "--max-tokens", "4", "--json", "-"]
    refused = pkm(binaries, *base, stdin=long_prompt)
    assert refused.returncode == 4
    assert "set --truncate to keep only the last tokens" in refused.stderr, refused.stderr
    assert "truncate " not in refused.stderr.replace("--truncate ", "")  # no bare field name
    kept = pkm(binaries, *base, "--truncate", "200", stdin=long_prompt)
    assert kept.returncode == 0, kept.stderr
    last = json.loads(kept.stdout.splitlines()[-1])
    assert last["usage"]["prompt_tokens"] == 200
    # Without --max-tokens: as many as fit in the context (256 - 200), not a small default.
    fill = pkm(binaries, "--server", server, "generate", "--truncate", "200", "--ignore-eos",
               "--json", "-", stdin=long_prompt)
    assert json.loads(fill.stdout.splitlines()[-1])["usage"]["completion_tokens"] == 56
    too_big = pkm(binaries, "--server", server, "generate", "--top-p", "1", "--top-k",
                  "100000", "x")
    assert too_big.returncode == 4 and "--top-k must be in [0, 8000]" in too_big.stderr


def scored_tokens_total(metrics):
    body = urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10).read().decode()
    return float(re.search(r"^pkmserve_scored_tokens_total\{[^}]*\} (\S+)$", body, re.M).group(1))


def test_score_chunks_is_counted_once_per_scored_token(binaries, served):
    server, metrics = served
    for mode in ("chunks", "stride"):
        before = scored_tokens_total(metrics)
        out = pkm(binaries, "--server", server, "score", "--json", "--mode", mode, "--ctx", "64",
                  HELDOUT)
        assert out.returncode == 0, out.stderr
        got = json.loads(out.stdout)
        assert got["scored_tokens"] < got["tokens"] - 1 or mode == "stride"
        assert scored_tokens_total(metrics) - before == got["scored_tokens"], mode
