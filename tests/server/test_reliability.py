"""Fault and load tests over loopback (docs/reliability.md): random cancellations and deadlines,
a burst past the queue bound, clients that stop reading, SIGTERM under load, oversized messages.
Each counts what it sent and what came back; none may lose a request, leave KV cache behind or
grow the server's memory. Run by ctest (pkmserve.Reliability):
    /usr/bin/python3 -m pytest tests/server/test_reliability.py --pkmserve build/bin/pkmserve \
        --requests 10000 --figures bench/results/reliability.json
"""
import asyncio
import random
import signal
import threading
import time

import grpc
import pytest

from tests.client.servers import scrape, series, start_server, stop_server
from tests.server.figures import record, rss_bytes
from tests.server.load import assert_nothing_left, text, wait_idle

BASE = ["--threads", "2", "--kv-cache-bytes", "32M"]
FINISHED = ("FINISH_REASON_LENGTH", "FINISH_REASON_STOP", "FINISH_REASON_EOS")


def check_complete(pb, messages):
    """An OK stream ends with a finish reason and usage that counts every token it carried."""
    last = messages[-1]
    assert pb.FinishReason.Name(last.finish_reason) in FINISHED, last
    received = sum(len(m.tokens) for m in messages)
    assert last.usage.completion_tokens == received, (last.usage, received)


async def one_request(pb, stub, rng, outcomes):
    """One request of a random kind; its outcome is counted under the name of what happened."""
    kind = rng.choice(["complete", "complete", "cancel", "deadline", "score", "score-deadline"])
    timeout = rng.uniform(0.001, 0.05) if kind.endswith("deadline") else 60
    try:
        if kind.startswith("score"):
            await stub.Score(pb.ScoreRequest(text=text(rng, rng.randint(2, 24))), timeout=timeout)
        else:
            request = pb.GenerateRequest(text=text(rng, rng.randint(1, 12)),
                                         max_new_tokens=rng.randint(1, 16),
                                         temperature=rng.choice([0.0, 0.8]), seed=rng.randint(1, 99))
            call = stub.Generate(request, timeout=timeout)
            messages, cancel_after = [], rng.randint(0, 3) if kind == "cancel" else None
            async for message in call:
                messages.append(message)
                if cancel_after is not None and len(messages) > cancel_after:
                    call.cancel()
                    break
            if kind == "cancel" and call.cancelled():
                outcomes[kind + ":CANCELLED"] = outcomes.get(kind + ":CANCELLED", 0) + 1
                return
            check_complete(pb, messages)
        code = "OK"
    except grpc.aio.AioRpcError as e:
        code = e.code().name
    except asyncio.CancelledError:
        code = "CANCELLED"
    outcomes[f"{kind}:{code}"] = outcomes.get(f"{kind}:{code}", 0) + 1


async def run_mix(pb, rpc, address, count, concurrency, seed):
    rng = random.Random(seed)
    outcomes = {}
    async with grpc.aio.insecure_channel(address) as channel:
        stub = rpc.InferenceStub(channel)
        gate = asyncio.Semaphore(concurrency)

        async def guarded():
            async with gate:
                await one_request(pb, stub, rng, outcomes)

        await asyncio.gather(*(guarded() for _ in range(count)))
    return outcomes


# What each kind of request may end in; anything else is a failure.
ALLOWED = {"complete": {"OK"}, "cancel": {"OK", "CANCELLED"}, "deadline": {"OK", "DEADLINE_EXCEEDED"},
           "score": {"OK"}, "score-deadline": {"OK", "DEADLINE_EXCEEDED"}}


def test_random_cancels_and_deadlines_leave_no_cache_and_no_memory_behind(pkmserve, api, request):
    pb, rpc = api
    count = request.config.getoption("--requests")
    proc, address, metrics = start_server(pkmserve, *BASE)
    try:
        # Warm up first, so that the allocator's arenas and gRPC's pools exist before "before".
        warm = asyncio.run(run_mix(pb, rpc, address, max(count // 10, 200), 32, seed=1))
        wait_idle(metrics)
        before = rss_bytes(proc.pid)
        started = time.monotonic()
        outcomes = asyncio.run(run_mix(pb, rpc, address, count, 32, seed=2))
        seconds = time.monotonic() - started
        values = wait_idle(metrics)
        after = rss_bytes(proc.pid)
        failures = {k: v for k, v in outcomes.items()
                    if k.split(":")[1] not in ALLOWED[k.split(":")[0]]}
        record("random_cancels_and_deadlines", requests=count, seconds=round(seconds, 1),
               outcomes=outcomes, failures=sum(failures.values()),
               lost=count - sum(outcomes.values()), rss_before=before, rss_after=after,
               warm_up_requests=sum(warm.values()))
        assert not failures, failures
        assert sum(outcomes.values()) == count
        # Each fault was injected: the mix is not all easy requests.
        assert outcomes.get("cancel:CANCELLED", 0) > 0 and outcomes.get("deadline:DEADLINE_EXCEEDED", 0) > 0
        assert_nothing_left(values, before, after, request.config.getoption("--sanitized"))
    finally:
        stop_server(proc)


def test_a_burst_past_the_queue_is_refused_and_the_accepted_all_complete(pkmserve, api):
    pb, rpc = api
    queue, running = 8, 2
    proc, address, metrics = start_server(pkmserve, *BASE, "--max-queue", str(queue),
                                          "--max-running", str(running))
    try:
        burst = 10 * queue
        results = [None] * burst
        channel = grpc.insecure_channel(address)
        stub = rpc.InferenceStub(channel)
        go = threading.Barrier(burst)

        def client(i):
            go.wait()
            try:
                messages = list(stub.Generate(pb.GenerateRequest(
                    text="the cat", max_new_tokens=32, ignore_eos=True), timeout=120))
                check_complete(pb, messages)
                results[i] = ("OK", messages[-1].usage.completion_tokens)
            except grpc.RpcError as e:
                results[i] = (e.code().name, e.details())

        threads = [threading.Thread(target=client, args=(i,)) for i in range(burst)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        channel.close()
        codes = [r[0] for r in results]
        refused = [r for r in results if r[0] == "RESOURCE_EXHAUSTED"]
        values = wait_idle(metrics)
        record("burst_past_the_queue", requests=burst, queue=queue, running=running,
               accepted=codes.count("OK"), refused=len(refused),
               failures=burst - codes.count("OK") - len(refused), lost=codes.count(None))
        assert set(codes) <= {"OK", "RESOURCE_EXHAUSTED"}, results
        # At least the queue's worth is accepted; the engine's loop may have moved none, one
        # or both of the running slots' requests out of the queue when the burst lands.
        assert codes.count("OK") >= queue and refused, codes
        assert all(r[1] == 32 for r in results if r[0] == "OK")
        assert all("queue is full" in r[1] for r in refused), refused[0]
        assert series(values, "pkmserve_request_failure_total", api="grpc",
                      code="RESOURCE_EXHAUSTED") == len(refused)
    finally:
        stop_server(proc)


def test_clients_that_stop_reading_hold_no_unbounded_buffers(pkmserve, api, request):
    pb, rpc = api
    proc, address, metrics = start_server(pkmserve, *BASE)
    try:
        stub = rpc.InferenceStub(grpc.insecure_channel(address))
        whole = pb.GenerateRequest(text="the cat", ignore_eos=True)  # as many tokens as fit
        # The same sixteen streams read as they come first: the KV cache pages and the batch's
        # buffers they touch are then resident before "before".
        warm = [stub.Generate(whole, timeout=300) for _ in range(16)]
        for call in warm:
            check_complete(pb, list(call))
        before = rss_bytes(proc.pid)
        # Now never read: each on its own channel, so that one stalled HTTP/2 connection does
        # not also stall the others' windows.
        stalled_channels = [grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
                            for _ in range(16)]
        stalled = [rpc.InferenceStub(c).Generate(whole, timeout=300) for c in stalled_channels]
        # Meanwhile another client is served in full.
        started = time.monotonic()
        messages = list(stub.Generate(pb.GenerateRequest(text="a dog", max_new_tokens=16,
                                                         ignore_eos=True), timeout=60))
        served_in = time.monotonic() - started
        check_complete(pb, messages)
        deadline = time.monotonic() + 60  # the stalled sequences run to the end of the context
        while series(scrape(metrics), "pkmserve_requests_running") and time.monotonic() < deadline:
            time.sleep(0.2)
        during = rss_bytes(proc.pid)
        # The stalled clients read at last: every one gets its whole stream.
        lengths = []
        for call in stalled:
            got = list(call)
            check_complete(pb, got)
            lengths.append(got[-1].usage.completion_tokens)
        for c in stalled_channels:
            c.close()
        values = wait_idle(metrics)
        record("stalled_readers", streams=len(stalled), tokens_each=lengths[0],
               other_client_seconds=round(served_in, 2), rss_before=before, rss_during=during,
               rss_after=rss_bytes(proc.pid), lost=0, failures=0)
        assert len(set(lengths)) == 1 and lengths[0] > 100, lengths
        assert series(values, "pkmserve_kv_cache_usage_ratio") == 0
        # A token's text is a few bytes: what waits for a stalled reader is small (ASan's
        # quarantine holds what the batches free, so a sanitized build is not measured).
        if not request.config.getoption("--sanitized"):
            assert during - before < 8 << 20, (before, during)
    finally:
        stop_server(proc)


def test_sigterm_under_load_completes_or_refuses_every_request(pkmserve, api):
    pb, rpc = api
    proc, address, metrics = start_server(pkmserve, *BASE, "--drain-timeout", "60")
    outcomes, lock = {}, threading.Lock()
    stop = threading.Event()

    def client(seed):
        rng = random.Random(seed)
        channel = grpc.insecure_channel(address)
        stub = rpc.InferenceStub(channel)
        while not stop.is_set():
            received = []
            try:
                for message in stub.Generate(pb.GenerateRequest(
                        text=text(rng, 4), max_new_tokens=rng.randint(4, 48), ignore_eos=True),
                        timeout=120):
                    received.append(message)
                check_complete(pb, received)
                outcome = "completed"
            except grpc.RpcError as e:
                # Refused before it was accepted, or after a partial stream (a lost request).
                outcome = e.code().name + (" after tokens" if received else "")
            with lock:
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if outcome != "completed":
                break  # as a client of a draining replica does: it goes elsewhere
        channel.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    time.sleep(3)
    running = series(scrape(metrics), "pkmserve_requests_running")
    proc.send_signal(signal.SIGTERM)
    exit_code = proc.wait(timeout=120)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    total = sum(outcomes.values())
    record("sigterm_under_load", requests=total, running_at_sigterm=running, outcomes=outcomes,
           exit_code=exit_code, lost=total - outcomes.get("completed", 0) - outcomes.get("UNAVAILABLE", 0))
    assert exit_code == 0
    assert running and running > 0
    assert set(outcomes) <= {"completed", "UNAVAILABLE"}, outcomes
    assert outcomes.get("completed", 0) > 16 and outcomes.get("UNAVAILABLE", 0) > 0, outcomes
    assert "drained" in "".join(proc.log_lines) or "draining" in "".join(proc.log_lines)


def test_oversized_messages_are_refused_and_the_server_keeps_serving(pkmserve, api):
    pb, rpc = api
    proc, address, _ = start_server(pkmserve, *BASE)
    try:
        stub = rpc.InferenceStub(grpc.insecure_channel(address))
        huge = "cat " * (5 << 20 >> 2)  # 5 MiB, past gRPC's 4 MiB receive limit
        for call in [lambda: stub.Score(pb.ScoreRequest(text=huge), timeout=60),
                     lambda: list(stub.Generate(pb.GenerateRequest(text=huge), timeout=60)),
                     lambda: stub.Tokenize(pb.TokenizeRequest(text=huge), timeout=60)]:
            with pytest.raises(grpc.RpcError) as err:
                call()
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value
            assert "larger than max" in err.value.details(), err.value.details()
        # Under the byte limit but past the context: refused by validation, naming the limit.
        with pytest.raises(grpc.RpcError) as err:
            list(stub.Generate(pb.GenerateRequest(text="cat " * 100_000), timeout=60))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "tokens" in err.value.details(), err.value.details()
        messages = list(stub.Generate(pb.GenerateRequest(text="the cat", max_new_tokens=4), timeout=60))
        check_complete(pb, messages)
        record("oversized_messages", requests=4, refused=4, failures=0, lost=0)
    finally:
        stop_server(proc)
