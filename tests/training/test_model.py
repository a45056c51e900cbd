"""Properties of the reference model: causality, RoPE, export round trip, config checks."""
import dataclasses
import json

import pytest
import torch

from training.checkpoint import load_model
from training.config import ModelConfig
from training.export import export
from training.model import PKMTransformer, apply_rope, rope_tables

TINY = dict(vocab_size=64, d_model=32, n_layers=3, n_heads=4, d_ff=48, max_seq_len=64,
            pkm_layers=[1], pkm_heads=2, pkm_knn=4, pkm_n_keys=8, pkm_k_dim=8, pkm_v_dim=32)


def tiny_model(seed=0, **overrides) -> PKMTransformer:
    torch.manual_seed(seed)
    return PKMTransformer(ModelConfig(**{**TINY, **overrides})).eval()


@torch.no_grad()
@pytest.mark.parametrize("mode", ["replace", "parallel"])
def test_logits_are_causal(mode):
    model = tiny_model(pkm_mode=mode)
    a = torch.randint(0, 64, (1, 12))
    b = a.clone()
    b[0, 7:] = (b[0, 7:] + 1) % 64
    la, lb = model(a), model(b)
    torch.testing.assert_close(la[0, :7], lb[0, :7], rtol=0, atol=0)
    assert not torch.allclose(la[0, 7:], lb[0, 7:])


@torch.no_grad()
def test_rope_scores_depend_only_on_relative_position():
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(pq, pk):
        cq, sq = rope_tables(16, torch.tensor([pq]), 10000.0)
        ck, sk = rope_tables(16, torch.tensor([pk]), 10000.0)
        return (apply_rope(q, cq, sq) * apply_rope(k, ck, sk)).sum().item()

    assert score(5, 2) == pytest.approx(score(105, 102), rel=1e-5)
    assert score(5, 2) != pytest.approx(score(5, 3), rel=1e-3)


@torch.no_grad()
def test_parallel_mode_has_ffn_and_memory():
    model = tiny_model(pkm_mode="parallel")
    assert model.layers[1].ffn is not None and model.layers[1].pkm is not None
    assert tiny_model().layers[1].ffn is None


@torch.no_grad()
def test_export_round_trip_fp32_is_exact(tmp_path):
    model = tiny_model(pkm_query_batchnorm=True)
    bn = model.layers[1].pkm.query_bn
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2.0)
    tokens = torch.randint(0, 64, (2, 10))
    expected = model(tokens)
    (tmp_path / "tok.model").write_bytes(b"not used here")
    export(model, tmp_path / "tok.model", tmp_path / "m", "float32")
    loaded = load_model(tmp_path / "m")
    torch.testing.assert_close(loaded(tokens), expected, rtol=1e-5, atol=1e-5)
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert "pkm_query_batchnorm" not in cfg and cfg["dtype"] == "float32"


@torch.no_grad()
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_export_half_precision_stays_close(tmp_path, dtype):
    model = tiny_model()
    tokens = torch.randint(0, 64, (1, 9))
    expected = model(tokens)
    (tmp_path / "tok.model").write_bytes(b"x")
    export(model, tmp_path / "tok.model", tmp_path / "m", dtype)
    got = load_model(tmp_path / "m")(tokens)
    tol = 1e-2 if dtype == "float16" else 5e-2
    assert (got - expected).abs().max().item() < tol * expected.abs().max().item()


def test_config_rejects_unknown_and_missing_fields():
    good = ModelConfig(**TINY).to_json("float16")
    with pytest.raises(ValueError, match="unknown field.*pkm_topk"):
        ModelConfig.from_json({**good, "pkm_topk": 3})
    bad = dict(good)
    del bad["pkm_knn"]
    with pytest.raises(ValueError, match="missing field.*pkm_knn"):
        ModelConfig.from_json(bad)
    with pytest.raises(ValueError, match="format_version 2 unsupported"):
        ModelConfig.from_json({**good, "format_version": 2})


@pytest.mark.parametrize("override,message", [
    (dict(pkm_mode="serial"), "pkm_mode"),
    (dict(pkm_layers=[3]), "pkm_layers"),
    (dict(pkm_knn=9), "pkm_knn"),
    (dict(pkm_v_dim=16), "pkm_v_dim"),
    (dict(n_heads=5), "n_heads"),
])
def test_config_invariants(override, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**{**TINY, **override})


def test_config_json_round_trip():
    cfg = ModelConfig(**TINY)
    back = ModelConfig.from_json(json.loads(json.dumps(cfg.to_json("bfloat16"))))
    assert dataclasses.asdict(back) == {**dataclasses.asdict(cfg), "pkm_query_batchnorm": False}


@torch.no_grad()
def test_incremental_decoding_matches_full_forward():
    model = tiny_model()
    tokens = torch.randint(0, 64, (2, 11))
    full = model(tokens)
    cache = model.new_cache()
    parts = [model(tokens[:, :4], cache=cache)] + [model(tokens[:, t:t + 1], cache=cache) for t in range(4, 11)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=1e-5, atol=1e-5)
