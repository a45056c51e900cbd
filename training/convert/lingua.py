"""Memory Layers at Scale (facebookresearch/memory, "lingua") checkpoints -> format 2.

SRC is a checkpoint directory: consolidated/consolidated.pth ({"model": state_dict, ...}) with
params.json (the train config) beside consolidated/ or in SRC itself. The model is Llama:
RMSNorm, GQA attention without biases, RoPE on interleaved pairs (wq/wk rows are permuted per
head to the rotate-half pairing format 2 uses), SwiGLU with hidden
multiple_of·ceil(int(2·4·dim/3)·ffn_dim_multiplier / multiple_of), untied `output.weight`.
Memory+ layers replace `layers.{L}.feed_forward`: query Linear with bias, no query norm,
output value_proj(bag ⊙ silu(swilu_projection(h))), one bf16 value table shared by all of them.
"""
import json
import math
from pathlib import Path

import torch

from training.config import FFN, Attention, Config, LMHead, Memory, Norm, Positions
from training.convert.common import Tensors, interleaved_to_rotate_half, refuse_if
from training.convert.writer import Mapping

SHARED_VALUES = "memory.values"


def load(src: Path):
    src = Path(src)
    pth = src / "consolidated" / "consolidated.pth" if src.is_dir() else src
    if not pth.exists():
        raise ValueError(f"{src}: no consolidated/consolidated.pth")
    for where in (pth.parent / "params.json", pth.parent.parent / "params.json"):
        if where.exists():
            params = json.loads(where.read_text())
            break
    else:
        raise ValueError(f"{src}: no params.json beside consolidated/ or in it")
    ckpt = torch.load(pth, map_location="cpu")
    state = ckpt["model"] if isinstance(ckpt, dict) and "model" in ckpt else ckpt
    return state, params


def ffn_hidden(dim: int, multiple_of: int, multiplier) -> int:
    hidden = int(2 * 4 * dim / 3)
    if multiplier is not None:
        hidden = int(multiplier * hidden)
    return multiple_of * math.ceil(hidden / multiple_of)


def memory_args(model: dict) -> dict:
    args = model.get("productkey_args") or {}
    refuse_if(bool(args.get("peer_variant", False)), "Memory+ peer_variant",
              "PEER experts (one tiny MLP per slot) are not a value table; format 2 reads values")
    return args


def _memory(t: Tensors, layer: int, d: int, knn: int, m: Mapping, shared_values=None):
    p = f"layers.{layer}.feed_forward."
    refuse_if(any(k.startswith(p + "gating.") for k in t.state), "Memory+ gating",
              f"{p}gating.* scales the output by sigmoid(gating(x)); format 2's memory_plus output has no gate")
    refuse_if(not t.has(p + "swilu_projection.weight"), "Memory+ swilu_projection=false",
              "format 2's memory_plus output always multiplies the bag by silu(swilu(h))")
    # A shared table may be saved under one memory layer only: then the others read that one.
    values = t.get(p + "values.weight") if t.has(p + "values.weight") else shared_values
    if values is None:
        raise ValueError(f"{t.source}: tensor {p + 'values.weight'!r} is missing and no other memory layer has one")
    n_keys = math.isqrt(values.shape[0])
    refuse_if(n_keys * n_keys != values.shape[0], f"{p}values.weight rows {values.shape[0]}", "not a square n_keys²")
    keys = t.get(p + "keys")
    half = keys.shape[1]
    heads = keys.shape[0] // (2 * n_keys)
    refuse_if(heads * 2 * n_keys != keys.shape[0], f"{p}keys {list(keys.shape)}", f"not [2·heads·{n_keys}, half]")
    v_dim = values.shape[1]
    group = f"memory {layer}"
    q = f"layers.{layer}.pkm."
    m.put(group, q + "query.weight", t.get(p + "query_proj.query_mlps.0.weight", (heads * 2 * half, d)),
          p + "query_proj.query_mlps.0.weight")
    m.put(group, q + "query.bias", t.get(p + "query_proj.query_mlps.0.bias", (heads * 2 * half,)),
          p + "query_proj.query_mlps.0.bias")
    # The flat [2·heads·n_keys, half] keys are [heads, 2, n_keys, half] row-major.
    m.put(group, q + "keys", keys.reshape(heads, 2, n_keys, half), p + "keys", "flat keys viewed [heads, 2, n_keys, half]")
    for src, dst in (("swilu_projection", "swilu"), ("value_proj", "value_proj")):
        for x in ("weight", "bias"):
            m.put(group, f"{q}{dst}.{x}", t.get(f"{p}{src}.{x}"), f"{p}{src}.{x}")
    mem = Memory(layer=layer, placement="replace", heads=heads, knn=knn, n_keys=n_keys, k_dim=2 * half,
                 v_dim=v_dim, query_bias=True, output="memory_plus", output_bias=True, values_dtype="bfloat16")
    return mem, values


def convert(src: Path, bos_id=None, eos_id=None, max_seq_len=None, knn=None):
    state, params = load(src)
    model = params.get("model", params)
    args = memory_args(model)
    t = Tensors(state, str(src), ignored=("freqs_cis",))
    emb = t.get("tok_embeddings.weight")
    vocab, d = emb.shape
    n_layers = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("layers."))
    n_heads = int(model["n_heads"])
    n_kv = int(model.get("n_kv_heads") or n_heads)
    head_dim = int(model.get("head_dim") or d // n_heads)
    knn = knn if knn is not None else args.get("mem_knn")
    if knn is None:  # no tensor records it
        raise ValueError(f"{src}: params.json has no model.productkey_args.mem_knn; give --knn")
    knn = int(knn)
    m = Mapping()
    m.put("embeddings", "tok_embeddings.weight", emb, "tok_embeddings.weight")
    memories, tables, hidden = [], [], None
    for i in range(n_layers):
        group, p = f"block {i}", f"layers.{i}."
        for x in ("wq", "wk", "wv", "wo"):
            w = t.get(f"{p}attention.{x}.weight")
            how = ""
            if x in ("wq", "wk"):
                w = interleaved_to_rotate_half(w, n_heads if x == "wq" else n_kv, head_dim)
                how = "wq, wk rows permuted per head from interleaved to rotate-half RoPE pairs"
            m.put(group, f"{p}attn.{x}.weight", w, f"{p}attention.{x}.weight", how)
        m.put(group, f"{p}attn_norm.weight", t.get(f"{p}attention_norm.weight"), f"{p}attention_norm.weight")
        m.put(group, f"{p}ffn_norm.weight", t.get(f"{p}ffn_norm.weight"), f"{p}ffn_norm.weight")
        if t.has(f"{p}feed_forward.keys"):
            mem, values = _memory(t, i, d, knn, m, first_table(state))
            memories.append(mem)
            tables.append((f"{p}feed_forward.values.weight", values))
        else:
            for x in ("w1", "w2", "w3"):
                m.put(group, f"{p}ffn.{x}.weight", t.get(f"{p}feed_forward.{x}.weight"), f"{p}feed_forward.{x}.weight")
            hidden = state[f"{p}feed_forward.w1.weight"].shape[0]
    if hidden is not None and "multiple_of" in model:
        rule = ffn_hidden(d, int(model["multiple_of"]), model.get("ffn_dim_multiplier"))
        if rule != hidden:
            raise ValueError(f"{src}: feed_forward.w1 has {hidden} rows, params.json's dim/multiple_of/"
                             f"ffn_dim_multiplier give {rule}")
    _put_tables(memories, tables, args, m)
    m.put("final", "norm.weight", t.get("norm.weight"), "norm.weight")
    m.put("final", "lm_head.weight", t.get("output.weight", (vocab, d)), "output.weight")
    t.check_all_used()
    seq = max_seq_len or model.get("max_seqlen") or params.get("data", {}).get("seq_len") or 2048
    cfg = Config(family="llama", vocab_size=vocab, d_model=d, n_layers=n_layers, max_seq_len=int(seq),
                 bos_id=1 if bos_id is None else bos_id, eos_id=2 if eos_id is None else eos_id, dtype="float32",
                 norm=Norm("rmsnorm", float(model.get("norm_eps", 1e-5)), False), block="pre_norm",
                 positions=Positions("rope", theta=float(model.get("rope_theta", 10000.0))),
                 attention=Attention(n_heads, n_kv, head_dim, False),
                 ffn=FFN("swiglu", hidden or ffn_hidden(d, int(model.get("multiple_of", 256)),
                                                        model.get("ffn_dim_multiplier")), False),
                 lm_head=LMHead(False, False), memories=memories)
    return cfg, m


def first_table(state):
    keys = sorted((k for k in state if k.endswith("feed_forward.values.weight")),
                  key=lambda k: int(k.split(".")[1]))
    return state[keys[0]] if keys else None


def _put_tables(memories, tables, args, m: Mapping):
    """One table when every memory holds the same values (Memory+'s default), stored once; own
    tables when they differ and the config does not claim they are shared."""
    if not tables:
        return
    same = all(v is tables[0][1] or torch.equal(v, tables[0][1]) for _, v in tables[1:])
    if same and len(tables) > 1:
        for mem in memories:
            mem.values = SHARED_VALUES
        m.put("values", SHARED_VALUES, tables[0][1].to(torch.bfloat16), tables[0][0],
              f"one bf16 table shared by {len(tables)} memories, the copies checked equal")
        return
    if not same and args.get("mem_share_values", False):
        raise ValueError(f"params.json says mem_share_values, but {tables[0][0]} and the other tables differ")
    for mem, (name, v) in zip(memories, tables):
        m.put("values", mem.prefix + "values", v.to(torch.bfloat16), name)


def add_arguments(ap):
    ap.add_argument("--bos-id", type=int, help="begin-of-sequence id (default: <|begin_of_text|> with a "
                                                         "tiktoken --tokenizer, else 1, SentencePiece's)")
    ap.add_argument("--eos-id", type=int, help="end-of-sequence id (default: <|end_of_text|> with a "
                                                         "tiktoken --tokenizer, else 2)")
    ap.add_argument("--max-seq-len", type=int, help="served context (default: params.json's max_seqlen)")
    ap.add_argument("--knn", type=int, help="slots read per memory head (default: productkey_args.mem_knn)")
