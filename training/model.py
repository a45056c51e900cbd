"""Reference PKM-augmented language model: the spec the C++ and CUDA engines must match.

Decoder-only, pre-LayerNorm, RoPE (rotate-half pairing: dim i with dim i + head_dim/2),
causal multi-head attention with biases, exact (erf) GELU FFN, final LayerNorm, LM head tied
to the token embedding unless tie_embeddings is false. Layers listed in pkm_layers use a
product-key memory instead of (replace) or beside (parallel) their FFN; both read the same
normed input:  x = x + FFN(LN(x)) [+ PKM(LN(x))].
"""
import math
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from training.config import ModelConfig
from training.pkm import ProductKeyMemory


def rope_tables(head_dim: int, positions: torch.Tensor, theta: float):
    """cos, sin [T, head_dim/2] for integer positions, computed in float64 then cast (exact angles)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64, device=positions.device) / head_dim))
    angles = positions.to(torch.float64).unsqueeze(-1) * inv_freq
    return torch.cos(angles).float(), torch.sin(angles).float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, H, T, hd]; pairs (i, i + hd/2) are rotated by angle pos * theta^(-2i/hd)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


_MASKS = {}


def causal_mask(T: int, device=None) -> torch.Tensor:
    """[T, T] additive mask: 0 on and below the diagonal, -inf above (cached per T and device)."""
    key = (T, str(device))
    if key not in _MASKS:
        _MASKS[key] = torch.full((T, T), float("-inf"), device=device).triu(1)
    return _MASKS[key]


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.n_heads, self.head_dim, self.theta = cfg.n_heads, cfg.head_dim, cfg.rope_theta
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x: torch.Tensor, positions: torch.Tensor, cache: Optional[dict] = None) -> torch.Tensor:
        """cache, if given, holds this layer's past keys/values ("k", "v": [B, H, past, hd]) and is extended."""
        B, T, d = x.shape
        split = lambda t: t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        q, k, v = split(self.wq(x)), split(self.wk(x)), split(self.wv(x))
        cos, sin = rope_tables(self.head_dim, positions, self.theta)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        past = 0
        if cache is not None:
            if "k" in cache:
                past = cache["k"].shape[2]
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        # Scale q rather than the [T, T] scores: same result, fewer operations.
        att = (q * (1.0 / math.sqrt(self.head_dim))) @ k.transpose(-2, -1)
        if T > 1:
            att = att + causal_mask(past + T, att.device)[past:]
        att = att.softmax(dim=-1)
        return self.wo((att @ v).transpose(1, 2).reshape(B, T, d))


class FeedForward(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.w1 = nn.Linear(cfg.d_model, cfg.d_ff)
        self.w2 = nn.Linear(cfg.d_ff, cfg.d_model)

    def forward(self, x):
        return self.w2(F.gelu(self.w1(x)))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, has_pkm: bool):
        super().__init__()
        self.attn_norm = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
        self.attn = Attention(cfg)
        self.ffn_norm = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
        self.ffn = FeedForward(cfg) if not (has_pkm and cfg.pkm_mode == "replace") else None
        self.pkm = ProductKeyMemory(cfg.d_model, cfg.pkm_heads, cfg.pkm_knn, cfg.pkm_n_keys, cfg.pkm_k_dim,
                                    cfg.pkm_v_dim, cfg.pkm_query_batchnorm) if has_pkm else None

    def forward(self, x, positions, lookups: Optional[list] = None, cache: Optional[dict] = None):
        x = x + self.attn(self.attn_norm(x), positions, cache)
        h = self.ffn_norm(x)
        out = self.ffn(h) if self.ffn is not None else 0
        if self.pkm is not None:
            if lookups is not None:
                mem, ids, w = self.pkm(h, return_lookup=True)
                lookups.append((ids, w))
            else:
                mem = self.pkm(h)
            out = out + mem
        return x + out


class PKMTransformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(Block(cfg, i in cfg.pkm_layers) for i in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
        self.lm_head = None if cfg.tie_embeddings else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self._init_weights()

    def _init_weights(self):
        for name, p in self.named_parameters():
            if name.endswith(".pkm.keys") or name.endswith(".pkm.values"):
                continue  # XLM initialisation, set in ProductKeyMemory
            if p.dim() >= 2:
                nn.init.normal_(p, 0.0, 0.02)
                if name.endswith("wo.weight") or name.endswith("w2.weight"):
                    p.data.mul_(1.0 / math.sqrt(2 * self.cfg.n_layers))
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def new_cache(self) -> List[dict]:
        return [{} for _ in self.layers]

    def pkm_modules(self):
        return [(i, b.pkm) for i, b in enumerate(self.layers) if b.pkm is not None]

    def forward(self, tokens: torch.Tensor, lookups: Optional[list] = None,
                cache: Optional[List[dict]] = None) -> torch.Tensor:
        """tokens [B, T] int64 -> logits [B, T, vocab] fp32.

        lookups, if given, receives (ids, w) per PKM layer. cache, if given (one dict per layer,
        from new_cache()), makes this call continue the sequences it holds: incremental decoding.
        """
        past = cache[0]["k"].shape[2] if cache and "k" in cache[0] else 0
        positions = torch.arange(past, past + tokens.shape[1], device=tokens.device)
        x = self.tok_embeddings(tokens)
        for i, block in enumerate(self.layers):
            x = block(x, positions, lookups, cache[i] if cache is not None else None)
        x = self.norm(x)
        head = self.tok_embeddings.weight if self.lm_head is None else self.lm_head.weight
        return x @ head.t()
