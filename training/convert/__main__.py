"""python3 -m training.convert {xlm|lingua|lucidrains} SRC --out DIR [--tokenizer FILE] [...]"""
import argparse
import sys
from pathlib import Path

import torch

from training.convert import lingua, lucidrains, xlm
from training.convert.common import Refused
from training.convert.tokenizers import default_bos_eos, tokenizer_kind
from training.convert.writer import write

SOURCES = {"xlm": xlm, "lingua": lingua, "lucidrains": lucidrains}


def parse(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m training.convert", description=__doc__)
    sub = ap.add_subparsers(dest="source", required=True)
    for name, module in SOURCES.items():
        p = sub.add_parser(name, help=module.__doc__.splitlines()[0])
        p.add_argument("src", type=Path)
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--tokenizer", type=Path, help="a SentencePiece model, a tiktoken ranks file, or (xlm) the "
                                                          "fastBPE codes the model was trained with")
        module.add_arguments(p)
    return ap.parse_args(argv)


def run(argv=None, log=print):
    """Converts per argv; returns the reference model written. Raises Refused or ValueError."""
    args = vars(parse(argv))
    module = SOURCES[args.pop("source")]
    src, out, tokenizer = args.pop("src"), args.pop("out"), args.pop("tokenizer")
    if tokenizer is not None and "bos_id" in args:
        implied = default_bos_eos(tokenizer, tokenizer_kind(tokenizer))
        for key, value in zip(("bos_id", "eos_id"), implied or ()):
            if args[key] is None:
                args[key] = value
    with torch.no_grad():
        cfg, mapping = module.convert(src, **args)
        return write(cfg, mapping, out, tokenizer, log)


def main():
    torch.set_num_threads(2)
    try:
        run()
    except Refused as e:
        print(f"convert: refused: {e}", file=sys.stderr)
        sys.exit(2)
    except ValueError as e:
        print(f"convert: error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
