"""Product-key memory layer (Lample et al., 2019), with XLM's semantics.

Per token x (dim d), per head h:
    q_h        = (W_q x + b_q)[h]                    # pkm_k_dim; BatchNorm folded into W_q at export
    q1, q2     = halves of q_h                       # pkm_k_dim / 2 each
    s1, s2     = K1_h q1, K2_h q2                    # pkm_n_keys scores each
    (v1, i1)   = top-k of s1; (v2, i2) = top-k of s2
    candidates = v1[a] + v2[b] with slot id i1[a] * pkm_n_keys + i2[b]   (k*k of them)
    (s, ids)   = top-k of the candidates; w = softmax(s) in fp32
out = sum_h sum_j w_hj * V[ids_hj]                   # heads summed, no 1/H, no output projection

Tie rule (shared with the C++ and CUDA kernels): every top-k orders by score descending,
then by index ascending, where the index is the sub-key index for the half top-k and the
slot id for the product top-k. Under this rule the product top-k equals the top-k over all
n_keys**2 slots, ties included (see tests/training/test_pkm.py).

In training mode torch.topk is used (ties have probability zero with float weights and
torch.topk is much faster); in eval mode the ordered, tie-exact selection is used.
"""
import math

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


class ProductKeyMemory(nn.Module):
    def __init__(self, d_model: int, heads: int, knn: int, n_keys: int, k_dim: int, v_dim: int,
                 query_batchnorm: bool = False):
        super().__init__()
        self.heads, self.knn, self.n_keys, self.k_dim, self.v_dim = heads, knn, n_keys, k_dim, v_dim
        self.query = nn.Linear(d_model, heads * k_dim, bias=True)
        self.query_bn = nn.BatchNorm1d(heads * k_dim) if query_batchnorm else None
        half = k_dim // 2
        # Sub-keys [heads, 2, n_keys, k_dim/2], uniform on +-1/sqrt(k_dim/2) like XLM.
        bound = 1.0 / math.sqrt(half)
        self.keys = nn.Parameter(torch.empty(heads, 2, n_keys, half).uniform_(-bound, bound))
        # Values [n_keys**2, v_dim], normal with std v_dim**-0.5 like XLM.
        self.values = nn.Parameter(torch.empty(n_keys * n_keys, v_dim).normal_(0.0, v_dim ** -0.5))

    def project_query(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, d] -> q [N, heads, k_dim]."""
        q = self.query(x)
        if self.query_bn is not None:
            q = self.query_bn(q)
        return q.view(-1, self.heads, self.k_dim)

    def lookup(self, x: torch.Tensor):
        """x [N, d] -> (slot ids [N, heads, knn] int64, softmax weights [N, heads, knn] fp32)."""
        q = self.project_query(x).float()
        half = self.k_dim // 2
        keys = self.keys.float()
        s1 = torch.einsum("nhd,hkd->nhk", q[..., :half], keys[:, 0])  # [N, H, n_keys]
        s2 = torch.einsum("nhd,hkd->nhk", q[..., half:], keys[:, 1])
        k, n = self.knn, self.n_keys
        if self.training:
            v1, i1 = s1.topk(k, dim=-1)
            v2, i2 = s2.topk(k, dim=-1)
        else:
            ar = torch.arange(n, device=s1.device).expand_as(s1)
            v1, i1 = topk_ordered(s1, ar, k)
            v2, i2 = topk_ordered(s2, ar, k)
        cand = (v1.unsqueeze(-1) + v2.unsqueeze(-2)).flatten(-2)              # [N, H, k*k]
        cand_ids = (i1.unsqueeze(-1) * n + i2.unsqueeze(-2)).flatten(-2)
        if self.training:
            scores, best = cand.topk(k, dim=-1)
            ids = torch.gather(cand_ids, -1, best)
        else:
            scores, ids = topk_ordered(cand, cand_ids, k)
        return ids, F.softmax(scores.float(), dim=-1)

    def forward(self, x: torch.Tensor, return_lookup: bool = False):
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        ids, w = self.lookup(x)
        n = x.shape[0]
        out = F.embedding_bag(ids.view(n, -1), self.values, per_sample_weights=w.view(n, -1).to(self.values.dtype),
                              mode="sum")
        out = out.view(*shape[:-1], self.v_dim).to(x.dtype)
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
