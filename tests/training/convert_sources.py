"""Tiny checkpoints in each source project's own file layout and key names, and each source
model's forward written from its documented maths (docs/converting.md), independent of
training/model.py and training/pkm.py: the converters are judged against these.

Every builder returns (path it wrote, forward) where forward(tokens [T] int64, lookups=None)
-> logits [T, vocab] fp32, appending each memory's slot ids [T, H, k] to lookups in the
order the memories are read. Weights are random from fixed seeds, spread wide enough (norm weights away
from 1, biases away from 0) that a tensor dropped or misplaced moves the logits.
"""
import argparse
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F

SEQ_LENGTHS = (1, 20, 60)


def sequences(vocab: int):
    gen = torch.Generator().manual_seed(20)
    return [torch.randint(0, vocab, (t,), generator=gen) for t in SEQ_LENGTHS]


class Weights:
    """A state_dict filled with seeded random tensors."""

    def __init__(self, seed: int):
        self.gen = torch.Generator().manual_seed(seed)
        self.state = {}

    def _rand(self, *shape):
        return torch.randn(*shape, generator=self.gen)

    def matrix(self, key, rows, cols):
        self.state[key] = self._rand(rows, cols) / math.sqrt(cols)
        return self.state[key]

    def bias(self, key, n):
        self.state[key] = 0.1 * self._rand(n)
        return self.state[key]

    def norm_weight(self, key, n):
        self.state[key] = 1.0 + 0.2 * self._rand(n)
        return self.state[key]

    def table(self, key, *shape, scale=1.0):
        self.state[key] = scale * self._rand(*shape)
        return self.state[key]

    def batchnorm(self, prefix, n):
        self.norm_weight(prefix + "weight", n)
        self.bias(prefix + "bias", n)
        self.state[prefix + "running_mean"] = 0.1 * self._rand(n)
        self.state[prefix + "running_var"] = 0.5 + 1.5 * torch.rand(n, generator=self.gen)
        self.state[prefix + "num_batches_tracked"] = torch.tensor(100)


# ---- the maths every source shares -------------------------------------------------------------

def layer_norm(x, w, b, eps):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * w + (0 if b is None else b)


def rms_norm(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def linear(x, s, key, bias=True):
    y = x @ s[key + ".weight"].t()
    return y + s[key + ".bias"] if bias else y


def causal_attention(q, k, v):
    """q [H, T, hd], k, v [H, T, hd] -> [T, H*hd]."""
    T, hd = q.shape[1], q.shape[2]
    att = q @ k.transpose(1, 2) / math.sqrt(hd)
    att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
    return (att @ v).transpose(0, 1).reshape(T, -1)


def product_keys(s1, s2, values, knn, lookups=None):
    """Half scores s1, s2 [T, H, n] -> the bag Σ_h Σ_j softmax(score)·values[i1·n + i2] (fp32)."""
    n = s1.shape[-1]
    v1, i1 = s1.topk(knn, dim=-1)
    v2, i2 = s2.topk(knn, dim=-1)
    cand = (v1.unsqueeze(-1) + v2.unsqueeze(-2)).flatten(-2)
    ids = (i1.unsqueeze(-1) * n + i2.unsqueeze(-2)).flatten(-2)
    best, where = cand.topk(knn, dim=-1)
    slots = ids.gather(-1, where)
    w = best.float().softmax(-1)
    if lookups is not None:
        lookups.append(slots)
    return (w.unsqueeze(-1) * values.float()[slots]).sum(dim=(1, 2))


# ---- XLM ----------------------------------------------------------------------------------------

def xlm_params(**overrides) -> dict:
    p = dict(emb_dim=32, n_layers=2, n_heads=4, dropout=0.1, attention_dropout=0.1, gelu_activation=False,
             share_inout_emb=True, sinusoidal_embeddings=False, use_memory=True, asm=False,
             mem_enc_positions=[(0, "in"), (1, "after")], mem_dec_positions=[], mem_heads=2, mem_knn=4,
             mem_n_keys=8, mem_k_dim=8, mem_v_dim=-1, mem_query_batchnorm=True, mem_shuffle_indices=False,
             mem_modulo_size=-1, mem_normalize_query=False, mem_temperature=1, mem_product_quantization=True)
    p.update(overrides)
    return p


def xlm_dictionary(vocab: int):
    """XLM's dictionary order: <s> </s> <pad> <unk> <special0..9>, then the words."""
    specials = ["<s>", "</s>", "<pad>", "<unk>"] + [f"<special{i}>" for i in range(10)]
    return specials + [f"w{i}" for i in range(len(specials), vocab)]


def xlm_checkpoint(path: Path, vocab=64, positions=80, params=None, flat_keys=False, words=None):
    """words: the dictionary, id order (default xlm_dictionary(vocab)); its size is the vocab."""
    words = words or xlm_dictionary(vocab)
    vocab = len(words)
    params = params or xlm_params()
    d, L, H = params["emb_dim"], params["n_layers"], params["n_heads"]
    w = Weights(1)
    w.matrix("embeddings.weight", vocab, d)
    w.table("position_embeddings.weight", positions, d, scale=0.5)
    w.norm_weight("layer_norm_emb.weight", d), w.bias("layer_norm_emb.bias", d)
    for i in range(L):
        for lin in ("q_lin", "k_lin", "v_lin", "out_lin"):
            w.matrix(f"attentions.{i}.{lin}.weight", d, d), w.bias(f"attentions.{i}.{lin}.bias", d)
        for ln in ("layer_norm1", "layer_norm2"):
            w.norm_weight(f"{ln}.{i}.weight", d), w.bias(f"{ln}.{i}.bias", d)
        w.matrix(f"ffns.{i}.lin1.weight", 4 * d, d), w.bias(f"ffns.{i}.lin1.bias", 4 * d)
        w.matrix(f"ffns.{i}.lin2.weight", d, 4 * d), w.bias(f"ffns.{i}.lin2.bias", d)
    mh, n, kd = params["mem_heads"], params["mem_n_keys"], params["mem_k_dim"]
    for layer, where in params["mem_enc_positions"]:
        p = f"memories.{layer}_{where}."
        w.table(p + "keys", *((mh, n, kd) if flat_keys else (mh, 2, n, kd // 2)), scale=1 / math.sqrt(kd // 2))
        w.table(p + "values.weight", n * n, d, scale=d ** -0.5)
        w.matrix(p + "query_proj.query_mlps.0.weight", mh * kd, d), w.bias(p + "query_proj.query_mlps.0.bias", mh * kd)
        if params["mem_query_batchnorm"]:
            w.batchnorm(p + "query_proj.query_mlps.1.", mh * kd)
    w.state["pred_layer.proj.weight"] = w.state["embeddings.weight"]  # share_inout_emb
    w.bias("pred_layer.proj.bias", vocab)
    s = dict(w.state)
    dico = dict(enumerate(words))
    torch.save({"model": {"module." + k: v for k, v in s.items()}, "params": argparse.Namespace(**params),
                "dico_id2word": dico, "dico_word2id": {v: k for k, v in dico.items()},
                "dico_counts": {w: 1 for w in words}}, path)

    def memory(x, p, lookups):
        q = linear(x, s, p + "query_proj.query_mlps.0")
        bn = p + "query_proj.query_mlps.1."
        if bn + "running_mean" in s:
            q = (q - s[bn + "running_mean"]) / torch.sqrt(s[bn + "running_var"] + 1e-5) * s[bn + "weight"] + s[bn + "bias"]
        q = q.view(-1, mh, kd)  # head-major: [head][half][k_dim/2]
        keys = s[p + "keys"]
        s1 = torch.einsum("thd,hnd->thn", q[..., :kd // 2], keys[:, 0])
        s2 = torch.einsum("thd,hnd->thn", q[..., kd // 2:], keys[:, 1])
        return product_keys(s1, s2, s[p + "values.weight"], params["mem_knn"], lookups)

    def forward(tokens, lookups=None):
        T = tokens.shape[0]
        ln = lambda x, key: layer_norm(x, s[key + ".weight"], s[key + ".bias"], 1e-12)
        x = ln(s["embeddings.weight"][tokens] + s["position_embeddings.weight"][:T], "layer_norm_emb")
        act = F.gelu if params["gelu_activation"] else F.relu
        mems = {f"{l}_{w}" for l, w in params["mem_enc_positions"]}
        for i in range(L):
            heads = lambda t: t.view(T, H, d // H).transpose(0, 1)
            q, k, v = (heads(linear(x, s, f"attentions.{i}.{n}")) for n in ("q_lin", "k_lin", "v_lin"))
            x = ln(x + linear(causal_attention(q, k, v), s, f"attentions.{i}.out_lin"), f"layer_norm1.{i}")
            if f"{i}_in" in mems:
                x = ln(x + memory(x, f"memories.{i}_in.", lookups), f"layer_norm2.{i}")
            else:
                f = linear(act(linear(x, s, f"ffns.{i}.lin1")), s, f"ffns.{i}.lin2")
                x = ln(x + f, f"layer_norm2.{i}")
            if f"{i}_after" in mems:
                x = x + memory(x, f"memories.{i}_after.", lookups)
        return linear(x, s, "pred_layer.proj")

    return path, forward


# ---- Memory Layers at Scale ("lingua") ----------------------------------------------------------

def lingua_params(**pk) -> dict:
    productkey = dict(is_enabled=True, layers="0,2", mem_n_keys=8, mem_heads=2, mem_knn=4, mem_k_dim=16,
                      mem_v_dim=48, swilu_projection=True, value_fixed_lr=0.001, mem_share_values=True,
                      peer_variant=False)
    productkey.update(pk)
    return {"name": "tiny", "steps": 10,
            "model": {"dim": 32, "n_layers": 3, "n_heads": 4, "n_kv_heads": 2, "multiple_of": 16,
                      "ffn_dim_multiplier": None, "norm_eps": 1e-5, "rope_theta": 10000.0, "max_seqlen": 64,
                      "vocab_size": 64, "productkey_args": productkey},
            "data": {"seq_len": 64, "tokenizer": {"name": "sp", "path": "tokenizers/tiny.model"}}}


def lingua_checkpoint(step_dir: Path, params=None, gating=False):
    """<step_dir>/consolidated/consolidated.pth and <step_dir>/params.json."""
    params = params or lingua_params()
    m = params["model"]
    pk = m["productkey_args"]
    d, L, H, KV, vocab = m["dim"], m["n_layers"], m["n_heads"], m["n_kv_heads"], m["vocab_size"]
    hd = d // H
    hidden = m["multiple_of"] * math.ceil(int(2 * 4 * d / 3) / m["multiple_of"])
    mem_layers = [int(x) for x in pk["layers"].split(",")]
    mh, n, kd, vd = pk["mem_heads"], pk["mem_n_keys"], pk["mem_k_dim"], pk["mem_v_dim"]
    w = Weights(2)
    w.matrix("tok_embeddings.weight", vocab, d)
    shared = (0.5 * torch.randn(n * n, vd, generator=w.gen)).to(torch.bfloat16)
    for i in range(L):
        p = f"layers.{i}."
        w.matrix(p + "attention.wq.weight", H * hd, d), w.matrix(p + "attention.wk.weight", KV * hd, d)
        w.matrix(p + "attention.wv.weight", KV * hd, d), w.matrix(p + "attention.wo.weight", d, H * hd)
        w.norm_weight(p + "attention_norm.weight", d), w.norm_weight(p + "ffn_norm.weight", d)
        f = p + "feed_forward."
        if i in mem_layers:
            w.table(f + "keys", 2 * mh * n, kd // 2, scale=1 / math.sqrt(kd // 2))
            w.matrix(f + "query_proj.query_mlps.0.weight", mh * kd, d), w.bias(f + "query_proj.query_mlps.0.bias", mh * kd)
            w.state[f + "values.weight"] = shared.clone()  # the one table, saved under every memory layer
            w.matrix(f + "value_proj.weight", d, vd), w.bias(f + "value_proj.bias", d)
            w.matrix(f + "swilu_projection.weight", vd, d), w.bias(f + "swilu_projection.bias", vd)
            if gating:
                w.matrix(f + "gating.weight", 1, d), w.bias(f + "gating.bias", 1)
        else:
            w.matrix(f + "w1.weight", hidden, d), w.matrix(f + "w3.weight", hidden, d)
            w.matrix(f + "w2.weight", d, hidden)
    w.norm_weight("norm.weight", d)
    w.matrix("output.weight", vocab, d)
    s = dict(w.state)
    (step_dir / "consolidated").mkdir(parents=True, exist_ok=True)
    torch.save({"model": s, "optim": {}}, step_dir / "consolidated" / "consolidated.pth")
    (step_dir / "params.json").write_text(json.dumps(params))
    eps, theta = m["norm_eps"], m["rope_theta"]

    def rope_interleaved(x, T):
        """x [T, heads, hd]: pairs (2j, 2j+1) rotated as complex numbers by pos·theta^(-2j/hd)."""
        freqs = 1.0 / theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd)
        angles = torch.arange(T, dtype=torch.float64).unsqueeze(1) * freqs  # [T, hd/2]
        rot = torch.polar(torch.ones_like(angles), angles).to(torch.complex64)
        xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], hd // 2, 2))
        return torch.view_as_real(xc * rot.unsqueeze(1)).reshape(x.shape)

    def memory(x, f, lookups):
        q = linear(x, s, f + "query_proj.query_mlps.0").view(-1, mh, kd)
        keys = s[f + "keys"].view(mh, 2, n, kd // 2)  # flat [2·H·n, half] read as [H, 2, n, half]
        s1 = torch.einsum("thd,hnd->thn", q[..., :kd // 2], keys[:, 0])
        s2 = torch.einsum("thd,hnd->thn", q[..., kd // 2:], keys[:, 1])
        bag = product_keys(s1, s2, s[f + "values.weight"], pk["mem_knn"], lookups)
        return linear(bag * F.silu(linear(x, s, f + "swilu_projection")), s, f + "value_proj")

    def forward(tokens, lookups=None):
        T = tokens.shape[0]
        x = s["tok_embeddings.weight"][tokens]
        for i in range(L):
            p = f"layers.{i}."
            h = rms_norm(x, s[p + "attention_norm.weight"], eps)
            q = rope_interleaved((h @ s[p + "attention.wq.weight"].t()).view(T, H, hd), T)
            k = rope_interleaved((h @ s[p + "attention.wk.weight"].t()).view(T, KV, hd), T)
            v = (h @ s[p + "attention.wv.weight"].t()).view(T, KV, hd)
            k, v = k.repeat_interleave(H // KV, dim=1), v.repeat_interleave(H // KV, dim=1)
            a = causal_attention(q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1))
            x = x + a @ s[p + "attention.wo.weight"].t()
            h = rms_norm(x, s[p + "ffn_norm.weight"], eps)
            if i in mem_layers:
                x = x + memory(h, p + "feed_forward.", lookups)
            else:
                f = p + "feed_forward."
                x = x + (F.silu(h @ s[f + "w1.weight"].t()) * (h @ s[f + "w3.weight"].t())) @ s[f + "w2.weight"].t()
        return rms_norm(x, s["norm.weight"], eps) @ s["output.weight"].t()

    return step_dir, forward


# ---- lucidrains/product-key-memory inside a host transformer -------------------------------------

LUCIDRAINS_HOST = {"family": "lucidrains", "vocab_size": 64, "d_model": 32, "n_layers": 2, "max_seq_len": 64,
                   "bos_id": 1, "eos_id": 2, "dtype": "float32",
                   "norm": {"kind": "layernorm", "eps": 1e-5, "bias": True}, "block": "pre_norm",
                   "positions": {"kind": "learned", "max_positions": 64},
                   "attention": {"n_heads": 4, "n_kv_heads": 4, "head_dim": 8, "bias": False},
                   "ffn": {"kind": "gelu", "hidden": 64, "bias": True}, "lm_head": {"tied": False, "bias": False}}

# The host's own names for format 2's tensors (a pre-LN GPT in the package's example style).
LUCIDRAINS_TENSORS = {
    "tok_embeddings.weight": "token_emb.weight", "pos_embeddings.weight": "pos_emb.weight",
    "layers.{i}.attn_norm.weight": "layers.{i}.0.norm.weight", "layers.{i}.attn_norm.bias": "layers.{i}.0.norm.bias",
    "layers.{i}.attn.wq.weight": "layers.{i}.0.fn.to_q.weight", "layers.{i}.attn.wk.weight": "layers.{i}.0.fn.to_k.weight",
    "layers.{i}.attn.wv.weight": "layers.{i}.0.fn.to_v.weight", "layers.{i}.attn.wo.weight": "layers.{i}.0.fn.to_out.weight",
    "layers.{i}.ffn_norm.weight": "layers.{i}.1.norm.weight", "layers.{i}.ffn_norm.bias": "layers.{i}.1.norm.bias",
    "layers.{i}.ffn.w1.weight": "layers.{i}.1.fn.0.weight", "layers.{i}.ffn.w1.bias": "layers.{i}.1.fn.0.bias",
    "layers.{i}.ffn.w2.weight": "layers.{i}.1.fn.2.weight", "layers.{i}.ffn.w2.bias": "layers.{i}.1.fn.2.bias",
    "norm.weight": "norm.weight", "norm.bias": "norm.bias", "lm_head.weight": "to_logits.weight",
}
PKM_LAYER, PKM_HEADS, PKM_KEYS, PKM_DIM_HEAD, PKM_TOPK = 1, 4, 12, 4, 4


def lucidrains_checkpoint(path: Path, layout_path: Path, version="0.3", extra_keys=(), memory_options=None):
    """A host with a PKM replacing block 1's feed-forward under `layers.1.1.fn.`; version '0.3' (LayerNorm
    queries), '0.3bn' (0.3 with use_layernorm=False: a BatchNorm on each sub-query) or '0.1' (a BatchNorm on
    the whole query). Writes the state_dict to path and the layout JSON."""
    host = LUCIDRAINS_HOST
    d, L, V, P, H = host["d_model"], host["n_layers"], host["vocab_size"], 64, 4
    w = Weights({"0.3": 3, "0.3bn": 5, "0.1": 4}[version])
    w.matrix("token_emb.weight", V, d), w.table("pos_emb.weight", P, d, scale=0.5)
    pkm = f"layers.{PKM_LAYER}.1.fn."
    h, n = PKM_HEADS, PKM_KEYS
    dh = 2 * PKM_DIM_HEAD if version == "0.1" else PKM_DIM_HEAD  # 0.1's dim_head is twice 0.2's
    for i in range(L):
        p = f"layers.{i}."
        for x in ("to_q", "to_k", "to_v", "to_out"):
            w.matrix(p + f"0.fn.{x}.weight", d, d)
        for nrm in ("0.norm", "1.norm"):
            w.norm_weight(p + nrm + ".weight", d), w.bias(p + nrm + ".bias", d)
        if i != PKM_LAYER:
            w.matrix(p + "1.fn.0.weight", 64, d), w.bias(p + "1.fn.0.bias", 64)
            w.matrix(p + "1.fn.2.weight", d, 64), w.bias(p + "1.fn.2.bias", d)
    if version in ("0.3", "0.3bn"):
        w.matrix(pkm + "to_queries.weight", 2 * h * dh, d)
        if version == "0.3":
            w.norm_weight(pkm + "norm.weight", dh), w.bias(pkm + "norm.bias", dh)
        else:
            w.batchnorm(pkm + "norm.fn.", dh)
        w.table(pkm + "keys", h, n, 2, dh, scale=1 / math.sqrt(dh))
    else:
        w.matrix(pkm + "to_queries.weight", h * dh, d)
        w.batchnorm(pkm + "norm.fn.", h * dh)
        w.table(pkm + "keys", h, n, 2, dh // 2, scale=1 / math.sqrt(dh // 2))
    w.table(pkm + "values.weight", n * n, d, scale=d ** -0.5)
    w.norm_weight("norm.weight", d), w.bias("norm.bias", d)
    w.matrix("to_logits.weight", V, d)
    for key in extra_keys:
        w.matrix(pkm + key, d, d)
    s = dict(w.state)
    torch.save(s, path)
    memory = {"prefix": pkm, "layer": PKM_LAYER, "placement": "replace", **(memory_options or {})}
    layout_path.write_text(json.dumps({"config": host, "tensors": LUCIDRAINS_TENSORS, "memories": [memory]}, indent=1))

    def memory_forward(x, lookups):
        T = x.shape[0]
        q = x @ s[pkm + "to_queries.weight"].t()
        bn = pkm + "norm.fn."
        batchnorm = lambda q: (q - s[bn + "running_mean"]) / torch.sqrt(s[bn + "running_var"] + 1e-5) * \
            s[bn + "weight"] + s[bn + "bias"]
        if version == "0.3":
            q = q.view(T, 2, h, dh)  # half-major: (p h d)
            q = layer_norm(q, s[pkm + "norm.weight"], s[pkm + "norm.bias"], 1e-5)
        elif version == "0.3bn":
            q = batchnorm(q.view(T, 2, h, dh))  # one BatchNorm1d(dim_head) over every sub-query
        else:
            q = batchnorm(q).view(T, 2, h, dh // 2)  # chunk(2) of the query, each half [h][dh/2]
        dots = torch.einsum("tphd,hnpd->thpn", q, s[pkm + "keys"])
        return product_keys(dots[:, :, 0], dots[:, :, 1], s[pkm + "values.weight"], PKM_TOPK, lookups)

    def forward(tokens, lookups=None):
        T = tokens.shape[0]
        x = s["token_emb.weight"][tokens] + s["pos_emb.weight"][:T]
        for i in range(L):
            p = f"layers.{i}."
            a = layer_norm(x, s[p + "0.norm.weight"], s[p + "0.norm.bias"], 1e-5)
            heads = lambda t: t.view(T, H, d // H).transpose(0, 1)
            q, k, v = (heads(a @ s[p + f"0.fn.{n}.weight"].t()) for n in ("to_q", "to_k", "to_v"))
            x = x + causal_attention(q, k, v) @ s[p + "0.fn.to_out.weight"].t()
            f = layer_norm(x, s[p + "1.norm.weight"], s[p + "1.norm.bias"], 1e-5)
            if i == PKM_LAYER:
                x = x + memory_forward(f, lookups)
            else:
                x = x + linear(F.gelu(linear(f, s, p + "1.fn.0")), s, p + "1.fn.2")
        x = layer_norm(x, s["norm.weight"], s["norm.bias"], 1e-5)
        return x @ s["to_logits.weight"].t()

    return path, forward


# ---- building every converted test model, with goldens for the C++ engine -----------------------

def convert(argv):
    from training.convert.__main__ import run
    lines = []
    model = run([str(a) for a in argv], log=lines.append)
    return model, lines


def build_all(tmp: Path):
    """name -> (converted model directory, source forward, reference model, printed lines)."""
    out = {}
    src, fwd = xlm_checkpoint(tmp / "xlm.pth")
    out["xlm"] = (tmp / "out/xlm", fwd) + convert(["xlm", src, "--out", tmp / "out/xlm"])
    step = tmp / "lingua/checkpoints/0000000010"
    src, fwd = lingua_checkpoint(step)
    out["lingua"] = (tmp / "out/lingua", fwd) + convert(["lingua", step, "--out", tmp / "out/lingua"])
    for version in ("0.3", "0.3bn", "0.1"):
        name = f"lucidrains_{version.replace('.', '')}"
        src, fwd = lucidrains_checkpoint(tmp / f"{name}.pt", tmp / f"{name}.json", version)
        out[name] = (tmp / f"out/{name}", fwd) + convert(
            ["lucidrains", src, "--layout", tmp / f"{name}.json", "--topk", PKM_TOPK, "--out", tmp / f"out/{name}"])
    return out
