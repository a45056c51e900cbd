"""lucidrains/product-key-memory PKM modules inside a host transformer -> format 2.

The package is a module, not a model: users save their own state_dict, so the host's layout
comes from a small JSON file (--layout, docs/converting.md):
    {"config":   {format 2 config.json fields of the host, without format_version,
                  architecture and memories},
     "tensors":  {"<format 2 name, {i} for the block>": "<source key, {i} likewise>", ...},
     "memories": [{"prefix": "<source prefix of a PKM module>", "layer": L,
                   "placement": "replace" | "parallel" | "after", "topk": k,
                   PKM constructor options that leave no tensor, e.g. "non_competitive_gates": true}, ...]}
Format 2 names missing from "tensors" are read under the same name. The shapes give heads,
num_keys and dim_head; topk cannot be read from them (--topk, or "topk" per memory).

Two versions of the module:
  >= 0.2   to_queries [2·H·d, dim] half-major ([half][head][d]), LayerNorm(d) `norm.*` on each
           sub-query (format 2 query_norm layernorm), keys [H, n, 2, d]
  <= 0.1.11 to_queries [H·dh, dim] half-major, BatchNorm1d over the whole query `norm.fn.*`
           (folded into the query, which gains a bias), keys [H, n, 2, dh/2]
  >= 0.2 with use_layernorm=False: BatchNorm1d(d) `norm.fn.*` on each sub-query, folded likewise
Both become head-major queries and keys [H, 2, n, d]; values [n², dim], output sum.
"""
import json
import re
from pathlib import Path

import torch

from training.config import ARCHITECTURE, FORMAT_VERSION, Config, Memory, _memory_json
from training.convert.common import Tensors, fold_batchnorm, half_major_to_head_major, refuse_if, strip_prefix
from training.convert.writer import Mapping
from training.model import PKMTransformer

LAYERNORM_EPS = 1e-5
BN_EPS = 1e-5

# Module options that leave tensors format 2 cannot use: key suffix -> (option, why).
REFUSED_KEYS = {
    "pre_layernorm.weight": ("pre_layernorm", "a LayerNorm on the memory's input only; format 2 feeds it the block's norm"),
    "output_norm.weight": ("norm_output", "a LayerNorm on the memory's output; format 2 adds the bag as it is"),
    "values.0.weight": ("concat_values_and_combine",
                        "per-head value sums concatenated and projected; format 2 sums weighted values over heads"),
}
# Module options that leave no tensor behind: the layout must declare them ("option": true).
REFUSED_FLAGS = {
    "non_competitive_gates": "sigmoid gates on the scores instead of the softmax; format 2 takes the softmax",
    "concat_values_and_combine": REFUSED_KEYS["values.0.weight"][1],
    "differentiable_topk": "a coordinate-descent soft top-k; format 2 selects the exact top-k",
}


def load(src: Path):
    state = torch.load(src, map_location="cpu")
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    elif isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    return strip_prefix(state, "module.")


MEMORY_FIELDS = {"prefix", "layer", "placement", "topk", *REFUSED_FLAGS}


def _memory(t: Tensors, spec: dict, topk, d: int, m: Mapping) -> Memory:
    unknown = sorted(set(spec) - MEMORY_FIELDS)
    if unknown:
        raise ValueError(f"layout: memory {spec.get('prefix')!r}: unknown fields {unknown} (known: {sorted(MEMORY_FIELDS)})")
    p, layer, placement = spec["prefix"], int(spec["layer"]), spec.get("placement", "replace")
    for suffix, (option, why) in REFUSED_KEYS.items():
        refuse_if(t.has(p + suffix), f"lucidrains {option} ({p}{suffix})", why)
    for option, why in REFUSED_FLAGS.items():
        refuse_if(bool(spec.get(option)), f"lucidrains {option}", why)
    knn = spec.get("topk", topk)
    if knn is None:
        raise ValueError(f"lucidrains memory {p}: topk is not in the weights; give --topk or \"topk\" in the layout")
    keys = t.get(p + "keys")
    heads, n_keys, two, half = keys.shape
    if two != 2:
        raise ValueError(f"{p}keys is {list(keys.shape)}, expected [heads, num_keys, 2, dim_head]")
    values = t.get(p + "values.weight", (n_keys ** 2, d))
    w = t.get(p + "to_queries.weight", (2 * heads * half, d))
    bias, how = None, []
    if t.has(p + "norm.fn.running_mean"):
        # A BatchNorm: <= 0.1.11's over the whole query [H·dim_head], or >= 0.2's use_layernorm=False
        # one over each sub-query [d], the same for every (half, head): tiled, it folds alike.
        bn = {k: t.get(p + "norm.fn." + k) for k in ("weight", "bias", "running_mean", "running_var")}
        t.maybe(p + "norm.fn.num_batches_tracked")
        width = bn["weight"].shape[0]
        if width == half:
            bn = {k: v.repeat(2 * heads) for k, v in bn.items()}
            how.append(">= 0.2 sub-query BatchNorm tiled over (half, head) and folded into the query Linear")
        elif width == 2 * heads * half:
            how.append("<= 0.1.11: query BatchNorm folded into the query Linear")
        else:
            raise ValueError(f"{p}norm.fn.weight has {width} channels, expected {half} or {2 * heads * half}")
        w, bias = fold_batchnorm(w, None, bn, BN_EPS)
        query_norm = "none"
    else:  # >= 0.2: one LayerNorm(dim_head) on every sub-query
        query_norm = "layernorm"
    dest = f"layers.{layer}.{'pkm_after' if placement == 'after' else 'pkm'}."
    group = f"memory {layer} {placement}"
    how.append("queries half-major -> head-major, keys [H, n, 2, d] -> [H, 2, n, d]")
    m.put(group, dest + "query.weight", half_major_to_head_major(w, heads), p + "to_queries.weight", "; ".join(how))
    if bias is not None:
        m.put(group, dest + "query.bias", half_major_to_head_major(bias, heads), p + "norm.fn.bias")
    if query_norm == "layernorm":
        m.put(group, dest + "query_norm.weight", t.get(p + "norm.weight", (half,)), p + "norm.weight")
        m.put(group, dest + "query_norm.bias", t.get(p + "norm.bias", (half,)), p + "norm.bias")
    m.put(group, dest + "keys", keys.permute(0, 2, 1, 3).contiguous(), p + "keys")
    m.put(group, dest + "values", values, p + "values.weight")
    return Memory(layer=layer, placement=placement, heads=heads, knn=int(knn), n_keys=n_keys, k_dim=2 * half,
                  v_dim=d, query_bias=bias is not None, query_norm=query_norm,
                  query_norm_eps=LAYERNORM_EPS if query_norm == "layernorm" else None)


def _pattern(name: str):
    """'layers.3.attn.wq.weight' -> ('layers.{i}.attn.wq.weight', 3); names outside blocks -> (name, None)."""
    match = re.match(r"layers\.(\d+)\.", name)
    if not match:
        return name, None
    return "layers.{i}." + name[match.end():], int(match.group(1))


def convert(src: Path, layout: Path, topk=None):
    state = load(src)
    spec = json.loads(Path(layout).read_text())
    for key in spec:
        if key not in ("config", "tensors", "memories"):
            raise ValueError(f"{layout}: unknown field {key!r} (known: config, tensors, memories)")
    t = Tensors(state, str(src), ignored=("num_batches_tracked",))
    host = dict(spec["config"])
    host.setdefault("family", "lucidrains")
    d = int(host["d_model"])
    m = Mapping()
    memories = [_memory(t, mem, topk, d, m) for mem in spec.get("memories", [])]
    if not memories:
        raise ValueError(f"{layout}: no memories: nothing of product-key-memory to convert")
    cfg = Config.from_json({"format_version": FORMAT_VERSION, "architecture": ARCHITECTURE, **host,
                            "memories": [_memory_json(x) for x in memories]})
    tensors = spec.get("tensors", {})
    for name in PKMTransformer(cfg).named_tensors():
        if name in m.tensors:
            continue
        pattern, layer = _pattern(name)
        source = tensors.get(name, tensors.get(pattern, pattern))
        source = source.format(i=layer) if layer is not None else source
        group = f"block {layer}" if layer is not None else "embeddings and head"
        m.put(group, name, t.get(source), source)
    t.check_all_used()
    return cfg, m


def add_arguments(ap):
    ap.add_argument("--layout", type=Path, required=True,
                    help="JSON file: the host transformer's config, tensor names and PKM prefixes")
    ap.add_argument("--topk", type=int, help="topk of every PKM module (not in the weights)")
