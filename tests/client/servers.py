"""pkmserve as a child process on free loopback ports, for the Python tests."""
import re
import subprocess
import threading


def drain_stderr(proc, lines):
    """Keeps reading the server's log into `lines` on a thread: a log line per request would
    otherwise fill the pipe and block the server."""
    def run():
        for line in proc.stderr:
            lines.append(line)
    threading.Thread(target=run, daemon=True).start()


def start_server(pkmserve, *flags, env=None):
    """Starts pkmserve on free ports; returns the process, its gRPC address and its metrics
    address (host:port). The HTTP API's base URL is proc.http_url ("http://host:port", None
    when off); the log so far and from then on is in proc.log_lines."""
    proc = subprocess.Popen([pkmserve, "--listen", "127.0.0.1:0", "--metrics-listen",
                             "127.0.0.1:0", "--http-listen", "127.0.0.1:0", *flags],
                            stderr=subprocess.PIPE, text=True, env=env)
    proc.log_lines = []
    proc.http_url = None
    metrics = None
    for line in proc.stderr:
        proc.log_lines.append(line)
        m = re.search(r"http on (https?://[^ ]+:\d+)/v1", line)
        if m:
            proc.http_url = m.group(1)
        m = re.search(r"metrics on http://([^ ]+:\d+)/metrics", line)
        if m:
            metrics = m.group(1)
        m = re.search(r"listening on ([^ ]+:\d+)", line)
        if m:
            drain_stderr(proc, proc.log_lines)
            return proc, m.group(1), metrics
    raise AssertionError("pkmserve did not start:\n" + "".join(proc.log_lines))


def run_pkm(pkm, *args, stdin=None, env=None):
    """Runs the CLI to completion; stdin as text or bytes, stdout and stderr as text."""
    if not isinstance(stdin, bytes):
        return subprocess.run([pkm, *args], capture_output=True, text=True, input=stdin,
                              timeout=120, env=env)
    out = subprocess.run([pkm, *args], capture_output=True, input=stdin, timeout=120, env=env)
    out.stdout = out.stdout.decode(errors="replace")
    out.stderr = out.stderr.decode(errors="replace")
    return out
