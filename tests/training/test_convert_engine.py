"""The C++ engine on every converted test model: tests/engine/test_families.cc's parity tests
(logits within 1e-4, identical slot ids, chunked prefill and batching invariant) run on a
directory of the converted models, each with goldens from its SOURCE forward in fp32.

ctest runs it as convert.EngineParity with --test-families set to the built binary; a plain
`pytest tests/training` skips it when the binary has not been built.
"""
import os
import subprocess
from pathlib import Path

import pytest
import torch

import convert_sources as cs
from training import safetensors_io


@pytest.fixture(scope="module")
def test_families(request):
    path = Path(request.config.getoption("--test-families"))
    if not path.exists():
        pytest.skip(f"{path} not built: the C++ parity run is ctest's convert.EngineParity "
                    f"(cmake --build build --target test_families, or pass --test-families)")
    return path.resolve()


def write_golden(model_dir: Path, forward, vocab: int, memory_keys):
    """golden.safetensors in tests/data/families' layout: tokens, the source's logits, each memory's ids."""
    out = {}
    for i, tokens in enumerate(cs.sequences(vocab)):
        ids = []
        with torch.no_grad():
            logits = forward(tokens, ids)
        out[f"seq{i}.tokens"] = tokens.to(torch.int32)
        out[f"seq{i}.logits"] = logits.float()
        assert len(ids) == len(memory_keys)
        for key, slots in zip(memory_keys, ids):
            out[f"seq{i}.{key}.pkm_ids"] = slots.to(torch.int32)
    safetensors_io.save(out, model_dir / "golden.safetensors", {"model": model_dir.name})


def test_engine_matches_each_source_forward(test_families, tmp_path, root):
    converted = cs.build_all(tmp_path)
    for name, (model_dir, forward, model, _) in converted.items():
        keys = [f"layer{layer}.{placement}" for layer, placement, _ in model.memories()]
        write_golden(model_dir, forward, model.cfg.vocab_size, keys)
    families = tmp_path / "out"
    assert sorted(p.name for p in families.iterdir()) == sorted(converted)
    run = subprocess.run([str(test_families)], cwd=root, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PKM_FAMILIES_DIR": str(families)})
    print(run.stdout[-6000:])
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    for name in converted:  # each model ran (a directory the binary skipped would pass silently)
        assert f"{name} seq2:" in run.stdout, name
