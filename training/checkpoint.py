"""Loads an exported model directory (docs/model-format.md) into the reference model.

Weights stored in fp16/bf16 are widened to fp32, so the reference computes in fp32 on exactly
the values the C++ engine reads.
"""
import json
from pathlib import Path

import torch

from training import safetensors_io
from training.config import ModelConfig
from training.model import PKMTransformer

DTYPE_NAMES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def load_model(model_dir: Path) -> PKMTransformer:
    model_dir = Path(model_dir)
    raw = json.loads((model_dir / "config.json").read_text())
    cfg = ModelConfig.from_json(raw)
    dtype = DTYPE_NAMES.get(raw["dtype"])
    if dtype is None:
        raise ValueError(f"{model_dir}/config.json: dtype {raw['dtype']!r}, expected one of {sorted(DTYPE_NAMES)}")
    tensors = safetensors_io.load(model_dir / "model.safetensors")
    model = PKMTransformer(cfg)
    expected = model.state_dict()
    buffers = {k for k, _ in model.named_buffers()}
    missing = sorted(set(expected) - set(tensors) - buffers)
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{model_dir}/model.safetensors: missing tensors {missing}, unexpected tensors {unexpected}")
    for name, t in tensors.items():
        if tuple(t.shape) != tuple(expected[name].shape) or t.dtype != dtype:
            raise ValueError(f"{model_dir}/model.safetensors: tensor {name!r} is {t.dtype} {list(t.shape)}, "
                             f"expected {dtype} {list(expected[name].shape)}")
    model.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=False)
    return model.eval()
