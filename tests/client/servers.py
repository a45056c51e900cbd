"""pkmserve as a child process on free loopback ports, for the Python tests."""
import re
import signal
import subprocess
import threading
import time
import urllib.request


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


def scrape(metrics):
    text = urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10).read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def series(values, name, **labels):
    """The value of the one series of `name` whose labels include `labels` (0 if none)."""
    found = [v for k, v in values.items() if k.split("{")[0] == name and
             all(f'{key}="{val}"' in k for key, val in labels.items())]
    assert len(found) <= 1, found
    return found[0] if found else None


def make_tls(d):
    """A CA and a server certificate for localhost/127.0.0.1 (the openssl CLI)."""
    key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1")
    for cmd in [f"openssl req -x509 {key} -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca",
                f"openssl req {key} -keyout server.key -out server.csr -subj /CN=localhost",
                "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
                "-out server.pem -days 2 -extfile san.ext"]:
        subprocess.run(cmd.split(), cwd=d, check=True, capture_output=True)
    return d / "ca.pem", d / "server.pem", d / "server.key"


def stop_server(proc, timeout=60):
    """SIGTERM, then the exit code must be 0; else the log's tail says why (a sanitizer's
    report, a drain that timed out)."""
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=timeout)
    time.sleep(0.2)  # the stderr thread reads the last lines
    assert code == 0, f"pkmserve exited {code}:\n" + "".join(proc.log_lines[-60:])
