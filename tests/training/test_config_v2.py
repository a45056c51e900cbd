"""config.json format_version 2: validation names the field path; version 1 reads as documented."""
import copy
import json
import re

import pytest

from training.config import (FFN, Attention, Config, ConfigError, LMHead, Memory, ModelConfig, Norm, Positions,
                             load)
from training.families import FAMILIES


DELETE = object()


def good() -> dict:
    """A valid version 2 config using most fields (xlm: two memories, learned positions)."""
    return FAMILIES["xlm"][0].to_json()


def with_change(path, value):
    d = copy.deepcopy(good())
    *parents, last = path
    target = d
    for p in parents:
        target = target[p]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return d


@pytest.mark.parametrize("path,value,field,words", [
    (("format_version",), 3, "format_version", "expected 1 or 2"),
    (("architecture",), "gpt", "architecture", "pkm-transformer"),
    (("dtype",), "float64", "dtype", "float64"),
    (("family",), "", "family", "non-empty"),
    (("vocab_size",), 0, "vocab_size", ">= 1"),
    (("eos_id",), 64, "eos_id", "vocab_size=64"),
    (("norm", "kind"), "batchnorm", "norm.kind", "batchnorm"),
    (("norm", "eps"), 0.0, "norm.eps", "> 0"),
    (("norm",), {"kind": "rmsnorm", "eps": 1e-5, "bias": True}, "norm.bias", "rmsnorm has no bias"),
    (("block",), "sandwich", "block", "pre_norm"),
    (("positions",), {"kind": "rope"}, "positions.theta", "required"),
    (("positions",), {"kind": "none", "theta": 1.0}, "positions.theta", "not allowed"),
    (("positions", "max_positions"), 32, "positions.max_positions", "max_seq_len=64"),
    (("positions", "kind"), "alibi", "positions.kind", "alibi"),
    (("attention", "n_kv_heads"), 3, "attention.n_kv_heads", "divisor of n_heads=4"),
    (("ffn", "kind"), "geglu", "ffn.kind", "geglu"),
    (("ffn", "hidden"), 0, "ffn.hidden", ">= 1"),
    (("memories", 1, "placement"), "before", "memories[1].placement", "before"),
    (("memories", 1, "layer"), 2, "memories[1].layer", "n_layers=2"),
    (("memories", 0, "knn"), 9, "memories[0].knn", "n_keys=8"),
    (("memories", 0, "k_dim"), 7, "memories[0].k_dim", "even"),
    (("memories", 0, "v_dim"), 16, "memories[0].v_dim", "d_model=32"),
    (("memories", 0, "query_norm"), "rmsnorm", "memories[0].query_norm", "rmsnorm"),
    (("memories", 0, "output"), "gated", "memories[0].output", "gated"),
    (("memories", 0, "output_bias"), True, "memories[0].output_bias", "not allowed"),
    (("memories", 0, "query_norm_eps"), 1e-6, "memories[0].query_norm_eps", "only when query_norm is 'layernorm'"),
    (("memories", 0, "values_dtype"), "int8", "memories[0].values_dtype", "int8"),
    (("memories", 1), dict(good()["memories"][0], placement="parallel"), "memories[1].placement",
     "block 0 already has a replace/parallel memory (memories[0])"),
    (("memories", 1, "placement"), "replace", "memories[1].placement", None),  # layer 1 replace: allowed
])
def test_invalid_fields_are_named(path, value, field, words):
    d = with_change(path, value)
    if words is None:
        Config.from_json(d)
        return
    with pytest.raises(ConfigError) as e:
        Config.from_json(d)
    assert e.value.path == field
    assert f"config: {field}: " in str(e.value) and words in str(e.value)


@pytest.mark.parametrize("path,field", [
    (("memories", 0, "heads"), "memories[0].heads"),
    (("attention", "bias"), "attention.bias"),
    (("lm_head", "tied"), "lm_head.tied"),
    (("n_layers",), "n_layers"),
])
def test_missing_fields_are_named(path, field):
    with pytest.raises(ConfigError, match=re.escape(f"{field}: missing")):
        Config.from_json(with_change(path, DELETE))


def test_defaulted_fields_may_be_omitted():
    d = good()
    for name in ("embedding_norm", "final_norm"):
        del d[name]
    cfg = Config.from_json(d)
    assert cfg.embedding_norm is False and cfg.final_norm is True
    assert cfg.memories[0].values_name == "layers.0.pkm.values"
    assert cfg.memories[1].values_name == "layers.1.pkm_after.values"
    assert cfg.values_dtype(cfg.memories[0]) == cfg.dtype


@pytest.mark.parametrize("path,value,field", [
    (("memories", 0, "topk"), 3, "memories[0].topk"),
    (("attention", "rope_theta"), 1.0, "attention.rope_theta"),
    (("pkm_layers",), [1], "pkm_layers"),
])
def test_unknown_fields_are_named(path, value, field):
    with pytest.raises(ConfigError, match="unknown field") as e:
        Config.from_json(with_change(path, value))
    assert e.value.path == field


@pytest.mark.parametrize("path,value,field,expected", [
    (("d_model",), 32.0, "d_model", "int"),
    (("attention", "bias"), 1, "attention.bias", "bool"),
    (("memories", 0, "heads"), True, "memories[0].heads", "int"),
    (("memories",), {}, "memories", "a list"),
    (("norm",), "layernorm", "norm", "an object"),
])
def test_wrong_types_are_named(path, value, field, expected):
    with pytest.raises(ConfigError, match=expected) as e:
        Config.from_json(with_change(path, value))
    assert e.value.path == field


def test_shared_tables_must_agree():
    d = with_change(("memories", 0, "values"), "t")
    d["memories"][1]["values"] = "t"
    Config.from_json(d)
    d["memories"][1]["n_keys"] = 6
    d["memories"][1]["knn"] = 4
    with pytest.raises(ConfigError, match="shares 't' with memories\\[0\\]") as e:
        Config.from_json(d)
    assert e.value.path == "memories[1].values"


def test_query_norm_eps_defaults_to_1e_5():
    d = with_change(("memories", 0, "query_norm"), "layernorm")
    assert Config.from_json(d).memories[0].query_norm_epsilon == 1e-5
    d["memories"][0]["query_norm_eps"] = 1e-6
    cfg = Config.from_json(d)
    assert cfg.memories[0].query_norm_epsilon == 1e-6 and cfg.to_json()["memories"][0]["query_norm_eps"] == 1e-6
    d["memories"][0]["query_norm_eps"] = 0.0
    with pytest.raises(ConfigError, match="> 0"):
        Config.from_json(d)


def test_memory_plus_needs_output_bias():
    d = with_change(("memories", 0, "output"), "memory_plus")
    with pytest.raises(ConfigError, match="required when output is 'memory_plus'") as e:
        Config.from_json(d)
    assert e.value.path == "memories[0].output_bias"
    d["memories"][0]["output_bias"] = False
    assert Config.from_json(d).memories[0].output_bias is False


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_json_round_trip(name):
    cfg = FAMILIES[name][0]
    text = json.dumps(cfg.to_json())
    assert Config.from_json(json.loads(text)).to_json() == cfg.to_json()


def test_version_1_reads_as_the_documented_version_2(root):
    """docs/model-format.md, "Version 1", written out field by field for the bundled model."""
    cfg = load(root / "models/pkm-small/config.json")
    assert cfg == Config(
        vocab_size=8000, d_model=256, n_layers=6, max_seq_len=256, bos_id=1, eos_id=2, dtype="float16",
        family="pkmserve", norm=Norm("layernorm", 1e-5, True), block="pre_norm", embedding_norm=False,
        final_norm=True, positions=Positions("rope", theta=10000.0), attention=Attention(8, 8, 32, True),
        ffn=FFN("gelu", 1024, True), lm_head=LMHead(tied=True, bias=False),
        memories=[Memory(layer=4, placement="replace", heads=4, knn=32, n_keys=128, k_dim=128, v_dim=256,
                         query_bias=True, query_norm="none", output="sum")])
    assert cfg.memories[0].values_name == "layers.4.pkm.values"


def test_version_1_parallel_untied_reads_as_version_2():
    v1 = ModelConfig(vocab_size=64, d_model=32, n_layers=3, n_heads=4, d_ff=48, max_seq_len=64, rope_theta=500.0,
                     norm_eps=1e-6, tie_embeddings=False, pkm_layers=[0, 2], pkm_mode="parallel", pkm_heads=2,
                     pkm_knn=4, pkm_n_keys=8, pkm_k_dim=8, pkm_v_dim=32)
    cfg = Config.from_json(v1.to_json("bfloat16"))
    assert (cfg.dtype, cfg.norm.eps, cfg.positions.theta, cfg.ffn.hidden) == ("bfloat16", 1e-6, 500.0, 48)
    assert cfg.lm_head == LMHead(tied=False, bias=False)
    assert [(m.layer, m.placement, m.output, m.values_name) for m in cfg.memories] == [
        (0, "parallel", "sum", "layers.0.pkm.values"), (2, "parallel", "sum", "layers.2.pkm.values")]
    # Written back, it is a version 2 config.json that reads as the same model.
    assert Config.from_json(cfg.to_json()) == cfg
