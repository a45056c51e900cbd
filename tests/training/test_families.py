"""The tiny family models (training/families.py) and their committed goldens in tests/data/families."""
import json

import pytest
import torch

from training import safetensors_io
from training.checkpoint import load_model, stored_dtype
from training.export import export
from training.families import FAMILIES, MAX_SEQ_LEN, SEQ_LENGTHS, build, golden_tensors, options, write
from training.train import param_groups, train_step

NAMES = sorted(FAMILIES)

# Every value of every format 2 option (docs/model-format.md), as families.options() spells it.
EVERY_OPTION = {
    "dtype=float32", "dtype=float16", "dtype=bfloat16",
    "norm.kind=layernorm", "norm.kind=rmsnorm", "norm.bias=true", "norm.bias=false",
    "block=pre_norm", "block=post_norm", "embedding_norm=true", "embedding_norm=false",
    "final_norm=true", "final_norm=false",
    "positions.kind=rope", "positions.kind=learned", "positions.kind=none",
    "attention=mha", "attention=gqa", "attention=mqa", "attention.head_dim=other",
    "attention.bias=true", "attention.bias=false",
    "ffn.kind=gelu", "ffn.kind=gelu_tanh", "ffn.kind=relu", "ffn.kind=swiglu", "ffn.bias=true", "ffn.bias=false",
    "lm_head.tied=true", "lm_head.tied=false", "lm_head.bias=true", "lm_head.bias=false",
    "memories=none", "memory.placement=replace", "memory.placement=parallel", "memory.placement=after",
    "memory.two_in_one_block", "memory.query_bias=true", "memory.query_bias=false",
    "memory.query_norm=none", "memory.query_norm=layernorm", "memory.output=sum", "memory.output=memory_plus",
    "memory.output_bias=true", "memory.output_bias=false", "memory.values=own", "memory.values=shared",
    "memory.values_dtype=model", "memory.values_dtype=own", "memory.v_dim=other",
}


def assert_goldens_equal(new, old):
    """Ids and tokens exactly; floats to 1e-5, the summation-order noise between CPUs (the weights
    themselves are compared byte for byte)."""
    assert sorted(new) == sorted(old)
    for key in old:
        assert new[key].dtype == old[key].dtype, key
        if old[key].dtype == torch.int32:
            assert torch.equal(new[key], old[key]), key
        else:
            torch.testing.assert_close(new[key], old[key], rtol=1e-5, atol=1e-5, msg=key)


@pytest.fixture(scope="module")
def families_dir(request):
    return request.config.rootpath / "tests/data/families"


def test_families_cover_every_option():
    covered = set().union(*(options(FAMILIES[n][0]) for n in NAMES))
    assert EVERY_OPTION - covered == set()
    assert len(NAMES) >= 8


def test_families_are_tiny_and_the_folder_small(families_dir):
    for name in NAMES:
        cfg = FAMILIES[name][0]
        assert cfg.vocab_size <= 128 and cfg.d_model <= 64 and cfg.n_layers <= 3 and cfg.max_seq_len == 64
        assert all(m.n_keys <= 16 for m in cfg.memories)
        assert sorted(p.name for p in (families_dir / name).iterdir()) == [
            "config.json", "golden.json", "golden.safetensors", "model.safetensors"]
    total = sum(p.stat().st_size for p in families_dir.rglob("*") if p.is_file())
    assert total < 1_200_000, f"tests/data/families is {total} bytes"
    assert sorted(p.name for p in families_dir.iterdir()) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_committed_files_equal_a_fresh_run(name, families_dir, tmp_path):
    """Regenerate with: /usr/bin/python3 -m training.families --out tests/data/families"""
    fresh = write(name, tmp_path)
    committed = families_dir / name
    for f in ("config.json", "model.safetensors"):
        assert (fresh / f).read_bytes() == (committed / f).read_bytes(), f"{name}/{f} differs from a fresh run"
    new, old = (safetensors_io.load(d / "golden.safetensors") for d in (fresh, committed))
    assert_goldens_equal(new, old)
    info_new, info_old = (json.loads((d / "golden.json").read_text()) for d in (fresh, committed))
    info_new.pop("torch"), info_old.pop("torch")
    assert info_new == info_old


@pytest.mark.parametrize("name", NAMES)
def test_goldens_describe_every_memory(name, families_dir):
    info = json.loads((families_dir / name / "golden.json").read_text())
    golden = safetensors_io.load(families_dir / name / "golden.safetensors")
    cfg = FAMILIES[name][0]
    assert info["model"] == name and info["options"] == options(cfg)
    assert [s["tokens"] for s in info["sequences"]] == list(SEQ_LENGTHS)
    for i, length in enumerate(SEQ_LENGTHS):
        assert golden[f"seq{i}.tokens"].dtype == torch.int32 and golden[f"seq{i}.tokens"].shape == (length,)
        assert golden[f"seq{i}.logits"].shape == (length, cfg.vocab_size)
        for m in cfg.memories:
            ids = golden[f"seq{i}.layer{m.layer}.{m.placement}.pkm_ids"]
            w = golden[f"seq{i}.layer{m.layer}.{m.placement}.pkm_weights"]
            assert ids.shape == w.shape == (length, m.heads, m.knn) and ids.dtype == torch.int32
            assert ids.min() >= 0 and ids.max() < m.n_keys ** 2
            torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))
            assert (w[..., :-1] >= w[..., 1:]).all(), "weights must be ordered best first"
    assert len(golden) == 3 * (2 + 2 * len(cfg.memories))


@pytest.mark.parametrize("name", NAMES)
@torch.no_grad()
def test_export_load_round_trip_reproduces_logits(name, tmp_path):
    model = build(name)
    tokens = torch.randint(0, model.cfg.vocab_size, (2, 23))
    export(model, None, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    # The exported model is the built one with its tensors rounded to their storage types.
    rounded = {k: v.to(stored_dtype(model.cfg, k)).to(v.dtype) for k, v in model.named_tensors().items()}
    model.load_named_tensors(rounded)
    torch.testing.assert_close(loaded(tokens), model(tokens), rtol=1e-5, atol=1e-5)
    # Exporting what was loaded writes the same bytes.
    export(loaded, None, tmp_path / "again")
    for f in ("config.json", "model.safetensors"):
        assert (tmp_path / "m" / f).read_bytes() == (tmp_path / "again" / f).read_bytes()


@pytest.mark.parametrize("name", NAMES)
@torch.no_grad()
def test_incremental_decoding_matches_full_forward(name):
    model = build(name)
    tokens = torch.randint(0, model.cfg.vocab_size, (2, 30))
    full_lookups, step_lookups = [], []
    full = model(tokens, lookups=full_lookups)
    cache = model.new_cache()
    parts = [model(tokens[:, :7], cache=cache, lookups=step_lookups)]
    for t in range(7, 30):
        parts.append(model(tokens[:, t:t + 1], cache=cache))
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=1e-5, atol=1e-5)
    for (ids, _), (prefix_ids, _) in zip(full_lookups, step_lookups):
        assert torch.equal(ids[:, :7], prefix_ids)


@pytest.mark.parametrize("name", NAMES)
def test_each_family_trains(name):
    """A few dozen steps of train.py's optimiser (AdamW, its parameter groups, clipping) on one batch."""
    torch.manual_seed(0)
    model = build(name).train()
    opt = torch.optim.AdamW(param_groups(model, 3e-3, 1e-2, 0.1), betas=(0.9, 0.95))
    x = torch.randint(0, model.cfg.vocab_size, (4, 17))
    tables = {n: t.detach().clone() for n, t in model.value_tables().items()}
    losses = []
    for _ in range(30):
        losses.append(train_step(model, opt, x).item())
    assert losses[-1] < 0.5 * losses[0], losses
    for n, t in model.value_tables().items():
        assert t.dtype == tables[n].dtype and not torch.equal(t.detach(), tables[n]), f"table {n} did not train"


def test_committed_goldens_are_the_loaded_models_output(families_dir):
    """Independent of families.write: the committed model files alone reproduce the goldens."""
    for name in NAMES:
        model = load_model(families_dir / name)
        assert model.cfg.max_seq_len == MAX_SEQ_LEN
        assert_goldens_equal(golden_tensors(model), safetensors_io.load(families_dir / name / "golden.safetensors"))
