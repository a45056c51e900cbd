"""The random fault mix of test_reliability.py over the HTTP API (docs/reliability.md): clients
that leave a stream, give up after a short socket timeout, or ask for a whole completion, a
stream or an echo-and-logprobs score, many at once. Each request is counted by what came back
and by the server's metrics: none may be lost, leave KV cache behind or grow the server's memory.
    /usr/bin/python3 -m pytest tests/server/test_http_faults.py --pkmserve build/bin/pkmserve \
        --requests 10000 --figures bench/results/reliability.json
"""
import http.client
import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tests.client.servers import start_server, stop_server
from tests.server.figures import record, rss_bytes
from tests.server.load import assert_nothing_left, text, wait_idle

BASE = ["--threads", "2", "--kv-cache-bytes", "32M"]
KINDS = ["complete", "stream", "score", "leave", "timeout"]
# What each kind may end in; anything else is a failure. "left" is the client's own doing.
ALLOWED = {"complete": {"200"}, "stream": {"200"}, "score": {"200"}, "leave": {"200", "left"},
           "timeout": {"200", "left"}}


def check_body(kind, status, raw, body):
    """A 200 carries all it should: a whole completion's usage, a stream's [DONE], an echo."""
    if status != 200:
        return f"{status}:{raw[:80].decode(errors='replace')}"
    if kind == "stream":
        return "200" if raw.rstrip().endswith(b"data: [DONE]") else "no [DONE]"
    answer = json.loads(raw)
    choice = answer["choices"][0]
    if kind == "score":
        return "200" if choice["text"] == body["prompt"] and choice["logprobs"]["tokens"] else "no echo"
    tokens = answer["usage"]["completion_tokens"]
    return "200" if 1 <= tokens <= body["max_tokens"] else f"usage {tokens}"


def one_request(host, port, rng):
    kind = rng.choice(KINDS)
    prompt = text(rng, rng.randint(1, 12))
    if kind == "score":
        body = {"prompt": prompt, "max_tokens": 0, "echo": True, "logprobs": 1}
    else:
        body = {"prompt": prompt, "max_tokens": rng.randint(1, 16), "temperature": rng.choice([0.0, 0.8]),
                "seed": rng.randint(1, 99), "stream": kind in ("stream", "leave")}
    timeout = rng.uniform(0.001, 0.05) if kind == "timeout" else 60
    leave_after = rng.randint(1, 3)
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("POST", "/v1/completions", json.dumps(body),
                           {"Content-Type": "application/json"})
        response = connection.getresponse()
        if kind != "leave":
            return kind, check_body(kind, response.status, response.read(), body)
        received = b""  # gone after a few events, the stream possibly still running
        while received.count(b"data: ") < leave_after:
            chunk = response.read1(4096)
            if not chunk:
                return kind, check_body("stream", response.status, received, body)
            received += chunk
        return kind, "left"
    except TimeoutError:
        return kind, "left"
    finally:
        connection.close()


def run_mix(host, port, count, concurrency, seed):
    """count requests, concurrency at a time; each thread draws from its own generator."""
    outcomes, lock = {}, threading.Lock()
    seeds = random.Random(seed)
    rngs = [random.Random(seeds.random()) for _ in range(count)]

    def run(i):
        kind, code = one_request(host, port, rngs[i])
        with lock:
            outcomes[f"{kind}:{code}"] = outcomes.get(f"{kind}:{code}", 0) + 1

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(run, range(count)))
    return outcomes


def http_calls(values):
    """Calls the server counted as finished over HTTP, whatever their end."""
    return sum(v for k, v in values.items()
               if k.split("{")[0] in ("pkmserve_request_success_total", "pkmserve_request_failure_total")
               and 'api="http"' in k)


def test_random_http_faults_leave_no_cache_and_no_memory_behind(pkmserve, request):
    count = max(request.config.getoption("--requests") // 5, 100)
    proc, _, metrics = start_server(pkmserve, *BASE)
    host, port = proc.http_url[len("http://"):].rsplit(":", 1)
    port = int(port)
    try:
        # Warm-up, as in test_reliability.py: each of the 256 handler threads fills a malloc
        # cache of its own as it serves (docs/reliability.md), so the more of them have served
        # before "before", the less the mix's memory moves (400 calls reach about 190).
        run_mix(host, port, max(count // 5, 100), 16, seed=1)
        before_calls = http_calls(wait_idle(metrics))
        before = rss_bytes(proc.pid)
        started = time.monotonic()
        outcomes = run_mix(host, port, count, 16, seed=2)
        seconds = time.monotonic() - started
        # Every request the server read ends up counted, however its client left.
        deadline = time.monotonic() + 60
        while True:
            values = wait_idle(metrics)
            counted = http_calls(values) - before_calls
            if counted >= count or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        after = rss_bytes(proc.pid)
        failures = {k: v for k, v in outcomes.items() if k.split(":", 1)[1] not in ALLOWED[k.split(":")[0]]}
        record("http_random_faults", requests=count, seconds=round(seconds, 1), outcomes=outcomes,
               failures=sum(failures.values()), lost=count - int(counted), rss_before=before,
               rss_after=after)
        assert not failures, failures
        assert sum(outcomes.values()) == count
        assert outcomes.get("leave:left", 0) > 0 and outcomes.get("timeout:left", 0) > 0
        assert counted == count, (counted, count)
        assert_nothing_left(values, before, after, request.config.getoption("--sanitized"))
    finally:
        stop_server(proc)
