"""pkmserve as a child process on free loopback ports, for the Python tests."""
import re
import subprocess


def start_server(pkmserve, *flags):
    """Starts pkmserve on free ports; returns the process, its gRPC address and its metrics
    address (host:port)."""
    proc = subprocess.Popen([pkmserve, "--listen", "127.0.0.1:0", "--metrics-listen",
                             "127.0.0.1:0", *flags],
                            stderr=subprocess.PIPE, text=True)
    metrics = None
    for line in proc.stderr:
        m = re.search(r"metrics on http://([^ ]+:\d+)/metrics", line)
        if m:
            metrics = m.group(1)
        m = re.search(r"listening on ([^ ]+:\d+)", line)
        if m:
            return proc, m.group(1), metrics
    raise AssertionError("pkmserve did not start")
