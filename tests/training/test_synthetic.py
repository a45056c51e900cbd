"""The benchmarks' paper-scale models (training/synthetic.py): their full configs are the ones the
benchmarks claim, and their --tiny twins, same structure at small widths, run in the C++ engine
equal to the reference (tests/engine/test_families.cc's parity tests on them).

ctest runs the engine part as synthetic.EngineParity with --test-families set to the built binary;
a plain `pytest tests/training` skips that part when the binary has not been built.
"""
import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from training import families, safetensors_io, synthetic
from training.checkpoint import load_model


def structure(cfg):
    """What the tiny twin keeps: everything but the widths."""
    memories = [(m.layer, m.placement, m.heads, m.output, m.values_name, cfg.values_dtype(m)) for m in cfg.memories]
    a = cfg.attention
    return (cfg.family, cfg.n_layers, cfg.dtype, cfg.norm, cfg.block, cfg.embedding_norm, cfg.final_norm,
            cfg.positions.kind, a.n_kv_heads == a.n_heads, a.bias, cfg.ffn.kind, cfg.ffn.bias, cfg.lm_head, memories)


def test_paper_is_lample_et_al_2019():
    cfg = synthetic.config("paper")
    a, (m,) = cfg.attention, cfg.memories
    assert (cfg.d_model, cfg.n_layers, a.n_heads, a.head_dim, cfg.dtype) == (1024, 12, 16, 64, "float16")
    assert (m.layer, m.placement, m.n_keys, m.k_dim, m.heads, m.knn, m.v_dim) == (6, "replace", 512, 512, 4, 32, 1024)


def test_memplus_shares_one_bf16_table_over_three_llama_layers():
    cfg = synthetic.config("memplus")
    assert (cfg.family, cfg.d_model, cfg.n_layers, cfg.ffn.kind, cfg.norm.kind) == ("llama", 1024, 12, "swiglu", "rmsnorm")
    assert [m.layer for m in cfg.memories] == [3, 6, 9]
    assert {m.values_name for m in cfg.memories} == {"memory.values"}
    assert {(m.n_keys, m.v_dim, m.output, cfg.values_dtype(m)) for m in cfg.memories} == \
        {(1024, 1024, "memory_plus", "bfloat16")}


@pytest.mark.parametrize("name", sorted(synthetic.MODELS))
def test_tiny_twin_keeps_the_structure(name):
    full, tiny = synthetic.config(name), synthetic.config(name, tiny=True)
    assert structure(tiny) == structure(full)
    assert tiny.d_model < full.d_model


def test_files_are_the_same_every_run(tmp_path):
    a = synthetic.write("memplus", tmp_path / "a", tiny=True)
    b = synthetic.write("memplus", tmp_path / "b", tiny=True)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    tensors = safetensors_io.load(a / "model.safetensors")
    assert "memory.values" in tensors and not any(".pkm.values" in n for n in tensors)  # stored once


def test_engine_runs_the_tiny_twins_as_the_reference(request, tmp_path, root):
    binary = Path(request.config.getoption("--test-families"))
    if not binary.exists():
        pytest.skip(f"{binary} not built: this is ctest's synthetic.EngineParity")
    for name in synthetic.MODELS:
        model_dir = synthetic.write(name, tmp_path, tiny=True)
        safetensors_io.save(families.golden_tensors(load_model(model_dir)), model_dir / "golden.safetensors")
    run = subprocess.run([str(binary.resolve())], cwd=root, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PKM_FAMILIES_DIR": str(tmp_path)})
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    for name in synthetic.MODELS:  # each model ran (a directory the binary skipped would pass silently)
        assert f"{name} seq2:" in run.stdout, name
