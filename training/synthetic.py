"""Paper-scale models with random weights, for the benchmarks (never committed; docs/benchmarks.md).

  paper    Lample et al. (2019)'s model in XLM's layout: d_model 1024, 12 layers, 16 heads,
           post-LayerNorm, GELU FFN 4096, learned positions, tied head; the FFN of layer 6
           replaced by a memory of 512² slots, k_dim 512, 4 heads, knn 32; fp16. About 0.9 GB.
  memplus  Memory Layers at Scale's model (lingua): Llama blocks (RMSNorm, SwiGLU 2816, RoPE
           theta 5e5, 16 heads), d_model 1024, 12 layers, Llama-3's vocabulary of 128,256,
           untied head; Memory+ in place of the FFN of layers 3, 6 and 9, all three reading one
           table of 1024² slots x 1024 in bf16 (2 GiB); bf16. About 3 GB.

Weights are the reference model's own initialisation from a fixed seed, so every run writes the
same files. --tiny keeps each model's structure (layers, placements, heads, knn, dtypes, shared
table) at small widths: the test suite checks those against the C++ engine.

Usage: /usr/bin/python3 -m training.synthetic --out data/synthetic [--only paper] [--tiny]
"""
import argparse
import dataclasses
import hashlib
import shutil
from pathlib import Path
import torch

from training.config import FFN, LMHead, Attention, Config, Memory, Norm, Positions
from training.export import export
from training.model import PKMTransformer


@dataclasses.dataclass(frozen=True)
class Widths:
    d_model: int
    heads: int          # attention heads
    ffn: int            # paper's GELU FFN
    swiglu: int         # memplus's SwiGLU FFN
    paper_vocab: int
    memplus_vocab: int
    paper_keys: int     # n_keys of paper's memory (slots = n_keys²)
    memplus_keys: int
    k_dim: int
    knn: int
    max_seq_len: int


FULL = Widths(d_model=1024, heads=16, ffn=4096, swiglu=2816, paper_vocab=32000, memplus_vocab=128256,
              paper_keys=512, memplus_keys=1024, k_dim=512, knn=32, max_seq_len=2048)
TINY = Widths(d_model=64, heads=4, ffn=128, swiglu=96, paper_vocab=300, memplus_vocab=400,
              paper_keys=12, memplus_keys=16, k_dim=16, knn=8, max_seq_len=64)


def paper(w: Widths) -> Config:
    memory = Memory(layer=6, placement="replace", heads=4, knn=w.knn, n_keys=w.paper_keys, k_dim=w.k_dim,
                    v_dim=w.d_model, query_bias=True)
    return Config(family="xlm", vocab_size=w.paper_vocab, d_model=w.d_model, n_layers=12, max_seq_len=w.max_seq_len,
                  bos_id=0, eos_id=1, dtype="float16", norm=Norm("layernorm", 1e-12, True), block="post_norm",
                  embedding_norm=True, final_norm=False, positions=Positions("learned", max_positions=w.max_seq_len),
                  attention=Attention(w.heads, w.heads, w.d_model // w.heads, True), ffn=FFN("gelu", w.ffn, True),
                  lm_head=LMHead(True, True), memories=[memory])


def memplus(w: Widths) -> Config:
    memories = [Memory(layer=layer, placement="replace", heads=4, knn=w.knn, n_keys=w.memplus_keys, k_dim=w.k_dim,
                       v_dim=w.d_model, query_bias=True, output="memory_plus", output_bias=True,
                       values="memory.values")
                for layer in (3, 6, 9)]
    return Config(family="llama", vocab_size=w.memplus_vocab, d_model=w.d_model, n_layers=12,
                  max_seq_len=w.max_seq_len, bos_id=0, eos_id=1, dtype="bfloat16", norm=Norm("rmsnorm", 1e-5, False),
                  positions=Positions("rope", theta=500000.0),
                  attention=Attention(w.heads, w.heads, w.d_model // w.heads, False), ffn=FFN("swiglu", w.swiglu, False),
                  lm_head=LMHead(False, False), memories=memories)


MODELS = {"paper": paper, "memplus": memplus}


def config(name: str, tiny: bool = False) -> Config:
    return MODELS[name](TINY if tiny else FULL)


@torch.no_grad()
def write(name: str, out: Path, tiny: bool = False) -> Path:
    """Writes model `name` to out/name (config.json, model.safetensors) and returns that directory."""
    cfg = config(name, tiny)
    model_dir = out / name
    if model_dir.exists():
        shutil.rmtree(model_dir)
    torch.manual_seed(int(hashlib.sha256(name.encode()).hexdigest()[:8], 16))
    export(PKMTransformer(cfg).eval(), None, model_dir)
    return model_dir


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("data/synthetic"))
    ap.add_argument("--only", nargs="*", choices=sorted(MODELS), help="models to write (default: all)")
    ap.add_argument("--tiny", action="store_true", help="the same structures at small widths (tests)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    for name in args.only or MODELS:
        model_dir = write(name, args.out, args.tiny)
        size = (model_dir / "model.safetensors").stat().st_size
        print(f"synthetic: {model_dir}: {size / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
