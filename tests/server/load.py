"""What the fault and load tests share: random prompts, waiting for the server to be idle, and
what must be true once it is."""
import time

from tests.client.servers import scrape, series

WORDS = "once upon a time there was a little cat who lived in a big house near the sea".split()


def text(rng, words):
    return " ".join(rng.choice(WORDS) for _ in range(words))


def wait_idle(metrics, timeout=60):
    """The server's gauges once no request runs or waits and the KV cache is empty."""
    deadline = time.monotonic() + timeout
    while True:
        values = scrape(metrics)
        idle = (series(values, "pkmserve_requests_running") == 0 and
                series(values, "pkmserve_requests_waiting") == 0 and
                series(values, "pkmserve_kv_cache_usage_ratio") == 0)
        if idle or time.monotonic() > deadline:
            return values
        time.sleep(0.1)


def assert_nothing_left(values, rss_before, rss_after, sanitized):
    """After a mix: no KV cache held, no request running, and memory within 5% of before
    (not compared under ASan, whose quarantine holds freed memory)."""
    assert series(values, "pkmserve_kv_cache_usage_ratio") == 0
    assert series(values, "pkmserve_requests_running") == 0
    if not sanitized:
        assert rss_after <= rss_before * 1.05, (rss_before, rss_after)
