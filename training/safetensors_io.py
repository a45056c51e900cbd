"""Reads and writes safetensors files by the format's spec (no Debian package provides it).

Layout: u64 little-endian header size N, N bytes of JSON header, then tensor data.
See docs/model-format.md#safetensors.
"""
import json
import struct
from pathlib import Path
from typing import Dict

import numpy as np
import torch

DTYPES = {  # safetensors name -> (torch dtype, bytes)
    "F32": (torch.float32, 4), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2),
    "I64": (torch.int64, 8), "I32": (torch.int32, 4), "I16": (torch.int16, 2), "I8": (torch.int8, 1),
    "U8": (torch.uint8, 1), "BOOL": (torch.bool, 1),
}
TORCH_TO_NAME = {v[0]: k for k, v in DTYPES.items()}


def save(tensors: Dict[str, torch.Tensor], path: Path, metadata: Dict[str, str] = None) -> None:
    """Writes tensor by tensor, so a file of many GiB never sits in memory a second time."""
    header, offset = {}, 0
    for name in sorted(tensors):
        t = tensors[name]
        if t.dtype not in TORCH_TO_NAME:
            raise ValueError(f"safetensors: tensor {name!r} has unsupported dtype {t.dtype}")
        size = t.numel() * DTYPES[TORCH_TO_NAME[t.dtype]][1]
        header[name] = {"dtype": TORCH_TO_NAME[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)  # data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name in sorted(tensors):
            t = tensors[name].detach().contiguous().cpu()
            # bf16 has no numpy type: move its bytes as int16.
            f.write(memoryview((t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy()).cast("B"))


def load(path: Path) -> Dict[str, torch.Tensor]:
    """Returns every tensor (a copy, so the file may be closed). Validates offsets and sizes."""
    data = Path(path).read_bytes()
    if len(data) < 8:
        raise ValueError(f"{path}: {len(data)} bytes, too short for a safetensors header")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError(f"{path}: header length {n} runs past the end of the file ({len(data)} bytes)")
    header = json.loads(data[8:8 + n])
    body = memoryview(data)[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, size = DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        count = int(np.prod(info["shape"])) if info["shape"] else 1
        if not (0 <= begin <= end <= len(body)) or end - begin != count * size:
            raise ValueError(f"{path}: tensor {name!r} has bad data_offsets {info['data_offsets']}")
        raw = bytearray(body[begin:end])
        if dtype == torch.bfloat16:
            t = torch.frombuffer(raw, dtype=torch.int16).view(torch.bfloat16) if count else torch.empty(0, dtype=dtype)
        else:
            t = torch.frombuffer(raw, dtype=dtype) if count else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(info["shape"])
    return out


def metadata(path: Path) -> Dict[str, str]:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n)).get("__metadata__", {})
