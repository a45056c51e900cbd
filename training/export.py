"""Exports a training checkpoint to a model directory (docs/model-format.md).

Folds each memory's query BatchNorm into its query Linear, casts to --dtype, writes
config.json, model.safetensors and a copy of the tokenizer.

Usage: /usr/bin/python3 -m training.export --checkpoint data/train/best.pt \
           --tokenizer data/tokenizer.model --out models/pkm-small --dtype float16
"""
import argparse
import json
import shutil
from pathlib import Path

import torch

from training import safetensors_io
from training.checkpoint import DTYPE_NAMES
from training.config import FORMAT_VERSION, ModelConfig
from training.model import PKMTransformer


def model_from_checkpoint(path: Path) -> PKMTransformer:
    ckpt = torch.load(path, map_location="cpu")
    cfg = ModelConfig(**ckpt["config"])
    if "seq_len" in ckpt.get("args", {}):
        cfg.max_seq_len = int(ckpt["args"]["seq_len"])  # the context the model was trained on
    model = PKMTransformer(cfg)
    model.load_state_dict(ckpt["model"])
    return model.eval()


def export(model: PKMTransformer, tokenizer: Path, out: Path, dtype: str) -> None:
    for _, pkm in model.pkm_modules():
        pkm.fold_batchnorm()
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.to(DTYPE_NAMES[dtype]) for k, v in model.state_dict().items()}
    safetensors_io.save(tensors, out / "model.safetensors",
                        {"format": "pt", "pkmserve_format_version": str(FORMAT_VERSION)})
    (out / "config.json").write_text(json.dumps(model.cfg.to_json(dtype), indent=2) + "\n")
    shutil.copyfile(tokenizer, out / "tokenizer.model")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=Path("data/train/best.pt"))
    ap.add_argument("--tokenizer", type=Path, default=Path("data/tokenizer.model"))
    ap.add_argument("--out", type=Path, default=Path("models/pkm-small"))
    ap.add_argument("--dtype", choices=sorted(DTYPE_NAMES), default="float16")
    args = ap.parse_args()
    export(model_from_checkpoint(args.checkpoint), args.tokenizer, args.out, args.dtype)
    size = sum(f.stat().st_size for f in args.out.iterdir())
    print(f"export: {args.out} ({size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
