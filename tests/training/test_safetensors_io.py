import struct

import pytest
import torch

from training import safetensors_io


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.int32, torch.int64])
def test_round_trip(tmp_path, dtype):
    tensors = {"b": (torch.randn(3, 5) * 100).to(dtype), "a": torch.arange(7).to(dtype), "s": torch.ones(()).to(dtype)}
    safetensors_io.save(tensors, tmp_path / "t.safetensors", {"k": "v"})
    back = safetensors_io.load(tmp_path / "t.safetensors")
    assert set(back) == set(tensors)
    for name, t in tensors.items():
        assert back[name].dtype == dtype and torch.equal(back[name], t)
    assert safetensors_io.metadata(tmp_path / "t.safetensors") == {"k": "v"}


def test_layout_is_aligned_and_dense(tmp_path):
    safetensors_io.save({"x": torch.zeros(3, dtype=torch.float16), "y": torch.zeros(2)}, tmp_path / "t.safetensors")
    raw = (tmp_path / "t.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert (8 + n) % 8 == 0
    assert len(raw) == 8 + n + 3 * 2 + 2 * 4


def test_truncated_file_is_refused(tmp_path):
    path = tmp_path / "t.safetensors"
    safetensors_io.save({"x": torch.zeros(16)}, path)
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(ValueError, match="bad data_offsets"):
        safetensors_io.load(path)


def test_header_past_end_is_refused(tmp_path):
    path = tmp_path / "t.safetensors"
    path.write_bytes(struct.pack("<Q", 1000) + b"{}")
    with pytest.raises(ValueError, match="runs past the end"):
        safetensors_io.load(path)
