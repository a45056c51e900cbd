"""What the fault and load tests measure, gathered into one JSON file (--figures) from which
docs/reliability.md's table is written; and the server's resident memory."""
import json
import os

OUT = None  # set from --figures by conftest.py; None: figures are not kept


def record(test, **figures):
    if OUT is None:
        return
    data = {}
    if os.path.exists(OUT):
        with open(OUT) as f:
            data = json.load(f)
    data[test] = figures
    with open(OUT, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")


def rss_bytes(pid):
    """VmRSS of a process, in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")
