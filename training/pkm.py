"""Product-key memory layer (Lample et al., 2019) and its variants (docs/model-format.md).

Per token x (dim d), per head h:
    q_h        = (W_q x [+ b_q])[h]                  # k_dim; a training BatchNorm is folded into W_q at export
    q1, q2     = halves of q_h                       # k_dim / 2 each; each normed when query_norm is layernorm
    s1, s2     = K1_h q1, K2_h q2                    # n_keys scores each
    (v1, i1)   = top-k of s1; (v2, i2) = top-k of s2
    candidates = v1[a] + v2[b] with slot id i1[a] * n_keys + i2[b]   (k*k of them)
    (s, ids)   = top-k of the candidates; w = softmax(s) in fp32
bag = sum_h sum_j w_hj * V[ids_hj]                   # heads summed, no 1/H; V widened to fp32
out = bag                                            # output "sum" (ProductKeyMemory)
out = value_proj(bag * silu(swilu(x)))               # output "memory_plus" (MemoryPlus)

The value table V is a Parameter handed in by the model, so memories that name the same table
share one Parameter; it may be stored narrower than the model (Memory+ keeps bf16 values).

Tie rule (shared with the C++ and CUDA kernels): every top-k orders by score descending,
then by index ascending, where the index is the sub-key index for the half top-k and the
slot id for the product top-k. Under this rule the product top-k equals the top-k over all
n_keys**2 slots, ties included (see tests/training/test_pkm.py).

In training mode torch.topk is used (ties have probability zero with float weights and
torch.topk is much faster); in eval mode the ordered, tie-exact selection is used.
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


def topk_ordered(scores: torch.Tensor, index: torch.Tensor, k: int):
    """Top-k along the last dim ordered by (score desc, index asc).

    scores, index: [..., n]; index values are unique along the last dim.
    Returns (values [..., k], index [..., k]).
    """
    by_index = torch.argsort(index, dim=-1)
    scores = torch.gather(scores, -1, by_index)
    index = torch.gather(index, -1, by_index)
    order = torch.sort(scores, dim=-1, descending=True, stable=True).indices[..., :k]
    return torch.gather(scores, -1, order), torch.gather(index, -1, order)


def product_key_lookup(q: torch.Tensor, keys: torch.Tensor, knn: int, exact_ties: bool = True):
    """q [N, heads, k_dim] fp32, keys [heads, 2, n_keys, k_dim/2] ->
    (slot ids [N, heads, knn] int64, softmax weights [N, heads, knn] fp32)."""
    half, n = q.shape[-1] // 2, keys.shape[2]
    s1 = torch.einsum("nhd,hkd->nhk", q[..., :half], keys[:, 0])  # [N, H, n_keys]
    s2 = torch.einsum("nhd,hkd->nhk", q[..., half:], keys[:, 1])
    if exact_ties:
        ar = torch.arange(n, device=s1.device).expand_as(s1)
        v1, i1 = topk_ordered(s1, ar, knn)
        v2, i2 = topk_ordered(s2, ar, knn)
    else:
        v1, i1 = s1.topk(knn, dim=-1)
        v2, i2 = s2.topk(knn, dim=-1)
    cand = (v1.unsqueeze(-1) + v2.unsqueeze(-2)).flatten(-2)              # [N, H, k*k]
    cand_ids = (i1.unsqueeze(-1) * n + i2.unsqueeze(-2)).flatten(-2)
    if exact_ties:
        scores, ids = topk_ordered(cand, cand_ids, knn)
    else:
        scores, best = cand.topk(knn, dim=-1)
        ids = torch.gather(cand_ids, -1, best)
    return ids, F.softmax(scores.float(), dim=-1)


def new_value_table(n_keys: int, v_dim: int, dtype: torch.dtype = torch.float32) -> nn.Parameter:
    """[n_keys**2, v_dim], normal with std v_dim**-0.5 like XLM."""
    return nn.Parameter(torch.empty(n_keys * n_keys, v_dim).normal_(0.0, v_dim ** -0.5).to(dtype))


class ProductKeyMemory(nn.Module):
    """The paper's memory: output "sum", the bag itself."""

    def __init__(self, d_model: int, heads: int, knn: int, n_keys: int, k_dim: int, v_dim: int,
                 query_batchnorm: bool = False, *, query_bias: bool = True, query_norm: str = "none",
                 query_norm_eps: float = 1e-5, values: Optional[nn.Parameter] = None,
                 values_dtype: torch.dtype = torch.float32):
        super().__init__()
        self.heads, self.knn, self.n_keys, self.k_dim, self.v_dim = heads, knn, n_keys, k_dim, v_dim
        half = k_dim // 2
        self.query = nn.Linear(d_model, heads * k_dim, bias=query_bias)
        self.query_bn = nn.BatchNorm1d(heads * k_dim) if query_batchnorm else None
        # One LayerNorm shared by all 2*heads sub-queries (lucidrains >= 0.2).
        self.query_norm = nn.LayerNorm(half, eps=query_norm_eps) if query_norm == "layernorm" else None
        # Sub-keys [heads, 2, n_keys, k_dim/2], uniform on +-1/sqrt(k_dim/2) like XLM.
        bound = 1.0 / math.sqrt(half)
        self.keys = nn.Parameter(torch.empty(heads, 2, n_keys, half).uniform_(-bound, bound))
        self.values = values if values is not None else new_value_table(n_keys, v_dim, values_dtype)

    def project_query(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, d] -> q [N, heads, k_dim]."""
        q = self.query(x)
        if self.query_bn is not None:
            q = self.query_bn(q)
        q = q.view(-1, self.heads, self.k_dim)
        if self.query_norm is not None:
            q = self.query_norm(q.view(-1, self.heads, 2, self.k_dim // 2)).view(-1, self.heads, self.k_dim)
        return q

    def lookup(self, x: torch.Tensor):
        """x [N, d] -> (slot ids [N, heads, knn] int64, softmax weights [N, heads, knn] fp32)."""
        return product_key_lookup(self.project_query(x).float(), self.keys.float(), self.knn,
                                  exact_ties=not self.training)

    def bag(self, ids: torch.Tensor, w: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """sum over heads and knn of w * values[ids]: [N, v_dim] in dtype (the activations' type).

        The table is widened to dtype first, so in the fp32 reference a bf16 table is summed in fp32.
        """
        n = ids.shape[0]
        table = self.values.to(dtype)
        return F.embedding_bag(ids.view(n, -1), table, per_sample_weights=w.view(n, -1).to(dtype), mode="sum")

    def output(self, x: torch.Tensor, bag: torch.Tensor) -> torch.Tensor:
        return bag

    def forward(self, x: torch.Tensor, return_lookup: bool = False):
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        ids, w = self.lookup(x)
        out = self.output(x, self.bag(ids, w, x.dtype))
        out = out.view(*shape[:-1], out.shape[-1])
        if return_lookup:
            return out, ids.view(*shape[:-1], self.heads, self.knn), w.view(*shape[:-1], self.heads, self.knn)
        return out

    @torch.no_grad()
    def fold_batchnorm(self):
        """Folds the eval-mode query BatchNorm into the query Linear and removes it."""
        bn = self.query_bn
        if bn is None:
            return
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        self.query.weight.mul_(scale.unsqueeze(1))
        self.query.bias.copy_((self.query.bias - bn.running_mean) * scale + bn.bias)
        self.query_bn = None


class MemoryPlus(ProductKeyMemory):
    """Memory Layers at Scale's output: value_proj(bag * silu(swilu(x))), v_dim free of d_model."""

    def __init__(self, d_model: int, heads: int, knn: int, n_keys: int, k_dim: int, v_dim: int,
                 query_batchnorm: bool = False, *, output_bias: bool = True, **kwargs):
        super().__init__(d_model, heads, knn, n_keys, k_dim, v_dim, query_batchnorm, **kwargs)
        self.swilu = nn.Linear(d_model, v_dim, bias=output_bias)
        self.value_proj = nn.Linear(v_dim, d_model, bias=output_bias)

    def output(self, x: torch.Tensor, bag: torch.Tensor) -> torch.Tensor:
        return self.value_proj(bag * F.silu(self.swilu(x)))


def build_memory(mem, d_model: int, tables: dict, values_dtype: torch.dtype) -> ProductKeyMemory:
    """The module for one config.Memory. tables maps value table names to their Parameter: the
    memory reads the one there, or creates it (in values_dtype) and adds it for the next."""
    common = dict(query_bias=mem.query_bias, query_norm=mem.query_norm, query_norm_eps=mem.query_norm_epsilon,
                  values=tables.get(mem.values_name), values_dtype=values_dtype)
    args = (d_model, mem.heads, mem.knn, mem.n_keys, mem.k_dim, mem.v_dim, mem.query_batchnorm)
    if mem.output == "memory_plus":
        module = MemoryPlus(*args, output_bias=mem.output_bias, **common)
    else:
        module = ProductKeyMemory(*args, **common)
    tables[mem.values_name] = module.values
    return module
