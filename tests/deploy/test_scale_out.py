"""Scale-out on loopback: three pkmserve replicas behind HAProxy with the shipped configuration
(deploy/haproxy/pkmserve.cfg: per-call balancing, health checks through each replica's
/health), driven by `pkm bench` and by greedy calls whose output is known. Load spreads over
every replica; a replica's SIGTERM mid-load loses no request (HAProxy stops routing to it,
clients retry UNAVAILABLE); a replica's SIGKILL costs only the calls it had in flight, and no
call returns wrong output. Throughput of three replicas against one goes to --figures."""
import json
import os
import signal
import socket
import subprocess
import threading
import time

import grpc
import pytest

from tests.client.servers import scrape, start_server, stop_server
from tests.server import figures

REPO = __file__.rsplit("/tests/deploy/", 1)[0]
HAPROXY_CONFIG = os.path.join(REPO, "deploy", "haproxy", "pkmserve.cfg")
REPLICAS = 3
# The policy `pkm --retries 4` sends (client/connection.cc, docs/operations.md "Retries").
RETRY_CONFIG = json.dumps({"methodConfig": [{
    "name": [{"service": "pkmserve.v1.Inference"}],
    "retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.1s", "maxBackoff": "1s",
                    "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]})
# A stream the proxy ends when its replica dies: gRPC reports the stream's loss with one of
# these (HAProxy ends it without gRPC trailers: UNKNOWN "Stream removed").
LOST_IN_FLIGHT = {"UNAVAILABLE", "UNKNOWN"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """REPLICAS servers and HAProxy in front of them, on free loopback ports."""

    def __init__(self, pkmserve):
        # Replicas sharing a machine's cores: OpenMP threads sleep rather than spin between
        # steps, or each replica's waiting threads take the cores from the others' work.
        env = dict(os.environ, OMP_WAIT_POLICY="passive")
        self.replicas = [start_server(pkmserve, "--drain-timeout", "60", env=env)
                         for _ in range(REPLICAS)]
        self.address = f"127.0.0.1:{free_port()}"
        env = dict(env, PKMSERVE_LB_LISTEN=self.address)
        for i, (proc, address, _) in enumerate(self.replicas, 1):
            env[f"PKMSERVE_REPLICA_{i}"] = address
            env[f"PKMSERVE_REPLICA_{i}_HEALTH"] = proc.http_url.rsplit(":", 1)[1]
        self.proxy = subprocess.Popen(["haproxy", "-db", "-f", HAPROXY_CONFIG], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

        self.clients = []  # pkm bench processes, ended with the cluster

    def served(self, i):
        """Requests replica i (0-based) has answered successfully, over every method."""
        return sum(v for k, v in scrape(self.replicas[i][2]).items()
                   if k.split("{")[0] == "pkmserve_request_success_total")

    def running(self, i):
        """Calls replica i is running now."""
        return sum(v for k, v in scrape(self.replicas[i][2]).items()
                   if k.split("{")[0] == "pkmserve_requests_running")

    def bench(self, pkm, address, *flags):
        proc = subprocess.Popen(
            [pkm, "bench", "--server", address, "--json", "--retries", "4", "--timeout", "120",
             "--prompt-len", "8:16", "--seed", "3", *flags],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.clients.append(proc)
        return proc

    def close(self):
        for proc in self.clients:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        self.proxy.terminate()
        self.proxy.wait(timeout=10)
        for proc, _, _ in self.replicas:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture
def cluster(binaries, api):
    c = Cluster(binaries[0])
    try:
        pb, rpc = api
        stub = rpc.InferenceStub(grpc.insecure_channel(
            c.address, options=[("grpc.service_config", RETRY_CONFIG)]))
        deadline = time.time() + 30
        while True:  # the proxy listens and has checked every replica (rise 2 x 250 ms)
            try:
                stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=5)
                break
            except grpc.RpcError:
                assert time.time() < deadline, "HAProxy did not route to pkmserve"
                time.sleep(0.2)
        time.sleep(1.0)
        yield c
    finally:
        c.close()


def bench_result(proc):
    out, err = proc.communicate(timeout=300)
    assert out, f"pkm bench printed nothing: {err}"
    return json.loads(out)


class GreedyCalls:
    """Threads that each keep sending one greedy Generate whose text is known, noting when
    each call started and ended and how it ended."""

    def __init__(self, api, address, threads=6, seconds=8.0):
        pb, rpc = api
        self.channel = grpc.insecure_channel(
            address, options=[("grpc.service_config", RETRY_CONFIG)])
        self.stub = rpc.InferenceStub(self.channel)
        self.request = pb.GenerateRequest(text="the whale and the sea", max_new_tokens=24,
                                          temperature=0.0, ignore_eos=True)
        self.expected = self.generate()
        self.calls = []  # (start, end, code name, text)
        self.until = time.time() + seconds
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def generate(self):
        return "".join(m.text for m in self.stub.Generate(self.request, timeout=60))

    def run(self):
        while time.time() < self.until:
            start = time.time()
            try:
                text, code = self.generate(), "OK"
            except grpc.RpcError as e:
                text, code = e.details(), e.code().name
            self.calls.append((start, time.time(), code, text))

    def join(self):
        for t in self.threads:
            t.join(timeout=120)
        self.channel.close()


def wait_serving(cluster, i, calls=2):
    deadline = time.time() + 60
    while cluster.served(i) < calls:
        assert time.time() < deadline, f"replica {i} got no load"
        time.sleep(0.05)


def test_load_spreads_over_every_replica(cluster, binaries):
    load = ["--concurrency", "12", "--num-requests", "96", "--output-len", "16:16"]
    one = bench_result(cluster.bench(binaries[1], cluster.replicas[0][1], *load))
    before = [cluster.served(i) for i in range(REPLICAS)]
    three = bench_result(cluster.bench(binaries[1], cluster.address, *load))
    assert three["failed_requests"] == 0, three["first_error_by_code"]
    assert one["failed_requests"] == 0, one["first_error_by_code"]
    per_replica = [cluster.served(i) - before[i] for i in range(REPLICAS)]
    assert sum(per_replica) == 96
    # leastconn over 12 concurrent clients: no replica is left out or gets nearly all.
    assert all(n >= 96 // 10 for n in per_replica), per_replica
    figures.record("scale_out", cores=os.cpu_count(), requests=96, concurrency=12,
                   per_replica=per_replica,
                   one_replica_tok_s=one["output_token_throughput"],
                   three_replicas_tok_s=three["output_token_throughput"],
                   one_replica_req_s=one["request_throughput"],
                   three_replicas_req_s=three["request_throughput"],
                   ratio=three["output_token_throughput"] / one["output_token_throughput"])


def test_sigterm_mid_load_loses_no_request(cluster, binaries, api):
    load = cluster.bench(binaries[1], cluster.address, "--concurrency", "8", "--num-requests", "120",
                 "--output-len", "16:16")
    greedy = GreedyCalls(api, cluster.address)
    wait_serving(cluster, 0)
    served_before = cluster.served(0)
    stop_server(cluster.replicas[0][0])  # SIGTERM; its accepted calls finish, it exits 0
    greedy.join()
    result = bench_result(load)
    assert result["failed_requests"] == 0, result["first_error_by_code"]
    assert result["successful_requests"] == 120
    codes = {c[2] for c in greedy.calls}
    assert codes == {"OK"}, [c for c in greedy.calls if c[2] != "OK"][:3]
    assert all(c[3] == greedy.expected for c in greedy.calls)
    figures.record("scale_out_sigterm", bench_requests=120, greedy_calls=len(greedy.calls),
                   served_by_drained_replica_before=served_before, failures=0, lost=0)


def test_sigkill_costs_only_in_flight_calls(cluster, binaries, api):
    load = cluster.bench(binaries[1], cluster.address, "--concurrency", "8", "--num-requests", "120",
                 "--output-len", "16:16")
    greedy = GreedyCalls(api, cluster.address)
    wait_serving(cluster, 0)
    while cluster.running(0) == 0:  # kill it with calls in flight
        time.sleep(0.01)
    killed_at = time.time()
    cluster.replicas[0][0].kill()
    greedy.join()
    result = bench_result(load)
    failed = [c for c in greedy.calls if c[2] != "OK"]
    # Never wrong output: every call that succeeded returned the greedy text.
    assert all(c[3] == greedy.expected for c in greedy.calls if c[2] == "OK")
    # Only calls in flight at the kill failed, and as a lost stream.
    for start, end, code, text in failed:
        assert code in LOST_IN_FLIGHT and start <= killed_at <= end, (code, text)
    assert len(failed) <= len(greedy.threads)
    # The proxy took the dead replica out: calls begun a second later all succeeded.
    assert all(c[2] == "OK" for c in greedy.calls if c[0] > killed_at + 1.0)
    assert set(result["errors_by_code"]) <= LOST_IN_FLIGHT, result["first_error_by_code"]
    assert result["failed_requests"] <= 8  # at most one in flight per client
    assert result["successful_requests"] + result["failed_requests"] == 120
    figures.record("scale_out_sigkill", bench_requests=120,
                   bench_failed=result["failed_requests"], greedy_calls=len(greedy.calls),
                   greedy_failed=len(failed), wrong_outputs=0,
                   failed_codes=sorted({c[2] for c in failed} | set(result["errors_by_code"])))
