#!/usr/bin/python3
"""Writes the fuzz targets' seed corpora (tests/fuzz/corpus/<target>/), from the bundled model
and the tiny model families, so that each fuzzer starts from inputs that reach deep:

    /usr/bin/python3 tests/fuzz/make_corpus.py

Deterministic: run it again after a format change and commit what changes. Inputs that found
crashes go to tests/fuzz/regressions/<target>/ by hand (docs/reliability.md), not here."""
import base64
import hashlib
import importlib
import json
import pathlib
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "fuzz" / "corpus"


def write(target, inputs):
    out = CORPUS / target
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        old.unlink()
    for data in inputs:
        (out / hashlib.sha1(data).hexdigest()).write_bytes(data)
    print(f"{target}: {len(inputs)} inputs")


def model_loader():
    inputs = []
    dirs = sorted((REPO / "tests" / "data" / "families").iterdir())
    for d in dirs:
        inputs.append((d / "config.json").read_bytes() + b"\0" + (d / "model.safetensors").read_bytes())
    config = (REPO / "models" / "pkm-small" / "config.json").read_bytes()
    inputs.append(config)  # a config without weights
    # A header alone, and one tensor past the end of its data.
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}).encode()
    inputs.append(config + b"\0" + len(header).to_bytes(8, "little") + header + b"\0" * 8)
    return inputs


def tokenizers():
    texts = ["Hello, world!", "the thing is in the ring\n\n", "é ü 日本語 🙂", "<|endoftext|>the<|fim|>",
             "the lower cat té", "   tabs\tand\r\nnewlines  ", "\xff"]
    inputs = []
    for mode in range(3):
        for t in texts:
            inputs.append(bytes([mode]) + t.encode("utf-8", "surrogateescape"))
        inputs.append(bytes([mode]) + b"".join(i.to_bytes(4, "little", signed=True) for i in [0, 1, 5, 300, -1, 1 << 30]))
    ranks = "".join(f"{base64.b64encode(bytes([b])).decode()} {b}\n" for b in range(256))
    ranks += f"{base64.b64encode(b'th').decode()} 256\n{base64.b64encode(b'the').decode()} 257\n"
    inputs.append(bytes([3]) + ranks.encode())
    inputs.append(bytes([3]) + b"YQ== 0\nYg== 1\n\nYWI= 2\n")
    words = ["<s>", "</s>", "<pad>", "<unk>"] + [f"<special{i}>" for i in range(10)] + ["the", "ca@@", "t", "low@@", "er", "low"]
    dictionary = "".join(f"{w} {100 - i}\n" for i, w in enumerate(words)).encode()
    codes = b"t h 90\nth e</w> 80\nc a 70\nca t</w> 60\nl o 50\nlo w</w> 40\n"
    inputs.append(bytes([4]) + len(words).to_bytes(2, "little") + dictionary + b"\0" + codes)
    inputs.append(bytes([4]) + len(words).to_bytes(2, "little") + dictionary)
    return inputs


def requests():
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(["protoc", f"-I{REPO}/proto", f"--python_out={out}",
                        f"{REPO}/proto/pkmserve/v1/inference.proto"], check=True)
        sys.path.insert(0, out)
        pb = importlib.import_module("pkmserve.v1.inference_pb2")
    generate = [
        pb.GenerateRequest(text="Once upon a time", max_new_tokens=8),
        pb.GenerateRequest(tokens=pb.TokenIds(ids=[1, 2, 3]), max_new_tokens=4, temperature=0.7, top_k=40,
                           top_p=0.9, seed=7, stop=["\n", "The"], logprobs=True, top_logprobs=5),
        pb.GenerateRequest(text="x" * 300, truncate=50, add_bos=False, ignore_eos=True, memory_knn=4, memory_heads=2),
        pb.GenerateRequest(text="", temperature=0),
    ]
    score = [
        pb.ScoreRequest(text="The quick brown fox jumps over the lazy dog.", per_token=True, top_n=3),
        pb.ScoreRequest(tokens=pb.TokenIds(ids=list(range(1, 40))), context=16, stride=8, score_from=4),
        pb.ScoreRequest(text="a b", context=2, stride=1, memory_knn=1),
    ]
    inputs = [bytes([0]) + m.SerializeToString() for m in generate]
    inputs += [bytes([1]) + m.SerializeToString() for m in score]
    inputs += [bytes([2]) + pb.TokenizeRequest(text="Hello there", add_bos=True).SerializeToString()]
    inputs += [bytes([3]) + pb.DetokenizeRequest(ids=[1, 50, 7999, 8000, -1]).SerializeToString()]
    inputs += [bytes([4])]
    bodies = [
        {"prompt": "Once upon a time", "max_tokens": 8, "temperature": 0},
        {"prompt": [1, 2, 3], "max_tokens": 4, "stream": True, "logprobs": 2, "echo": True, "stop": ["\n"]},
        {"prompt": ["one"], "max_tokens": 0, "echo": True, "logprobs": 1, "top_p": 0.5, "top_k": 10, "seed": 3},
        {"prompt": "x", "n": 2, "best_of": 1, "presence_penalty": 0.0, "logit_bias": {}, "ignore_eos": True},
    ]
    inputs += [bytes([5]) + json.dumps(b).encode() for b in bodies]
    inputs += [bytes([5]) + b'{"prompt": "unterminated', bytes([5]) + b"[1, 2]"]
    inputs += [bytes([6]) + json.dumps({"prompt": "Hello", "add_special_tokens": False}).encode()]
    inputs += [bytes([7]) + json.dumps({"tokens": [1, 2, 3]}).encode()]
    return inputs


if __name__ == "__main__":
    write("fuzz_model_loader", model_loader())
    write("fuzz_tokenizers", tokenizers())
    write("fuzz_requests", requests())
