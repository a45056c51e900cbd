"""training/convert: each source's tiny checkpoint, converted, computes what the source computes.

The checkpoints and the source forwards are tests/training/convert_sources.py's, written from
each project's documented layout and maths; the converted directory is read back by
training/checkpoint.py into the reference model, whose logits must equal the source's.
"""
import json
import os
import subprocess
import sys

import pytest
import torch

import convert_sources as cs
from training import safetensors_io
from training.checkpoint import load_model

TOL = 1e-4


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    return cs.build_all(tmp_path_factory.mktemp("convert"))


@pytest.mark.parametrize("name", ["xlm", "lingua", "lucidrains_03", "lucidrains_03bn", "lucidrains_01"])
def test_reference_model_on_the_converted_directory_matches_the_source(converted, name):
    out, forward, _, _ = converted[name]
    model = load_model(out)
    for tokens in cs.sequences(model.cfg.vocab_size):
        want_ids, got = [], []
        with torch.no_grad():
            want = forward(tokens, want_ids)
            logits = model(tokens.unsqueeze(0), lookups=got)[0]
        scale = want.abs().max().item()
        assert (logits - want).abs().max().item() <= TOL * max(scale, 1.0), (name, tokens.shape[0])
        assert len(got) == len(want_ids) == len(model.cfg.memories)
        for (ids, _), source_ids in zip(got, want_ids):
            assert torch.equal(ids[0], source_ids), name


def test_xlm_maps_in_and_after_memories_and_folds_the_batchnorm(converted):
    out, _, _, lines = converted["xlm"]
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["family"], cfg["block"], cfg["embedding_norm"], cfg["final_norm"]) == ("xlm", "post_norm", True, False)
    assert cfg["norm"] == {"kind": "layernorm", "eps": 1e-12, "bias": True}
    assert cfg["positions"] == {"kind": "learned", "max_positions": 80}
    assert cfg["ffn"]["kind"] == "relu" and cfg["lm_head"] == {"tied": True, "bias": True}
    assert [(m["layer"], m["placement"], m["query_bias"]) for m in cfg["memories"]] == [(0, "replace", True), (1, "after", True)]
    names = set(safetensors_io.load(out / "model.safetensors"))
    assert "layers.0.ffn.w1.weight" not in names and "layers.1.pkm_after.keys" in names
    assert not any("running" in n or "query_bn" in n for n in names)
    assert any("BatchNorm folded" in line for line in lines)
    assert lines[-1].startswith("served as: family xlm")


def test_lingua_stores_one_bf16_table_shared_by_its_memories(converted):
    out, _, _, lines = converted["lingua"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["attention"] == {"n_heads": 4, "n_kv_heads": 2, "head_dim": 8, "bias": False}
    assert cfg["ffn"] == {"kind": "swiglu", "hidden": 96, "bias": False}  # 16·ceil(int(2·4·32/3)/16)
    assert {(m["values"], m["values_dtype"], m["output"]) for m in cfg["memories"]} == {("memory.values", "bfloat16", "memory_plus")}
    tensors = safetensors_io.load(out / "model.safetensors")
    assert tensors["memory.values"].dtype == torch.bfloat16
    assert not any(n.endswith("pkm.values") for n in tensors)
    assert any("rotate-half" in line for line in lines)
    assert any("shared by 2 memories" in line for line in lines)


def test_lingua_rope_rows_move_from_interleaved_to_rotate_half(tmp_path):
    step = tmp_path / "step"
    cs.lingua_checkpoint(step)
    cs.convert(["lingua", step, "--out", tmp_path / "out"])
    old = torch.load(step / "consolidated/consolidated.pth")["model"]
    new = safetensors_io.load(tmp_path / "out/model.safetensors")
    hd = 8
    for name, heads in (("wq", 4), ("wk", 2)):
        o, n = old[f"layers.1.attention.{name}.weight"], new[f"layers.1.attn.{name}.weight"]
        for h in range(heads):  # new row j <- old row 2j, new row j + hd/2 <- old row 2j + 1
            for j in range(hd // 2):
                assert torch.equal(n[h * hd + j], o[h * hd + 2 * j])
                assert torch.equal(n[h * hd + hd // 2 + j], o[h * hd + 2 * j + 1])
    assert torch.equal(new["layers.1.attn.wv.weight"], old["layers.1.attention.wv.weight"])


def test_lingua_tables_that_differ_are_kept_apart(tmp_path):
    step = tmp_path / "step"
    _, forward = cs.lingua_checkpoint(step, cs.lingua_params(mem_share_values=False))
    path = step / "consolidated" / "consolidated.pth"
    ckpt = torch.load(path)
    ckpt["model"]["layers.2.feed_forward.values.weight"] = ckpt["model"]["layers.2.feed_forward.values.weight"] * 2
    torch.save(ckpt, path)
    model, _ = cs.convert(["lingua", step, "--out", tmp_path / "out"])
    assert [m.values_name for m in model.cfg.memories] == ["layers.0.pkm.values", "layers.2.pkm.values"]


def test_lingua_reads_params_json_from_the_step_directory_only(tmp_path):
    step = tmp_path / "step"
    cs.lingua_checkpoint(step)
    (step / "params.json").rename(step / "consolidated" / "params.json")
    model, _ = cs.convert(["lingua", step, "--out", tmp_path / "out"])
    assert model.cfg.positions.theta == 10000.0 and model.cfg.max_seq_len == 64


@pytest.mark.parametrize("name,query_norm,query_bias", [("lucidrains_03", "layernorm", False),
                                                        ("lucidrains_03bn", "none", True),
                                                        ("lucidrains_01", "none", True)])
def test_lucidrains_versions_map_their_query_norm(converted, name, query_norm, query_bias):
    cfg = json.loads((converted[name][0] / "config.json").read_text())
    (mem,) = cfg["memories"]
    assert (mem["query_norm"], mem["query_bias"], mem["heads"], mem["n_keys"], mem["knn"]) == \
        (query_norm, query_bias, cs.PKM_HEADS, cs.PKM_KEYS, cs.PKM_TOPK)
    assert mem["k_dim"] == 2 * cs.PKM_DIM_HEAD


def test_lucidrains_needs_topk(tmp_path):
    src, _ = cs.lucidrains_checkpoint(tmp_path / "m.pt", tmp_path / "layout.json")
    with pytest.raises(ValueError, match="topk"):
        cs.convert(["lucidrains", src, "--layout", tmp_path / "layout.json", "--out", tmp_path / "out"])


def test_a_source_tensor_left_unmapped_is_refused(tmp_path):
    src, _ = cs.lucidrains_checkpoint(tmp_path / "m.pt", tmp_path / "layout.json")
    state = torch.load(src)
    state["layers.0.0.fn.rel_pos_bias"] = torch.zeros(3)
    torch.save(state, src)
    with pytest.raises(ValueError, match="rel_pos_bias"):
        cs.convert(["lucidrains", src, "--layout", tmp_path / "layout.json", "--topk", "4", "--out", tmp_path / "out"])


def test_command_line_writes_the_directory_and_the_tokenizer(tmp_path, root):
    step = tmp_path / "step"
    cs.lingua_checkpoint(step)
    tokenizer = root / "models/pkm-small/tokenizer.model"
    if not tokenizer.exists():
        pytest.skip(f"{tokenizer} not present: no SentencePiece file to copy")
    run = subprocess.run([sys.executable, "-m", "training.convert", "lingua", str(step), "--out", str(tmp_path / "out"),
                          "--tokenizer", str(tokenizer)], cwd=root, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(root)})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1].startswith("served as: family llama")
    assert (tmp_path / "out/tokenizer.model").read_bytes() == tokenizer.read_bytes()
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"config.json", "model.safetensors", "tokenizer.model"}


def test_xlm_writes_its_dictionary_and_takes_its_fastbpe_codes(tmp_path):
    words = cs.xlm_dictionary(64)
    words[20] = "whal@@"
    src, _ = cs.xlm_checkpoint(tmp_path / "xlm.pth", words=words)
    (tmp_path / "codes").write_text("w h 100\nwh a 90\n")
    cs.convert(["xlm", src, "--out", tmp_path / "out", "--tokenizer", tmp_path / "codes"])
    assert (tmp_path / "out/xlm_dictionary.txt").read_text().splitlines() == words
    assert (tmp_path / "out/xlm_bpe_codes.txt").read_text() == "w h 100\nwh a 90\n"
    cs.convert(["xlm", src, "--out", tmp_path / "plain"])  # no codes: the dictionary alone
    assert {p.name for p in (tmp_path / "plain").iterdir()} == {"config.json", "model.safetensors",
                                                               "xlm_dictionary.txt"}


@pytest.mark.parametrize("words,message", [
    (["<unk>"] + [f"w{i}" for i in range(62)], "63 ids"),
    (["<unk>", "two words"] + [f"w{i}" for i in range(62)], "holds whitespace"),
    (["<unk>", "w1"] + [f"w{i}" for i in range(62)], "names a word twice"),
    ([f"w{i}" for i in range(64)], "no <unk>"),
])
def test_xlm_dictionary_that_does_not_fit_is_refused(tmp_path, words, message):
    src, _ = cs.xlm_checkpoint(tmp_path / "xlm.pth", words=cs.xlm_dictionary(64))
    ckpt = torch.load(src)
    ckpt["dico_id2word"] = dict(enumerate(words))
    torch.save(ckpt, src)
    with pytest.raises(ValueError, match=message):
        cs.convert(["xlm", src, "--out", tmp_path / "out"])


def test_fastbpe_codes_need_an_xlm_dictionary_and_xlm_needs_its_codes(tmp_path, root):
    from training.convert.common import Refused
    step = tmp_path / "step"
    cs.lingua_checkpoint(step)
    (tmp_path / "codes").write_text("t h 100\n")
    with pytest.raises(Refused, match="need the XLM dictionary"):
        cs.convert(["lingua", step, "--out", tmp_path / "out", "--tokenizer", tmp_path / "codes"])
    src, _ = cs.xlm_checkpoint(tmp_path / "xlm.pth")
    sentencepiece = root / "models/pkm-small/tokenizer.model"
    with pytest.raises(Refused, match="give the fastBPE codes it was trained with"):
        cs.convert(["xlm", src, "--out", tmp_path / "out", "--tokenizer", sentencepiece])
    assert not (tmp_path / "out").exists()


def test_a_tokenizer_of_no_known_kind_is_refused(tmp_path):
    src, _ = cs.xlm_checkpoint(tmp_path / "xlm.pth")
    (tmp_path / "vocab.json").write_text('{"the": 1}\n')
    from training.convert.common import Refused
    with pytest.raises(Refused, match="neither a SentencePiece model, a tiktoken ranks file"):
        cs.convert(["xlm", src, "--out", tmp_path / "out", "--tokenizer", tmp_path / "vocab.json"])
    assert not (tmp_path / "out").exists()


def test_xlm_with_gelu_activation(tmp_path):
    src, forward = cs.xlm_checkpoint(tmp_path / "xlm.pth", params=cs.xlm_params(gelu_activation=True,
                                                                                mem_query_batchnorm=False))
    model, _ = cs.convert(["xlm", src, "--out", tmp_path / "out"])
    assert model.cfg.ffn.kind == "gelu"
    tokens = cs.sequences(64)[1]
    with torch.no_grad():
        assert (load_model(tmp_path / "out")(tokens.unsqueeze(0))[0] - forward(tokens)).abs().max() < TOL


def test_lingua_table_saved_under_one_layer_only(tmp_path):
    step = tmp_path / "step"
    _, forward = cs.lingua_checkpoint(step)
    path = step / "consolidated" / "consolidated.pth"
    ckpt = torch.load(path)
    del ckpt["model"]["layers.2.feed_forward.values.weight"]
    torch.save(ckpt, path)
    model, _ = cs.convert(["lingua", step, "--out", tmp_path / "out"])
    assert {m.values_name for m in model.cfg.memories} == {"memory.values"}
    tokens = cs.sequences(64)[1]
    with torch.no_grad():
        assert (load_model(tmp_path / "out")(tokens.unsqueeze(0))[0] - forward(tokens)).abs().max() < TOL


def test_a_tiktoken_file_becomes_the_directory_tokenizer_with_llama3_specials(tmp_path):
    import base64
    step = tmp_path / "step"
    params = cs.lingua_params()
    params["model"]["vocab_size"] = 512  # 256 byte ranks + Llama-3's 256 specials
    cs.lingua_checkpoint(step, params=params)
    ranks = tmp_path / "tokenizer.model.tiktoken"
    ranks.write_text("".join(f"{base64.b64encode(bytes([b])).decode()} {b}\n" for b in range(256)))
    model, _ = cs.convert(["lingua", step, "--out", tmp_path / "out", "--tokenizer", ranks])
    # BOS and EOS default to Llama-3's, as lingua's tiktoken tokenizer numbers them.
    assert (model.cfg.bos_id, model.cfg.eos_id) == (256, 257)
    assert (tmp_path / "out/tokenizer.tiktoken").read_bytes() == ranks.read_bytes()
    meta = json.loads((tmp_path / "out/tiktoken.json").read_text())
    assert meta["pattern"] == "llama3"
    specials = meta["special_tokens"]
    assert len(specials) == 256
    assert specials["<|begin_of_text|>"] == 256 and specials["<|eot_id|>"] == 265
    assert specials["<|reserved_special_token_250|>"] == 511
