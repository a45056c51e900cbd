"""The tokenizer files a converted model directory gets from --tokenizer:
  a SentencePiece model      -> tokenizer.model
  a tiktoken ranks file      -> tokenizer.tiktoken + tiktoken.json (Llama-3's pattern and its 256
                                special tokens, numbered after the last rank, as Meta's
                                llama/tokenizer.py numbers them)
anything else is refused, naming the file."""
import base64
import binascii
import json
import shutil
from pathlib import Path

from training.convert.common import Refused

LLAMA3_SPECIALS = (["<|begin_of_text|>", "<|end_of_text|>"]
                   + [f"<|reserved_special_token_{i}|>" for i in range(4)]
                   + ["<|start_header_id|>", "<|end_header_id|>", "<|reserved_special_token_4|>",
                      "<|eot_id|>"]
                   + [f"<|reserved_special_token_{i}|>" for i in range(5, 251)])


def tiktoken_ranks(path: Path):
    """The number of ranks when `path` is a tiktoken file (`base64 rank` per line), else None."""
    count = 0
    try:
        with open(path, "rb") as f:
            for line in f:
                if not line.strip():
                    continue
                token, rank = line.split()
                base64.b64decode(token, validate=True)
                int(rank)
                count += 1
    except (ValueError, binascii.Error):
        return None
    return count or None


def is_sentencepiece(path: Path) -> bool:
    import sentencepiece as spm  # here, so that conversions without a tokenizer do not need it
    try:
        spm.SentencePieceProcessor(model_file=str(path))
        return True
    except Exception:  # sentencepiece raises RuntimeError/OSError for foreign files
        return False


def tokenizer_kind(path: Path) -> str:
    """"sentencepiece" or "tiktoken"; refuses anything else, before a file is written."""
    if is_sentencepiece(path):
        return "sentencepiece"
    if tiktoken_ranks(path) is None:
        raise Refused(f"--tokenizer {path}: neither a SentencePiece model nor a tiktoken ranks file "
                      f"(base64 token and rank per line); convert the model without --tokenizer to "
                      f"serve it on token ids")
    return "tiktoken"


def install_tokenizer(path: Path, out: Path, kind: str):
    if kind == "sentencepiece":
        shutil.copyfile(path, out / "tokenizer.model")
        return
    shutil.copyfile(path, out / "tokenizer.tiktoken")
    ranks = tiktoken_ranks(path)
    specials = {name: ranks + i for i, name in enumerate(LLAMA3_SPECIALS)}
    (out / "tiktoken.json").write_text(json.dumps({"pattern": "llama3", "special_tokens": specials},
                                                  indent=1) + "\n")
