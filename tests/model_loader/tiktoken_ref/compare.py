#!/usr/bin/python3
"""The C++ tiktoken tokenizer against the real tiktoken (npm `tiktoken`, WASM) on cl100k_base.

Builds a corpus of a few MB from the texts every Debian machine carries (the licences in
/usr/share/common-licenses, the copyright files and READMEs under /usr/share/doc) plus UTF-8
edge cases, has reference.cjs encode it with tiktoken and tiktoken_encode with
model_loader/tokenizer_tiktoken, and requires identical ids for every document and
Decode(Encode(x)) == x. Installs the npm package (`npm ci`, from package-lock.json) when
node_modules is missing. Run by ctest as tiktoken_ref.MatchesTiktokenCl100k.

  compare.py --tool build/tests/tiktoken_encode --work build/tiktoken_ref
"""
import argparse
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS_BYTES = 4 << 20  # enough for every BPE merge path that real text exercises
MIN_BYTES = 1 << 20  # below this the machine lacks the Debian texts and the test proves little

EDGE_CASES = {
    "combining": "e\u0301cole cafe\u0301 n\u0303 a\u0308\u0308\u0308 \u0915\u094d\u0937 Z\u0351\u0352\u0353",
    "emoji_zwj": "family \U0001F468\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466 flag "
                 "\U0001F3F3\uFE0F\u200D\U0001F308 skin \U0001F44D\U0001F3FD keycap 1\uFE0F\u20E3",
    "cjk": "\u6771\u4eac\u90fd\u306f\u65e5\u672c\u306e\u9996\u90fd\u3067\u3059\u3002 "
           "\ud55c\uad6d\uc5b4 \u4e2d\u6587\uff0c\u6807\u70b9\u3002 \U00020000\U0002A6D6",
    "rtl": "\u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u05e2\u05d1\u05e8\u05d9\u05ea "
           "\u200f\u0645\u0631\u062d\u0628\u0627 123 \u0661\u0662\u0663\u202b x \u202c",
    "numbers": "1 12 123 1234 12345 1234567890123456789 3.14159 1,000,000 0x1F \u0664\u0665\u0666"
               " \u2167 \u00bd 10^100 -42 +7e-10",
    "contractions": "I'm you're he's she'd we'll they've don't DON'T It'S I'M 'tis o'clock "
                    "rock'n'roll it\u2019s \u2018quoted\u2019 'ſ 'll''ve",
    "crlf": "line one\r\nline two\r\n\r\nline four\r\rcarriage\n\r\nend\r\n",
    "spaces": "a  b   c    d\t\te \t \n  \n\n\n   x\n\n\n\n\n\n\n\n" + " " * 300 + "y" + "\n" * 50
              + "\u00a0\u00a0nbsp \u2003em \u3000ideo \u0085nel \u2028ls \u2029ps \x0bvt \x0cff",
    "trailing_space": "ends with spaces   ",
    "symbols": "!!! ??? ... --- === *** <<>> {}[]() @#$%^&* \u00a7\u00b6 \u2192\u2190 \u2211\u222b \u20ac100",
    "code": "def f(x):\n    return x ** 2  # square\n\nint main() { return 0; }\n",
    "specials": "before<|endoftext|>after <|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>"
                "<|endofprompt|><|endoftext|><|endoftext",
    # one regex piece each, long enough that a merge quadratic in the piece would show
    "long_runs": "=+" * 20000 + " " + "-" * 5000 + "\n" + "1234567890" * 500 + "\n"
                 + "\u00e9" * 3000 + " " + "\t" * 2000 + "x",
    "mixed_scripts": "\u0391\u03b8\u03ae\u03bd\u03b1 \u041c\u043e\u0441\u043a\u0432\u0430 "
                     "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22 \u10e5\u10d0\u10e0\u10d7\u10e3\u10da\u10d8",
}


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None  # not UTF-8, a directory, unreadable: JavaScript strings cannot carry it as is


def corpus():
    """(name, text) pairs: the edge cases, then Debian texts up to CORPUS_BYTES, each once."""
    docs = [("edge:" + name, text) for name, text in EDGE_CASES.items()]
    docs.append(("edge:all", "".join(EDGE_CASES.values())))
    seen = set()
    budget = [CORPUS_BYTES]

    def add(paths, share):
        limit = budget[0] - share
        for path in sorted(paths):
            if budget[0] <= limit:
                return
            text = read_text(path)
            if not text:
                continue
            digest = hashlib.sha256(text.encode()).digest()
            if digest in seen:
                continue
            seen.add(digest)
            docs.append((path, text))
            budget[0] -= len(text.encode())

    add(glob.glob("/usr/share/common-licenses/*"), 1 << 20)
    add(glob.glob("/usr/share/doc/*/copyright"), 2 << 20)
    readmes = [p for p in glob.glob("/usr/share/doc/**/*", recursive=True)
               if (p.endswith(".txt") or os.path.basename(p).startswith("README"))
               and not p.endswith(".gz")]
    add(readmes, budget[0])
    return docs


def ensure_npm_package():
    if os.path.isdir(os.path.join(HERE, "node_modules", "tiktoken")):
        return
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("tiktoken_ref: npm is missing (Debian: nodejs with npm); it installs the reference")
    print("tiktoken_ref: npm ci in", HERE, flush=True)
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tool", required=True, help="the tiktoken_encode binary")
    parser.add_argument("--work", required=True, help="a scratch folder (in the build dir)")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    ensure_npm_package()

    docs = corpus()
    with open(os.path.join(args.work, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for name, text in docs:
            f.write(json.dumps({"name": name, "text": text}, ensure_ascii=False) + "\n")
    subprocess.run([shutil.which("node") or "node", os.path.join(HERE, "reference.cjs"), args.work],
                   check=True)
    w = lambda name: os.path.join(args.work, name)
    subprocess.run([args.tool, w("cl100k_base.tiktoken"), w("cl100k_base.meta.json"),
                    w("corpus.jsonl"), w("ours.jsonl")], check=True)

    with open(w("reference.jsonl")) as f:
        reference = [json.loads(line) for line in f if line.strip()]
    with open(w("ours.jsonl")) as f:
        ours = [json.loads(line) for line in f if line.strip()]
    assert len(reference) == len(ours) == len(docs), (len(reference), len(ours), len(docs))

    failures = []
    total_bytes = total_tokens = 0
    for (name, text), ref, got in zip(docs, reference, ours):
        total_bytes += len(text.encode())
        total_tokens += len(ref["ids"])
        if ref["ids"] != got["ids"]:
            i = next((k for k, (a, b) in enumerate(zip(ref["ids"], got["ids"])) if a != b),
                     min(len(ref["ids"]), len(got["ids"])))
            failures.append(f"{name}: ids differ at token {i}: tiktoken "
                            f"{ref['ids'][max(0, i - 3):i + 5]} vs ours {got['ids'][max(0, i - 3):i + 5]}")
        if not got["round_trip"]:
            failures.append(f"{name}: Decode(Encode(text)) != text")
    print(f"tiktoken_ref: {len(docs)} documents, {total_bytes} bytes, {total_tokens} tokens "
          f"compared with tiktoken cl100k_base; {len(failures)} failure(s)")
    for line in failures[:40]:
        print("  " + line)
    if total_bytes < MIN_BYTES:
        failures.append(f"only {total_bytes} bytes of corpus (expected >= {MIN_BYTES})")
        print("tiktoken_ref: " + failures[-1])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
