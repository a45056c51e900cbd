"""XLM (facebookresearch/XLM) checkpoints with product-key memories -> format 2.

A torch.save pickle {'model' | 'encoder' | 'decoder': state_dict, 'params': argparse Namespace
or dict, 'dico_id2word': ...}; keys may start with `module.`. The transformer is post-LN
(LayerNorm eps 1e-12 everywhere), learned positions, a LayerNorm on the embeddings, MHA with
biases, a ReLU FFN (GELU when gelu_activation), no final norm and `pred_layer.proj` with a bias.
Memories: `memories.{L}_in.` replaces block L's FFN (format 2 `replace`), `memories.{L}_after.`
reads block L's output (`after`); the query is Linear [+ BatchNorm1d], folded here.
"""
from pathlib import Path

import torch

from training.config import FFN, Attention, Config, LMHead, Memory, Norm, Positions
from training.convert.common import Tensors, as_dict, fold_batchnorm, refuse_if, strip_prefix
from training.convert.writer import Mapping

XLM_EPS = 1e-12
BN_EPS = 1e-5  # BatchNorm1d's default, which XLM's query network keeps

# Options of XLM's HashingMemory that change its computation away from format 2's lookup:
# option -> (the value that format 2 computes, why another value cannot be served).
MEMORY_OPTIONS = {
    "mem_shuffle_indices": (False, "slot ids go through a stored random permutation; format 2 reads slot i1*n_keys+i2"),
    "mem_modulo_size": (-1, "slot ids are taken modulo a smaller table; format 2 has n_keys² slots"),
    "mem_normalize_query": (False, "queries are L2-normalised before scoring; format 2 scores raw dot products"),
    "mem_temperature": (1, "scores are divided by a temperature before the softmax; format 2 has none"),
    "mem_query_layernorm": (False, "a LayerNorm over the whole query; format 2 norms each half sub-query only"),
    "mem_query_residual": (False, "the query adds its input back; format 2 has a Linear only"),
    "mem_multi_query_net": (False, "one query network per head; format 2 has one Linear for all heads"),
    "mem_score_subtract": ("", "scores are shifted before the softmax; format 2 has none"),
    "mem_score_normalize": (False, "weights are renormalised after the softmax; format 2 has the softmax only"),
    "mem_input2d": (False, "2-D convolutional queries; format 2 has a Linear"),
}


def load(src: Path):
    ckpt = torch.load(src, map_location="cpu")
    if not isinstance(ckpt, dict) or "params" not in ckpt:
        raise ValueError(f"{src}: not an XLM checkpoint (expected a dict with 'params' and 'model')")
    for name in ("model", "decoder", "encoder"):
        if name in ckpt:
            return strip_prefix(ckpt[name], "module."), as_dict(ckpt["params"]), ckpt.get("dico_id2word")
    raise ValueError(f"{src}: no 'model', 'decoder' or 'encoder' state_dict")


def check_options(params: dict):
    for option, (default, why) in MEMORY_OPTIONS.items():
        value = params.get(option, default)
        if option == "mem_temperature":
            refuse_if(float(value) != 1.0, f"XLM {option}={value}", why)
        elif option == "mem_modulo_size":
            refuse_if(value not in (-1, None, 0), f"XLM {option}={value}", why)
        else:
            refuse_if(bool(value) != bool(default), f"XLM {option}={value}", why)
    refuse_if(params.get("mem_score_softmax", True) is False, "XLM mem_score_softmax=False",
              "format 2 always takes the softmax of the scores")
    refuse_if(bool(params.get("asm", False)), "XLM asm (adaptive softmax)",
              "format 2 has one full-vocabulary LM head")
    # The engine is causal: a model trained only as a masked LM attends both ways.
    refuse_if(bool(params.get("mlm_steps")) and not params.get("clm_steps"), "XLM mlm_steps without clm_steps",
              "a masked (bidirectional) LM; format 2 attention is causal")


def check_memories(params: dict, state: dict):
    """The memories params.json lists are those the state_dict holds (encoder or decoder list)."""
    listed = {(int(layer), where) for layer, where in params.get("mem_enc_positions") or []} | \
             {(int(layer), where) for layer, where in params.get("mem_dec_positions") or []}
    found = {(int(k.split(".")[1].split("_")[0]), k.split(".")[1].split("_")[1])
             for k in state if k.startswith("memories.") and k.endswith(".keys")}
    if listed and not found <= listed:
        raise ValueError(f"XLM params: memories {sorted(found - listed)} are in the weights but not in "
                         f"mem_enc_positions/mem_dec_positions {sorted(listed)}")


def _memory(t: Tensors, prefix: str, layer: int, placement: str, params: dict, d: int, mapping: Mapping) -> Memory:
    keys = t.get(prefix + "keys")
    refuse_if(keys.dim() != 4 or keys.shape[1] != 2, f"XLM flat keys ({prefix}keys {list(keys.shape)})",
              "format 2 has product keys only, [heads, 2, n_keys, k_dim/2]")
    heads, _, n_keys, half = keys.shape
    values = t.get(prefix + "values.weight")
    refuse_if(values.shape[0] != n_keys ** 2, f"XLM {prefix}values.weight rows {values.shape[0]}",
              f"format 2 reads n_keys²={n_keys ** 2} slots")
    w = t.get(prefix + "query_proj.query_mlps.0.weight", (heads * 2 * half, d))
    b = t.maybe(prefix + "query_proj.query_mlps.0.bias")
    refuse_if(any(k.startswith(prefix + "query_proj.query_mlps.2") for k in t.state), f"XLM {prefix}query_proj (deep)",
              "a multi-layer query network; format 2 has one Linear")
    dest = f"layers.{layer}.{'pkm_after' if placement == 'after' else 'pkm'}."
    group = f"memory {layer} {placement}"
    how = ""
    bn_prefix = prefix + "query_proj.query_mlps.1."
    if t.has(bn_prefix + "running_mean"):
        bn = {k: t.get(bn_prefix + k) for k in ("weight", "bias", "running_mean", "running_var")}
        t.maybe(bn_prefix + "num_batches_tracked")
        w, b = fold_batchnorm(w, b, bn, BN_EPS)
        how = "query BatchNorm folded into the query Linear"
    # XLM's query is head-major [head][half][k_dim/2] already, the order format 2 reads.
    mapping.put(group, dest + "query.weight", w, prefix + "query_proj.query_mlps.0.weight", how)
    if b is not None:
        mapping.put(group, dest + "query.bias", b, prefix + "query_proj.query_mlps.0.bias")
    mapping.put(group, dest + "keys", keys, prefix + "keys")
    mapping.put(group, dest + "values", values, prefix + "values.weight")
    if "mem_knn" not in params:  # no tensor records it, and XLM's default changed over time
        raise ValueError("XLM params: no mem_knn, the slots read per memory head")
    knn = int(params["mem_knn"])
    return Memory(layer=layer, placement=placement, heads=heads, knn=knn, n_keys=n_keys, k_dim=2 * half,
                  v_dim=values.shape[1], query_bias=b is not None)


def dictionary_text(dico, vocab: int) -> str:
    """dico_id2word as xlm_dictionary.txt: one word per line, line i = id i."""
    if sorted(dico) != list(range(vocab)):
        raise ValueError(f"XLM dico_id2word has {len(dico)} ids, not exactly 0..{vocab - 1} of the "
                         f"{vocab}-row embedding")
    words = [str(dico[i]) for i in range(vocab)]
    bad = next((w for w in words if not w or w.split() != [w]), None)
    if bad is not None:
        raise ValueError(f"XLM dico_id2word word {bad!r} is empty or holds whitespace")
    if len(set(words)) != vocab:
        raise ValueError("XLM dico_id2word names a word twice")
    if "<unk>" not in words:
        raise ValueError("XLM dico_id2word has no <unk>, which words outside it encode to")
    return "".join(w + "\n" for w in words)


def convert(src: Path, max_seq_len=None):
    state, params, dico = load(src)
    check_options(params)
    check_memories(params, state)
    t = Tensors(state, str(src), ignored=("num_batches_tracked",))
    refuse_if(any(k.startswith("encoder_attn.") for k in state), "XLM decoder (encoder_attn)",
              "cross-attention to an encoder; format 2 is a decoder-only LM")
    refuse_if(t.has("lang_embeddings.weight"), "XLM lang_embeddings (n_langs > 1 with use_lang_emb)",
              "format 2 has no language embeddings")
    # With asm, pred_layer.proj is an AdaptiveLogSoftmaxWithLoss: head.* and tail.* in place of weight.
    refuse_if(any(k.startswith("pred_layer.") and k not in ("pred_layer.proj.weight", "pred_layer.proj.bias")
                  for k in state), "XLM asm (adaptive softmax)", "format 2 has one full-vocabulary LM head")
    emb = t.get("embeddings.weight")
    vocab, d = emb.shape
    pos = t.get("position_embeddings.weight")
    n_layers = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("attentions."))
    n_heads = int(params["n_heads"])
    if d % n_heads:
        raise ValueError(f"XLM params: n_heads={n_heads} does not divide emb_dim={d}")
    m = Mapping()
    if dico is not None:
        m.put_file("xlm_dictionary.txt", dictionary_text(dico, vocab), f"XLM dictionary ({vocab} words)")
    m.put("embeddings", "tok_embeddings.weight", emb, "embeddings.weight")
    m.put("embeddings", "pos_embeddings.weight", pos, "position_embeddings.weight")
    m.put("embeddings", "emb_norm.weight", t.get("layer_norm_emb.weight"), "layer_norm_emb.weight")
    m.put("embeddings", "emb_norm.bias", t.get("layer_norm_emb.bias"), "layer_norm_emb.bias")
    memories, hidden = [], None
    for i in range(n_layers):
        group = f"block {i}"
        for src_name, dst in (("q_lin", "wq"), ("k_lin", "wk"), ("v_lin", "wv"), ("out_lin", "wo")):
            for p in ("weight", "bias"):
                m.put(group, f"layers.{i}.attn.{dst}.{p}", t.get(f"attentions.{i}.{src_name}.{p}"),
                      f"attentions.{i}.{src_name}.{p}")
        for src_name, dst in (("layer_norm1", "attn_norm"), ("layer_norm2", "ffn_norm")):
            for p in ("weight", "bias"):
                m.put(group, f"layers.{i}.{dst}.{p}", t.get(f"{src_name}.{i}.{p}"), f"{src_name}.{i}.{p}")
        if t.has(f"memories.{i}_in.keys"):
            memories.append(_memory(t, f"memories.{i}_in.", i, "replace", params, d, m))
            # XLM builds the FFN of a block whose memory replaces it all the same; it is unused.
            for k in t.keys_under(f"ffns.{i}."):
                t.get(k)
        else:
            for src_name, dst in (("lin1", "w1"), ("lin2", "w2")):
                for p in ("weight", "bias"):
                    m.put(group, f"layers.{i}.ffn.{dst}.{p}", t.get(f"ffns.{i}.{src_name}.{p}"),
                          f"ffns.{i}.{src_name}.{p}")
            hidden = state[f"ffns.{i}.lin1.weight"].shape[0]
        if t.has(f"memories.{i}_after.keys"):
            memories.append(_memory(t, f"memories.{i}_after.", i, "after", params, d, m))
    if hidden is None:  # every block's FFN replaced: the width is unused, any valid one will do
        hidden = 4 * d
    head = t.get("pred_layer.proj.weight", (vocab, d))
    tied = torch.equal(head, emb)
    if not tied:
        m.put("lm head", "lm_head.weight", head, "pred_layer.proj.weight")
    m.put("lm head", "lm_head.bias", t.get("pred_layer.proj.bias", (vocab,)), "pred_layer.proj.bias",
          "tied to embeddings.weight" if tied else "")
    t.check_all_used()
    gelu = bool(params.get("gelu_activation", False))
    eos = 1  # XLM's dictionary: </s> = 1 ends sentences and begins them
    cfg = Config(family="xlm", vocab_size=vocab, d_model=d, n_layers=n_layers,
                 max_seq_len=int(max_seq_len or pos.shape[0]), bos_id=eos, eos_id=eos, dtype="float32",
                 norm=Norm("layernorm", XLM_EPS, True), block="post_norm", embedding_norm=True, final_norm=False,
                 positions=Positions("learned", max_positions=pos.shape[0]),
                 attention=Attention(n_heads, n_heads, d // n_heads, True),
                 ffn=FFN("gelu" if gelu else "relu", hidden, True), lm_head=LMHead(tied, True), memories=memories)
    return cfg, m


def add_arguments(ap):
    ap.add_argument("--max-seq-len", type=int, help="the served context (default: the position table's rows)")
