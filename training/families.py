"""Tiny random-weight models of every format 2 option, with their golden vectors.

Each family is a model directory <out>/<name>/ (config.json, model.safetensors; no tokenizer)
plus golden.safetensors and golden.json. The goldens are computed in fp32 by the reference
model loaded back from the exported files, so they include the storage dtype's rounding:
    seq{i}.tokens                           I32 [T]          T = 1, 20, 60: random ids, fixed seed
    seq{i}.logits                           F32 [T, vocab]
    seq{i}.layer{l}.{placement}.pkm_ids     I32 [T, H, k]    per memory, slot ids best first
    seq{i}.layer{l}.{placement}.pkm_weights F32 [T, H, k]    their softmax weights
golden.json names the family, the options it covers (options()) and the sequences.

Weights are drawn from fixed seeds and then spread wider than training's initialisation
(biases and norm weights away from 0 and 1, BatchNorm statistics away from identity), so that
every tensor moves the logits and a loader that drops one fails the comparison.

Usage: /usr/bin/python3 -m training.families --out tests/data/families
"""
import argparse
import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import Dict, List

import torch

from training import safetensors_io
from training.checkpoint import load_model
from training.config import FFN, LMHead, Attention, Config, Memory, Norm, Positions
from training.export import export
from training.model import PKMTransformer

SEQ_LENGTHS = (1, 20, 60)
MAX_SEQ_LEN = 64


def _memory(layer, placement, **kw) -> Memory:
    base = dict(heads=2, knn=4, n_keys=8, k_dim=8, v_dim=32, query_bias=True)
    return Memory(layer=layer, placement=placement, **{**base, **kw})


def _config(**kw) -> Config:
    base = dict(vocab_size=96, d_model=32, n_layers=2, max_seq_len=MAX_SEQ_LEN, bos_id=1, eos_id=2,
                norm=Norm("layernorm", 1e-5, True), positions=Positions("rope", theta=10000.0),
                attention=Attention(4, 4, 8, True), ffn=FFN("gelu", 64, True), lm_head=LMHead(True, False))
    return Config(**{**base, **kw})


# name -> (config, whether the memories train with the query BatchNorm folded at export)
FAMILIES = {
    # The bundled model's family: pre-LayerNorm, GELU, RoPE, a replace memory, fp16.
    "pkmserve": (_config(family="pkmserve", dtype="float16", memories=[_memory(1, "replace")]), True),
    # A dense Llama: RMSNorm, SwiGLU, GQA, no biases, untied head.
    "llama": (_config(family="llama", vocab_size=128, norm=Norm("rmsnorm", 1e-5, False),
                      positions=Positions("rope", theta=500000.0), attention=Attention(4, 2, 8, False),
                      ffn=FFN("swiglu", 48, False), lm_head=LMHead(False, False)), False),
    # Memory Layers at Scale: Llama with Memory+ at layers 0 and 2 sharing one bf16 table.
    "memory_plus": (_config(family="llama", vocab_size=64, n_layers=3, norm=Norm("rmsnorm", 1e-5, False),
                            positions=Positions("rope", theta=500000.0), attention=Attention(4, 2, 8, False),
                            ffn=FFN("swiglu", 48, False), lm_head=LMHead(False, False),
                            memories=[_memory(layer, "replace", n_keys=16, k_dim=16, v_dim=48, output="memory_plus",
                                              output_bias=True, values="memory.values", values_dtype="bfloat16")
                                      for layer in (0, 2)]), False),
    # XLM: post-LN (eps 1e-12), ReLU, learned positions, embedding norm, no final norm, a memory
    # in one block's FFN and one after another block, tied head with a bias.
    "xlm": (_config(family="xlm", vocab_size=64, norm=Norm("layernorm", 1e-12, True), block="post_norm", embedding_norm=True,
                    final_norm=False, positions=Positions("learned", max_positions=80), ffn=FFN("relu", 64, True),
                    lm_head=LMHead(True, True), memories=[_memory(0, "replace"), _memory(1, "after")]), True),
    # lucidrains >= 0.2: LayerNorm on each sub-query, no query bias.
    "lucidrains": (_config(family="lucidrains", vocab_size=64,
                           memories=[_memory(1, "replace", heads=4, n_keys=12, query_bias=False,
                                             query_norm="layernorm")]), False),
    # A memory beside the FFN and another after the same block, bf16 storage.
    "parallel": (_config(family="pkmserve", vocab_size=80, dtype="bfloat16",
                         memories=[_memory(0, "parallel", knn=3), _memory(0, "after", n_keys=10)]), False),
    # GELU's tanh form, no positions, MQA, LayerNorm without bias, an untied head with bias.
    "gelu_tanh_mqa": (_config(family="custom", vocab_size=64, norm=Norm("layernorm", 1e-5, False),
                              positions=Positions("none"), attention=Attention(4, 1, 8, True),
                              ffn=FFN("gelu_tanh", 48, True), lm_head=LMHead(False, True),
                              memories=[_memory(1, "after", heads=3, knn=5)]), False),
    # fp16 storage, head_dim 12 with d_model 32 and 4 heads; Memory+ without biases (v_dim 24)
    # in a block and after the next, sharing one fp16 table.
    "float16_head_dim": (_config(family="custom", dtype="float16", attention=Attention(4, 4, 12, True),
                                 ffn=FFN("gelu", 64, False),
                                 memories=[_memory(0, "replace", v_dim=24, output="memory_plus", output_bias=False,
                                                   values="shared.values"),
                                           _memory(1, "after", v_dim=24, output="memory_plus", output_bias=False,
                                                   values="shared.values")]), False),
}


def options(cfg: Config) -> List[str]:
    """The format 2 options a config uses, as `field=value` strings."""
    a = cfg.attention
    out = {f"dtype={cfg.dtype}", f"norm.kind={cfg.norm.kind}", f"norm.bias={cfg.norm.bias}", f"block={cfg.block}",
           f"embedding_norm={cfg.embedding_norm}", f"final_norm={cfg.final_norm}",
           f"positions.kind={cfg.positions.kind}", f"attention.bias={a.bias}", f"ffn.kind={cfg.ffn.kind}",
           f"ffn.bias={cfg.ffn.bias}", f"lm_head.tied={cfg.lm_head.tied}", f"lm_head.bias={cfg.lm_head.bias}",
           "attention=" + ("mha" if a.n_kv_heads == a.n_heads else "mqa" if a.n_kv_heads == 1 else "gqa"),
           f"attention.head_dim={'d_model/n_heads' if a.head_dim * a.n_heads == cfg.d_model else 'other'}",
           f"memories={'some' if cfg.memories else 'none'}"}
    names = [m.values_name for m in cfg.memories]
    for m in cfg.memories:
        out |= {f"memory.placement={m.placement}", f"memory.query_bias={m.query_bias}",
                f"memory.query_norm={m.query_norm}", f"memory.output={m.output}",
                f"memory.values={'shared' if names.count(m.values_name) > 1 else 'own'}",
                f"memory.values_dtype={'own' if cfg.values_dtype(m) != cfg.dtype else 'model'}",
                f"memory.v_dim={'d_model' if m.v_dim == cfg.d_model else 'other'}"}
        if m.output == "memory_plus":
            out.add(f"memory.output_bias={m.output_bias}")
    if any(len([m for m in cfg.memories if m.layer == i]) > 1 for i in range(cfg.n_layers)):
        out.add("memory.two_in_one_block")
    return sorted(o.replace("=True", "=true").replace("=False", "=false") for o in out)


def _seed(name: str) -> int:
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)


@torch.no_grad()
def build(name: str) -> PKMTransformer:
    """The family's model with its fixed random weights (fp32, before storage rounding)."""
    cfg, query_batchnorm = FAMILIES[name]
    cfg = Config.from_json(cfg.to_json())  # a fresh copy: builds never share state
    for mem in cfg.memories:
        mem.query_batchnorm = query_batchnorm
    torch.manual_seed(_seed(name))
    model = PKMTransformer(cfg)
    tables = {id(p) for p in model.value_tables().values()}
    for pname, p in model.named_parameters():
        if id(p) in tables or pname.endswith(".keys"):
            continue  # the memory's own initialisation already spreads them
        if p.dim() >= 2:
            p.normal_(0.0, 1.0 / math.sqrt(p.shape[1]))
        elif pname.endswith("bias"):
            p.normal_(0.0, 0.1)
        else:  # norm weights, BatchNorm weights
            p.copy_(1.0 + 0.2 * torch.randn_like(p))
    for pname, buf in model.named_buffers():
        if pname.endswith("running_mean"):
            buf.normal_(0.0, 0.1)
        elif pname.endswith("running_var"):
            buf.uniform_(0.5, 2.0)
    return model.eval()


def sequences(vocab_size: int) -> List[torch.Tensor]:
    gen = torch.Generator().manual_seed(20261203)
    return [torch.randint(0, vocab_size, (t,), generator=gen) for t in SEQ_LENGTHS]


def memory_keys(model: PKMTransformer) -> List[str]:
    """The golden name stem of each memory, in lookup order."""
    return [f"layer{layer}.{placement}" for layer, placement, _ in model.memories()]


@torch.no_grad()
def golden_tensors(model: PKMTransformer) -> Dict[str, torch.Tensor]:
    out = {}
    for i, tokens in enumerate(sequences(model.cfg.vocab_size)):
        lookups = []
        logits = model(tokens.unsqueeze(0), lookups=lookups)[0]
        out[f"seq{i}.tokens"] = tokens.to(torch.int32)
        out[f"seq{i}.logits"] = logits.float()
        for key, (ids, w) in zip(memory_keys(model), lookups):
            out[f"seq{i}.{key}.pkm_ids"] = ids[0].to(torch.int32)
            out[f"seq{i}.{key}.pkm_weights"] = w[0].float()
    return out


def write(name: str, out: Path) -> Path:
    """Exports the family to out/name and writes its goldens from the files just written."""
    model_dir = out / name
    if model_dir.exists():
        shutil.rmtree(model_dir)
    export(build(name), None, model_dir)
    model = load_model(model_dir)
    safetensors_io.save(golden_tensors(model), model_dir / "golden.safetensors", {"model": name})
    info = {"model": name, "family": model.cfg.family, "options": options(model.cfg),
            "model_sha256": hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest(),
            "memories": memory_keys(model), "torch": torch.__version__,
            "sequences": [{"name": f"seq{i}", "tokens": t} for i, t in enumerate(SEQ_LENGTHS)]}
    (model_dir / "golden.json").write_text(json.dumps(info, indent=1) + "\n")
    return model_dir


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("tests/data/families"))
    ap.add_argument("--only", nargs="*", choices=sorted(FAMILIES), help="families to write (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only or FAMILIES:
        model_dir = write(name, args.out)
        size = sum(f.stat().st_size for f in model_dir.iterdir())
        print(f"families: {name}: {size / 1024:.0f} KiB, {', '.join(options(load_model(model_dir).cfg))}")
    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"families: {args.out}: {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
