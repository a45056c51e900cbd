"""Loads an exported model directory (docs/model-format.md, version 1 or 2) into the reference model.

Weights stored in fp16/bf16 are widened to fp32, so the reference computes in fp32 on exactly
the values the C++ engine reads. A value table with a values_dtype of its own keeps that type
(the model holds it so, and widens it in the lookup).
"""
import json
from pathlib import Path

import torch

from training import safetensors_io
from training.config import Config
from training.model import TORCH_DTYPES, PKMTransformer

DTYPE_NAMES = TORCH_DTYPES


def stored_dtype(cfg: Config, name: str) -> torch.dtype:
    """The torch dtype tensor `name` is stored in: its table's values_dtype, else the model's dtype."""
    tables = {m.values_name: cfg.values_dtype(m) for m in cfg.memories}
    return TORCH_DTYPES[tables.get(name, cfg.dtype)]


def load_model(model_dir: Path) -> PKMTransformer:
    model_dir = Path(model_dir)
    try:
        cfg = Config.from_json(json.loads((model_dir / "config.json").read_text()))
    except ValueError as e:  # ConfigError, or a version 1 field error
        raise ValueError(f"{model_dir}/config.json: {e}") from e
    tensors = safetensors_io.load(model_dir / "model.safetensors")
    model = PKMTransformer(cfg)
    expected = model.named_tensors()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{model_dir}/model.safetensors: missing tensors {missing}, unexpected tensors {unexpected}")
    for name, t in tensors.items():
        dtype = stored_dtype(cfg, name)
        if tuple(t.shape) != tuple(expected[name].shape) or t.dtype != dtype:
            raise ValueError(f"{model_dir}/model.safetensors: tensor {name!r} is {t.dtype} {list(t.shape)}, "
                             f"expected {dtype} {list(expected[name].shape)}")
    model.load_named_tensors({k: v.to(expected[k].dtype) for k, v in tensors.items()})
    return model.eval()
