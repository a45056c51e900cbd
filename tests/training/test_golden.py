"""The bundled model reproduces the golden vectors that the C++ parity tests compare against."""
import json

import pytest
import sentencepiece as spm
import torch

from training import safetensors_io
from training.checkpoint import load_model
from training.golden import TEXTS, sequences, sha256


@pytest.fixture(scope="module")
def golden(request):
    root = request.config.rootpath
    return (json.loads((root / "tests/data/golden/golden.json").read_text()),
            safetensors_io.load(root / "tests/data/golden/golden.safetensors"))


def test_golden_matches_bundled_model_files(root, golden):
    info, _ = golden
    assert info["model_sha256"] == sha256(root / info["model"] / "model.safetensors"), \
        "models/ changed without regenerating tests/data/golden (make golden)"


def test_golden_sequences_are_the_tokenized_texts(root, golden):
    info, tensors = golden
    sp = spm.SentencePieceProcessor(model_file=str(root / info["model"] / "tokenizer.model"))
    expected = sequences(sp, bos=1)
    assert len(info["sequences"]) == len(TEXTS)
    for i, ids in enumerate(expected):
        assert tensors[f"seq{i}.tokens"].tolist() == ids
    assert sp.decode(expected[3][1:]) == TEXTS[3], "byte fallback must round-trip any text"


@torch.no_grad()
def test_reference_reproduces_golden_logits_and_lookups(root, golden):
    info, tensors = golden
    model = load_model(root / info["model"])
    for seq in info["sequences"]:
        name = seq["name"]
        lookups = []
        logits = model(tensors[f"{name}.tokens"].long().unsqueeze(0), lookups=lookups)[0]
        ref = tensors[f"{name}.logits"]
        assert logits.shape == ref.shape
        rel = ((logits - ref).abs().max() / ref.abs().max()).item()
        assert rel < 1e-5, f"{name}: logits differ by {rel:.2e} relative"
        for layer, (ids, w) in zip(info["pkm_layers"], lookups):
            assert torch.equal(ids[0].int(), tensors[f"{name}.layer{layer}.pkm_ids"])
            torch.testing.assert_close(w[0], tensors[f"{name}.layer{layer}.pkm_weights"], rtol=1e-5, atol=1e-6)


def test_golden_lookups_are_valid(root, golden):
    info, tensors = golden
    cfg = json.loads((root / info["model"] / "config.json").read_text())
    slots = cfg["pkm_n_keys"] ** 2
    for seq in info["sequences"]:
        for layer in info["pkm_layers"]:
            ids = tensors[f"{seq['name']}.layer{layer}.pkm_ids"]
            w = tensors[f"{seq['name']}.layer{layer}.pkm_weights"]
            assert ids.min() >= 0 and ids.max() < slots
            torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))
            assert (w[..., :-1] >= w[..., 1:]).all(), "weights must be ordered best first"


@torch.no_grad()
def test_greedy_generations_match_full_forward(root, golden):
    """The stored greedy tokens are the argmax of a full (uncached) forward at every step."""
    info, tensors = golden
    model = load_model(root / info["model"])
    for gen in info["generations"]:
        prompt = tensors[f"{gen['name']}.prompt"].tolist()
        tokens = tensors[f"{gen['name']}.tokens"].tolist()
        logits = model(torch.tensor([prompt + tokens]))[0]
        assert logits[len(prompt) - 1:-1].argmax(-1).tolist() == tokens
