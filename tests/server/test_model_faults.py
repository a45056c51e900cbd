"""A model directory that is corrupted or changed on disk (docs/reliability.md): pkmserve refuses
to load it, exits 2 and says which file is wrong and how; a model replaced by rename while
serving goes on being served from the file it loaded."""
import json
import os
import shutil
import subprocess

import grpc
import pytest

from tests.client.servers import start_server, stop_server
from tests.server.figures import record

REPO = __file__.rsplit("/tests/server/", 1)[0]
MODEL = f"{REPO}/models/pkm-small"
BASE = ["--threads", "1", "--kv-cache-bytes", "16M"]


def copy_model(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(MODEL, model)
    return model


def truncate(path, keep):
    with open(path, "r+b") as f:
        f.truncate(keep)


def flip_header_byte(path):
    with open(path, "r+b") as f:
        f.seek(8 + 2)  # inside the JSON header, after its opening '{"'
        f.write(b"\x00")


def change_config(path):
    config = json.loads(path.read_text())
    config["d_ff"] = config["d_ff"] * 2
    path.write_text(json.dumps(config))


# (what is done to the copy, the file named, words of the error)
FAULTS = [
    ("weights truncated to half", "model.safetensors",
     lambda m: truncate(m / "model.safetensors", os.path.getsize(m / "model.safetensors") // 2),
     "truncated"),
    ("weights cut inside the header", "model.safetensors",
     lambda m: truncate(m / "model.safetensors", 100), "header length"),
    ("weights header corrupted", "model.safetensors",
     lambda m: flip_header_byte(m / "model.safetensors"), "malformed header JSON"),
    ("weights empty", "model.safetensors", lambda m: truncate(m / "model.safetensors", 0), "bytes"),
    ("config changed: d_ff doubled", "model.safetensors",
     lambda m: change_config(m / "config.json"), "shape"),
    ("config not JSON", "config.json", lambda m: (m / "config.json").write_text("{\"format_"),
     "malformed JSON"),
    ("tokenizer truncated", "tokenizer.model", lambda m: truncate(m / "tokenizer.model", 1000),
     "tokenizer"),
    ("weights missing", "model.safetensors", lambda m: os.remove(m / "model.safetensors"),
     "no such file"),
]


@pytest.mark.parametrize("what,file,fault,words", FAULTS, ids=[f[0] for f in FAULTS])
def test_a_damaged_model_is_refused_naming_the_file(pkmserve, tmp_path, what, file, fault, words):
    model = copy_model(tmp_path)
    fault(model)
    for args in (["--check", str(model)], ["--model", str(model), "--listen", "127.0.0.1:0",
                                           "--metrics-listen", "off", "--http-listen", "off"]):
        out = subprocess.run([pkmserve, *BASE, *args], capture_output=True, text=True, timeout=120)
        assert out.returncode == 2, (what, out.returncode, out.stderr)
        assert file in out.stderr and words in out.stderr, (what, out.stderr)
        assert "Traceback" not in out.stderr and "terminate called" not in out.stderr
    record(f"damaged_model: {what}", refused=True, exit_code=2, failures=0, lost=0)


def test_a_model_replaced_by_rename_while_serving_is_served_as_loaded(pkmserve, api, tmp_path):
    pb, rpc = api
    model = copy_model(tmp_path)
    proc, address, _ = start_server(pkmserve, *BASE, "--model", str(model))
    try:
        stub = rpc.InferenceStub(grpc.insecure_channel(address))
        request = pb.ScoreRequest(text="Once upon a time there was a cat.")
        before = stub.Score(request, timeout=60)
        # The way to replace a model under a server: write the new file beside it, then rename
        # it over the old one; the server keeps the file it mapped.
        other = tmp_path / "other.safetensors"
        shutil.copy(model / "model.safetensors", other)
        truncate(other, os.path.getsize(other) // 2)
        os.replace(other, model / "model.safetensors")
        after = stub.Score(request, timeout=60)
        assert after.perplexity == before.perplexity
        # A restart would load the new file, and refuses it.
        out = subprocess.run([pkmserve, *BASE, "--check", str(model)], capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 2 and "truncated" in out.stderr, out.stderr
        record("model_replaced_while_serving", requests=2, failures=0, lost=0,
               served_as_loaded=True)
    finally:
        stop_server(proc)
