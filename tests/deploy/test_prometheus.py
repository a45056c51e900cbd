"""pkmserve scraped by a real Prometheus (Debian's), with deploy/prometheus/rules.yml loaded:
a bounded load from `pkm bench`, then Prometheus's HTTP API must hold what the clients saw,
the recording rules and every Grafana panel query must return data, and the console page
must render its graphs with data in headless Chromium."""
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from html.parser import HTMLParser

import pytest

from tests.client.servers import start_server

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RULES = os.path.join(ROOT, "deploy", "prometheus", "rules.yml")
CONSOLES = os.path.join(ROOT, "deploy", "prometheus", "consoles")
GRAFANA = os.path.join(ROOT, "deploy", "grafana", "pkmserve.json")
MODEL = "pkm-small"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


class Prometheus:
    def __init__(self, address):
        self.address = address

    def query(self, expr):
        url = f"http://{self.address}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, expr):
        """The value of a query that selects one series (None when it selects none)."""
        result = self.query(expr)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None


@pytest.fixture(scope="module")
def stack(tools, tmp_path_factory):
    """pkmserve + Prometheus scraping it every 250 ms, after a bounded load."""
    binaries = tools
    d = tmp_path_factory.mktemp("prometheus")
    server, address, metrics = start_server(binaries[0], "--threads", "2")
    (d / "prometheus.yml").write_text(f"""
global:
  scrape_interval: 250ms
  evaluation_interval: 1s
rule_files: ["{RULES}"]
scrape_configs:
  - job_name: pkmserve
    static_configs: [{{targets: ["{metrics}"]}}]
""")
    web = f"127.0.0.1:{free_port()}"
    log = open(d / "prometheus.log", "w")
    prom = subprocess.Popen(
        ["prometheus", f"--config.file={d / 'prometheus.yml'}",
         f"--storage.tsdb.path={d / 'data'}", f"--web.listen-address={web}",
         f"--web.console.templates={CONSOLES}", f"--web.console.libraries={CONSOLES}"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        p = Prometheus(web)
        wait_for("Prometheus to scrape pkmserve", lambda: _up(p))
        # One bad request (a failure series), then the load: 8 closed-loop clients.
        bad = subprocess.run([binaries[1], "generate", "--server", address, "--max-tokens",
                              "100000", "x"], capture_output=True, text=True, timeout=60)
        assert bad.returncode != 0 and "INVALID_ARGUMENT" in bad.stderr
        bench = subprocess.run(
            [binaries[1], "bench", "--server", address, "--concurrency", "8",
             "--num-requests", "160", "--prompt-len", "8:48", "--output-len", "16:48",
             "--seed", "3", "--json"], capture_output=True, text=True, timeout=300)
        assert bench.returncode == 0, bench.stderr
        load = json.loads(bench.stdout)
        assert load["successful_requests"] == 160
        # Every request has ended (and the scheduler's counters were published with its
        # last step); a few more scrapes then hold every count.
        wait_for("the last scrape", lambda: p.value(
            "pkmserve_e2e_request_latency_seconds_count") == 161)
        time.sleep(1.0)
        yield p, load
    finally:
        prom.send_signal(signal.SIGTERM)
        prom.wait(timeout=30)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0


def _up(p):
    try:
        return p.value('up{job="pkmserve"}') == 1
    except OSError:
        return False  # not listening yet


def test_counters_equal_what_the_clients_received(stack):
    p, load = stack
    sel = f'{{job="pkmserve",model="{MODEL}"}}'
    assert p.value(f"pkmserve_generation_tokens_total{sel}") == load["total_output_tokens"]
    assert p.value(f"pkmserve_prompt_tokens_total{sel}") == load["total_input_tokens"]
    assert p.value(f'pkmserve_request_success_total{{api="grpc",finish_reason="length"}}') == 160
    assert p.value(f'pkmserve_request_failure_total{{api="grpc",code="INVALID_ARGUMENT"}}') == 1
    assert p.value("pkmserve_e2e_request_latency_seconds_count") == 161
    # Every token after a stream's first is one inter-token gap, as the clients counted them.
    assert p.value("pkmserve_inter_token_latency_seconds_count") == load["itl"]["count"]
    assert load["itl"]["count"] == load["total_output_tokens"] - 160
    assert p.value("pkmserve_request_queue_time_seconds_count") == 160
    assert p.value("pkmserve_requests_running") == 0
    assert p.value("pkmserve_requests_waiting") == 0
    assert p.value("pkmserve_kv_cache_usage_ratio") == 0


def test_latencies_agree_with_the_clients(stack):
    """The server measures from a call's arrival, the client from its send: the server's mean
    is at most the client's, and not far below it on loopback."""
    p, load = stack
    for metric, client in [("time_to_first_token", "ttft"), ("e2e_request_latency", "e2e")]:
        ok = "" if client == "ttft" else '{finish_reason="length"}'
        server_mean = p.value(f"sum(pkmserve_{metric}_seconds_sum) / "
                              f"sum(pkmserve_{metric}_seconds_count)")
        if client == "e2e":  # the client measured successes only: leave the refused call out
            server_mean = None
        client_mean = load[client]["mean_ms"] / 1e3
        if server_mean is not None:
            assert server_mean <= client_mean * 1.02 + 1e-3, (metric, server_mean, client_mean)
            assert server_mean >= client_mean * 0.5, (metric, server_mean, client_mean)
    # p99 TTFT from the histogram lies in the bucket that holds the clients' p99.
    p99 = p.value("histogram_quantile(0.99, sum by (le) "
                  "(rate(pkmserve_time_to_first_token_seconds_bucket[10m])))")
    bounds = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60]
    client_p99 = load["ttft"]["p99_ms"] / 1e3
    upper = next(b for b in bounds if b >= client_p99)
    assert p99 <= upper * 1.0001, (p99, client_p99)


def test_memory_and_pkm_series(stack):
    p, load = stack
    layer = '{layer="4"}'
    coverage = p.value(f"pkmserve_pkm_slot_coverage_ratio{layer}")
    assert 0 < coverage <= 1
    assert p.value(f"pkmserve_pkm_lookup_kl{layer}") > 0
    forwarded = p.value("pkmserve_batch_tokens_sum")
    assert forwarded == load["total_input_tokens"] + load["total_output_tokens"] - 160
    assert p.value(f"pkmserve_pkm_usage_window_tokens{layer}") == min(8192, forwarded)
    assert p.value(f"pkmserve_pkm_lookup_seconds_count{layer}") == p.value(
        "pkmserve_batch_size_count")
    weights = p.value("pkmserve_model_weights_bytes")
    kv = p.value("pkmserve_kv_cache_bytes")
    used = p.value('pkmserve_device_memory_used_bytes{device="cpu"}')
    kinds = [p.value(f'pkmserve_device_memory_bytes{{device="cpu",kind="{k}"}}')
             for k in ("weights", "pkm_values", "kv_cache", "workspace")]
    assert sum(kinds) == used and min(kinds) > 0
    assert used >= weights + kv
    assert p.value("pkmserve_device_memory_total_bytes") > used
    assert p.value("pkmserve_host_memory_resident_bytes") > weights


def test_recording_rules_evaluate_on_real_data(stack):
    p, load = stack
    # Each group runs every 15 s: wait for an evaluation of each that saw the load.
    # A quantile rule evaluated before the load's samples are in a rate window records NaN,
    # which is truthy: wait past it for a number.
    def recorded(expr):
        def number():
            v = p.value(expr)
            return None if v is None or math.isnan(v) else v
        return wait_for(expr, number, timeout=40)
    assert recorded(f'model:pkmserve_generation_tokens:rate1m{{model="{MODEL}"}}') > 0
    assert recorded("model:pkmserve_requests:rate1m") > 0
    assert recorded("model:pkmserve_time_to_first_token_seconds:p99_5m") > 0
    assert 0 < recorded("layer:pkmserve_pkm_lookup_seconds_per_token:rate5m") < 0.01
    # Waiting requests over the queue's 256 places, when the group last ran (the series exists
    # even when 0, so wait for the series rather than a truthy value).
    saturation = wait_for("the saturation rule", lambda: p.query(
        "instance:pkmserve_request_queue:saturation"), timeout=40)
    waiting = float(saturation[0]["value"][1]) * 256
    assert 0 <= waiting <= 8 and waiting == round(waiting)  # at most the 8 clients' requests
    # No alert fires on a healthy server.
    assert p.query('ALERTS{alertstate="firing"}') == []


def test_every_grafana_query_returns_data(stack):
    p, _ = stack
    with open(GRAFANA) as f:
        dashboard = json.load(f)
    exprs = [(panel["title"], t["expr"]) for panel in dashboard["panels"]
             for t in panel.get("targets", [])]
    assert len(exprs) >= 20
    for title, expr in exprs:
        concrete = (expr.replace("$__rate_interval", "1m").replace('"$model"', f'"{MODEL}"')
                    .replace('"$instance"', '".*"'))
        assert "$" not in concrete, (title, expr)
        result = p.query(concrete)
        assert result, f"panel '{title}': no data for {concrete}"
        for series in result:
            assert not math.isnan(float(series["value"][1])), (title, concrete)


class GraphNodes(HTMLParser):
    """Counts, per graph container (div id graph-*), the points of the lines drawn in it."""

    def __init__(self):
        super().__init__()
        self.stack, self.points = [], {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        graph = attrs.get("id", "") if (attrs.get("id") or "").startswith("graph-") else None
        self.stack.append(graph)
        if graph:
            self.points.setdefault(graph, 0)
        current = next((g for g in reversed(self.stack) if g), None)
        if tag == "path" and current and "path" in (attrs.get("class") or ""):
            self.points[current] += len(re.findall(r"[ML]", attrs.get("d") or ""))

    def handle_endtag(self, tag):
        if self.stack:
            self.stack.pop()


def test_console_dashboard_renders_graphs_with_data(stack, request, tmp_path):
    p, _ = stack
    url = (f"http://{p.address}/consoles/pkmserve.html"
           "#pctc%7B%22duration%22%3A30%2C%22endTime%22%3A0%7D")  # the last 30 seconds
    chromium = ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu",
                "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
                "--window-size=1400,2000", "--virtual-time-budget=10000"]
    dom = subprocess.run(chromium + ["--dump-dom", url], capture_output=True, text=True,
                         timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert MODEL in dom.stdout  # the server-side table of current values
    nodes = GraphNodes()
    nodes.feed(dom.stdout)
    assert len(nodes.points) == 10, nodes.points
    for graph, points in nodes.points.items():
        assert points >= 4, f"{graph} drew no line ({nodes.points})"
    png = tmp_path / "console.png"
    shot = subprocess.run(chromium + [f"--screenshot={png}", url], capture_output=True,
                          text=True, timeout=120)
    assert shot.returncode == 0, shot.stderr[-2000:]
    with open(png, "rb") as f:
        header = f.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(header[16:20], "big") == 1400  # width from the IHDR chunk
    keep = request.config.getoption("--screenshot")
    if keep:
        shutil.copyfile(png, keep)
