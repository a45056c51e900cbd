"""The pkmserve the CLI tests talk to: one per test module, on free loopback ports."""
import signal

import pytest

from tests.client.servers import start_server


@pytest.fixture(scope="module")
def served(binaries):
    """(gRPC address, metrics address) of a pkmserve serving the bundled model."""
    proc, address, metrics = start_server(binaries[0], "--threads", "2", "--kv-cache-bytes", "64M")
    yield address, metrics
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0


@pytest.fixture(scope="module")
def server(served):
    return served[0]
