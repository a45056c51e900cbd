"""Exports a model to a model directory (docs/model-format.md, format_version 2).

Folds each memory's query BatchNorm into its query Linear, casts every tensor to the storage
dtype (value tables to their values_dtype), writes config.json, model.safetensors (each value
table once, under its name) and a copy of the tokenizer when there is one.

Usage: /usr/bin/python3 -m training.export --checkpoint data/train/best.pt \
           --tokenizer data/tokenizer.model --out models/pkm-small --dtype float16
"""
import argparse
import dataclasses
import json
import shutil
from pathlib import Path
from typing import Optional

import torch

from training import safetensors_io
from training.checkpoint import DTYPE_NAMES, stored_dtype
from training.config import QUERY_BATCHNORM, Config, ModelConfig, set_query_batchnorm
from training.model import PKMTransformer


def model_from_checkpoint(path: Path) -> PKMTransformer:
    """best.pt of train.py: its "config" is a version 2 config.json or version 1 ModelConfig fields."""
    ckpt = torch.load(path, map_location="cpu")
    raw = dict(ckpt["config"])
    if "format_version" in raw:
        query_batchnorm = raw.pop(QUERY_BATCHNORM, False)
        cfg = Config.from_json(raw)
        set_query_batchnorm(cfg, query_batchnorm)
    else:
        cfg = ModelConfig(**raw).to_v2("float16")  # what export wrote for these recipes by default
    if "seq_len" in ckpt.get("args", {}):
        # The context the model was trained on (replace() checks it against learned positions).
        cfg = dataclasses.replace(cfg, max_seq_len=int(ckpt["args"]["seq_len"]))
    model = PKMTransformer(cfg)
    model.load_state_dict(ckpt["model"])
    return model.eval()


def export(model: PKMTransformer, tokenizer: Optional[Path], out: Path, dtype: Optional[str] = None) -> None:
    """dtype, when given, replaces the config's storage dtype (and that of tables following it)."""
    model.fold_batchnorm()
    cfg = model.cfg
    if dtype is not None:
        # Tables without a values_dtype of their own follow the model's dtype.
        memories = [dataclasses.replace(m, values_dtype=m.values_dtype if m.values_dtype != cfg.dtype else None)
                    for m in cfg.memories]
        cfg = dataclasses.replace(cfg, dtype=dtype, memories=memories)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.to(stored_dtype(cfg, k)) for k, v in model.named_tensors().items()}
    safetensors_io.save(tensors, out / "model.safetensors",
                        {"format": "pt", "pkmserve_format_version": str(cfg.to_json()["format_version"])})
    (out / "config.json").write_text(json.dumps(cfg.to_json(), indent=2) + "\n")
    if tokenizer is not None:
        shutil.copyfile(tokenizer, out / "tokenizer.model")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=Path("data/train/best.pt"))
    ap.add_argument("--tokenizer", type=Path, default=Path("data/tokenizer.model"))
    ap.add_argument("--out", type=Path, default=Path("models/pkm-small"))
    ap.add_argument("--dtype", choices=sorted(DTYPE_NAMES), help="storage type (default: the config's)")
    args = ap.parse_args()
    export(model_from_checkpoint(args.checkpoint), args.tokenizer, args.out, args.dtype)
    size = sum(f.stat().st_size for f in args.out.iterdir())
    print(f"export: {args.out} ({size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
