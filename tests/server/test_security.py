"""Security of the front door (docs/reliability.md): a missing and a wrong token get the same
answer, so a caller learns nothing of which; no secret reaches the log, the metrics or an
answer; every listener defaults to loopback. (TLS refusing plaintext: test_pkmserve_process.cc
for gRPC, test_http_api.py for HTTP.)"""
import os
import re
import signal
import socket
import ssl
import subprocess
import urllib.error
import urllib.request

import grpc
import pytest

from tests.client.servers import make_tls, start_server, stop_server
from tests.server.figures import record

BASE = ["--threads", "1", "--kv-cache-bytes", "16M"]
TOKEN = "tok-Zq81-distinctive-secret"


def grpc_error(call):
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), err.value.details()


def http_error(url, token):
    request = urllib.request.Request(url + "/v1/models")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=30)
    return err.value.code, err.value.read()


@pytest.fixture(scope="module")
def guarded(pkmserve, tmp_path_factory):
    d = tmp_path_factory.mktemp("secrets")
    (d / "token").write_text(TOKEN + "\n")
    ca, cert, key = make_tls(d)
    proc, address, metrics = start_server(pkmserve, *BASE, "--auth-token-file", str(d / "token"),
                                          "--tls-cert", str(cert), "--tls-key", str(key))
    credentials = grpc.ssl_channel_credentials(root_certificates=ca.read_bytes())
    channel = grpc.secure_channel(address, credentials)
    yield proc, channel, metrics, key, ca
    channel.close()
    stop_server(proc)


def test_a_missing_and_a_wrong_token_get_the_same_answer(api, guarded):
    pb, rpc = api
    proc, channel, _, _, ca = guarded
    stub = rpc.InferenceStub(channel)
    calls = {
        "Tokenize": lambda md: stub.Tokenize(pb.TokenizeRequest(text="x"), metadata=md, timeout=30),
        "Generate": lambda md: list(stub.Generate(pb.GenerateRequest(text="x", max_new_tokens=1),
                                                  metadata=md, timeout=30)),
        "Score": lambda md: stub.Score(pb.ScoreRequest(text="x y"), metadata=md, timeout=30),
    }
    wrongs = [(), (("authorization", "Bearer wrong"),), (("authorization", f"Bearer {TOKEN}x"),),
              (("authorization", f"Bearer {TOKEN[:-1]}"),), (("authorization", TOKEN),)]
    refused = 0
    for name, call in calls.items():
        answers = {grpc_error(lambda: call(md)) for md in wrongs}
        refused += len(wrongs)
        assert len(answers) == 1, (name, answers)
        code, details = answers.pop()
        assert code == grpc.StatusCode.UNAUTHENTICATED and TOKEN not in details
        call((("authorization", f"Bearer {TOKEN}"),))  # the right one is let in
    # HTTP alike: the same status and body whichever way the token is wrong.
    context = ssl.create_default_context(cafile=str(ca))
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
    urllib.request.install_opener(opener)
    try:
        answers = {http_error(proc.http_url, t) for t in [None, "wrong", TOKEN + "x", TOKEN[:-1]]}
    finally:
        urllib.request.install_opener(urllib.request.build_opener())
    assert len(answers) == 1 and answers.pop()[0] == 401
    record("token_missing_or_wrong", requests=refused + 4, refused=refused + 4,
           distinct_answers=1, failures=0, lost=0)


def test_no_secret_reaches_the_log_or_the_metrics(api, guarded):
    pb, rpc = api
    proc, channel, metrics, key, _ = guarded
    stub = rpc.InferenceStub(channel)
    good = (("authorization", f"Bearer {TOKEN}"),)
    list(stub.Generate(pb.GenerateRequest(text="a secret prompt", max_new_tokens=2), metadata=good,
                       timeout=30))
    grpc_error(lambda: stub.Tokenize(pb.TokenizeRequest(text="x"),
                                     metadata=(("authorization", "Bearer guess-1234"),), timeout=30))
    text = urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10).read().decode()
    info = str(stub.GetModelInfo(pb.GetModelInfoRequest(), metadata=good, timeout=30))
    log = "".join(proc.log_lines)
    key_body = "".join(key.read_text().splitlines()[1:-1])
    for where, content in [("log", log), ("metrics", text), ("model info", info)]:
        assert TOKEN not in content, where
        assert "guess-1234" not in content, where
        assert key_body[:40] not in content.replace("\n", ""), where
        assert "a secret prompt" not in content, where
    record("secrets_in_log_and_metrics", log_lines=len(proc.log_lines), found=0, failures=0, lost=0)


def listening_addresses(pid):
    """The local addresses of the TCP sockets `pid` listens on (from /proc/net/tcp{,6})."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:  # closed since the listing: not a listener, which stays open
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in open(table).read().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.append(fields[1])
    return found


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def test_every_listener_defaults_to_loopback(pkmserve):
    out = subprocess.run([pkmserve, "--help"], capture_output=True, text=True, timeout=60)
    defaults = dict(re.findall(r"^  --((?:metrics-|http-)?listen)\b.*?default: \"?([^\"\s;)]+)",
                               out.stdout, re.M | re.S))
    assert set(defaults) == {"listen", "metrics-listen", "http-listen"}, out.stdout
    assert all(v.startswith("127.0.0.1:") for v in defaults.values()), defaults
    ports = [int(v.rsplit(":", 1)[1]) for v in defaults.values()]
    if not all(port_free(p) for p in ports):
        pytest.skip(f"a default port of {ports} is taken here; the --help defaults were checked")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PKMSERVE_")}
    proc = subprocess.Popen([pkmserve, *BASE], stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in proc.stderr:
            if "listening on" in line:
                break
        addresses = listening_addresses(proc.pid)
        # 127.0.0.1 in /proc/net/tcp's byte order, as IPv4 or IPv4-mapped IPv6 (gRPC's socket).
        loopback = ("0100007F:", "0000000000000000FFFF00000100007F:")
        assert len(addresses) == 3 and all(a.startswith(loopback) for a in addresses), addresses
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
