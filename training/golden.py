"""Writes golden vectors for parity tests from an exported model directory.

The reference model is loaded from the exported files (so fp16 rounding of the weights is
included) and run in fp32. For each fixed token sequence it stores:
    seq{i}.tokens                  I32 [T]
    seq{i}.logits                  F32 [T, vocab]      logits at every position
    seq{i}.layer{l}.pkm_ids        I32 [T, H, k]       slot ids of memory layer l, best first
    seq{i}.layer{l}.pkm_weights    F32 [T, H, k]       their softmax weights
and, for greedy generation from each prompt in PROMPTS (KV-cached decoding, argmax with the
lowest id on ties, no stop at </s>):
    gen{i}.prompt                  I32 [P]
    gen{i}.tokens                  I32 [GEN_TOKENS]    the generated tokens
into golden.safetensors, and golden.json describing the sequences and the model.

Usage: /usr/bin/python3 -m training.golden --model models/pkm-small --out tests/data/golden
"""
import argparse
import hashlib
import json
from pathlib import Path

import sentencepiece as spm
import torch

from training import safetensors_io
from training.checkpoint import load_model

# Fixed inputs: one single token, a passage from the training text, a held-out passage, and
# a string that needs byte fallback.
TEXTS = [
    None,  # <s> alone
    "Call me Ishmael. Some years ago—never mind how long precisely—having little or no money in my purse",
    "The state of the Union is strong, and the Congress has before it the question of how the nation "
    "shall pay for the roads, the schools and the defense of its people in the years to come.",
    "Naïve café owners paid 12,345.67 dollars — 🐋!",
]

PROMPTS = ["Call me Ishmael.", "Fellow-Citizens of the Senate and House of Representatives:"]
GEN_TOKENS = 24


def sequences(sp, bos: int):
    return [[bos] + (sp.encode(t) if t else []) for t in TEXTS]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@torch.no_grad()
def greedy(model, prompt, steps: int):
    cache = model.new_cache()
    logits = model(torch.tensor([prompt]), cache=cache)
    out = []
    for _ in range(steps):
        row = logits[0, -1]
        nxt = int(torch.nonzero(row == row.max())[0])  # lowest id among the maxima
        out.append(nxt)
        logits = model(torch.tensor([[nxt]]), cache=cache)
    return out


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("models/pkm-small"))
    ap.add_argument("--out", type=Path, default=Path("tests/data/golden"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = load_model(args.model)
    sp = spm.SentencePieceProcessor(model_file=str(args.model / "tokenizer.model"))
    pkm_layers = [i for i, _ in model.pkm_modules()]
    tensors, meta = {}, []
    for i, ids in enumerate(sequences(sp, model.cfg.bos_id)):
        lookups = []
        logits = model(torch.tensor([ids]), lookups=lookups)[0]
        tensors[f"seq{i}.tokens"] = torch.tensor(ids, dtype=torch.int32)
        tensors[f"seq{i}.logits"] = logits.float()
        for layer, (pkm_ids, w) in zip(pkm_layers, lookups):
            tensors[f"seq{i}.layer{layer}.pkm_ids"] = pkm_ids[0].to(torch.int32)
            tensors[f"seq{i}.layer{layer}.pkm_weights"] = w[0].float()
        meta.append({"name": f"seq{i}", "text": TEXTS[i], "tokens": len(ids)})
    generations = []
    for i, text in enumerate(PROMPTS):
        prompt = [model.cfg.bos_id] + sp.encode(text)
        gen = greedy(model, prompt, GEN_TOKENS)
        tensors[f"gen{i}.prompt"] = torch.tensor(prompt, dtype=torch.int32)
        tensors[f"gen{i}.tokens"] = torch.tensor(gen, dtype=torch.int32)
        generations.append({"name": f"gen{i}", "prompt": text, "completion": sp.decode(gen)})
    args.out.mkdir(parents=True, exist_ok=True)
    safetensors_io.save(tensors, args.out / "golden.safetensors", {"model": str(args.model)})
    info = {"model": str(args.model), "model_sha256": sha256(args.model / "model.safetensors"),
            "pkm_layers": pkm_layers, "torch": torch.__version__, "sequences": meta,
            "generations": generations}
    (args.out / "golden.json").write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n")
    print(f"golden: {len(meta)} sequences, {sum(m['tokens'] for m in meta)} positions -> {args.out}")


if __name__ == "__main__":
    main()
