"""Trains the SentencePiece tokenizer on the training split of the corpus.

Unigram model, byte fallback on (every UTF-8 string is encodable, so the server can
score any text), ids: <unk>=0, <s>=1, </s>=2, no padding id.

Usage: /usr/bin/python3 training/tokenizer.py --corpus data/corpus --vocab 8000 --out data/tokenizer
"""
import argparse
import re
import tempfile
from pathlib import Path

import sentencepiece as spm


def sentences(doc: str, max_bytes: int = 2000):
    """Splits a document into sentence-sized lines; SentencePiece skips lines over 4192 bytes."""
    for s in re.split(r"(?<=[.!?])\s+", doc):
        while len(s.encode()) > max_bytes:
            cut = s.rfind(" ", 0, max_bytes // 2) or max_bytes // 2
            yield s[:cut]
            s = s[cut:].lstrip()
        if s:
            yield s


def train(corpus: Path, vocab: int, out_prefix: Path, threads: int = 2) -> Path:
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        for doc in (corpus / "train.txt").read_text().splitlines():
            for s in sentences(doc):
                f.write(s + "\n")
        lines_path = f.name
    spm.SentencePieceTrainer.train(
        input=lines_path, model_prefix=str(out_prefix), vocab_size=vocab,
        model_type="unigram", character_coverage=0.9999, byte_fallback=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=threads,
        input_sentence_size=2_000_000, shuffle_input_sentence=True,
        max_sentence_length=4192, minloglevel=2)
    Path(lines_path).unlink()
    return out_prefix.with_suffix(".model")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=Path("data/corpus"))
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--out", type=Path, default=Path("data/tokenizer"), help="output prefix")
    args = ap.parse_args()
    model = train(args.corpus, args.vocab, args.out)
    sp = spm.SentencePieceProcessor(model_file=str(model))
    print(f"tokenizer: {model} vocab={sp.vocab_size()}")


if __name__ == "__main__":
    main()
