"""The tokenizer files a converted model directory gets from --tokenizer:
  a SentencePiece model      -> tokenizer.model
  a tiktoken ranks file      -> tokenizer.tiktoken + tiktoken.json (Llama-3's pattern and its 256
                                special tokens, numbered after the last rank, as Meta's
                                llama/tokenizer.py numbers them)
  fastBPE codes              -> xlm_bpe_codes.txt, beside the xlm_dictionary.txt that an XLM
                                checkpoint's dico_id2word gives (XLM models only)
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


def is_fastbpe_codes(path: Path) -> bool:
    """fastBPE's codes: `left right count` per line."""
    lines = 0
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                fields = line.split()
                if len(fields) != 3 or not fields[2].isdigit():
                    return False
                lines += 1
    except (UnicodeDecodeError, OSError):
        return False
    return lines > 0


def is_sentencepiece(path: Path) -> bool:
    import sentencepiece as spm  # here, so that conversions without a tokenizer do not need it
    try:
        spm.SentencePieceProcessor(model_file=str(path))
        return True
    except Exception:  # sentencepiece raises RuntimeError/OSError for foreign files
        return False


def tokenizer_kind(path: Path) -> str:
    """"sentencepiece", "tiktoken" or "fastbpe"; refuses anything else, before a file is written."""
    if is_sentencepiece(path):
        return "sentencepiece"
    if tiktoken_ranks(path) is not None:
        return "tiktoken"
    if is_fastbpe_codes(path):
        return "fastbpe"
    raise Refused(f"--tokenizer {path}: neither a SentencePiece model, a tiktoken ranks file (base64 "
                  f"token and rank per line) nor fastBPE codes (left right count per line); convert "
                  f"the model without --tokenizer to serve it on token ids")


def check_tokenizer_fits(kind: str, path: Path, files: dict):
    """fastBPE codes only mean something with the dictionary of the model they trained."""
    if kind == "fastbpe" and "xlm_dictionary.txt" not in files:
        raise Refused(f"--tokenizer {path}: fastBPE codes, which need the XLM dictionary their model "
                      f"was trained with, and this checkpoint has none (XLM's dico_id2word)")
    if kind != "fastbpe" and "xlm_dictionary.txt" in files:
        raise Refused(f"--tokenizer {path}: a {kind} tokenizer for an XLM model, whose ids are its "
                      f"dictionary's: give the fastBPE codes it was trained with, or no --tokenizer "
                      f"(its dictionary then decodes, and prompts are token ids)")


def default_bos_eos(path: Path, kind: str):
    """(BOS, EOS) a tokenizer implies, or None: a tiktoken file gets Llama-3's
    <|begin_of_text|> and <|end_of_text|>, numbered after its last rank."""
    if kind != "tiktoken":
        return None
    ranks = tiktoken_ranks(path)
    return ranks + LLAMA3_SPECIALS.index("<|begin_of_text|>"), ranks + LLAMA3_SPECIALS.index("<|end_of_text|>")


def install_tokenizer(path: Path, out: Path, kind: str):
    if kind == "sentencepiece":
        shutil.copyfile(path, out / "tokenizer.model")
        return
    if kind == "fastbpe":
        shutil.copyfile(path, out / "xlm_bpe_codes.txt")
        return
    shutil.copyfile(path, out / "tokenizer.tiktoken")
    ranks = tiktoken_ranks(path)
    specials = {name: ranks + i for i, name in enumerate(LLAMA3_SPECIALS)}
    (out / "tiktoken.json").write_text(json.dumps({"pattern": "llama3", "special_tokens": specials},
                                                  indent=1) + "\n")
