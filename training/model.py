"""Reference PKM-augmented language model: the spec the C++ and CUDA engines must match.

It computes docs/model-format.md's "The computation, format 2", built from small parts:
  Norm          LayerNorm (with or without bias) or RMSNorm, statistics in fp32
  Attention     causal, GQA (query head h reads kv head h // (n_heads // n_kv_heads)),
                RoPE with the rotate-half pairing (dim j with dim j + head_dim/2), or none
  FeedForward   gelu (erf), gelu_tanh, relu or swiglu
  memories      training/pkm.py, placed in a block as replace | parallel | after
  Block         pre_norm:  x = x + Attn(attn_norm(x));  x = x + F(ffn_norm(x))
                post_norm: x = attn_norm(x + Attn(x));  x = ffn_norm(x + F(x))
                with F = FFN, memory (replace) or FFN + memory (parallel); then x = x + M_after(x)
  LMHead        its own matrix or the token embedding (tied), optional bias

Parameters are fp32 (the dtype of config.json is the storage type) except value tables with a
values_dtype of their own, which stay in that type as Memory+ trains them.
"""
import math
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from training.config import Config, ModelConfig
from training.pkm import ProductKeyMemory, build_memory

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class Norm(nn.Module):
    """LayerNorm (biased variance, optional bias) or RMSNorm (weight only)."""

    def __init__(self, kind: str, dim: int, eps: float, bias: bool):
        super().__init__()
        self.kind, self.eps = kind, eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype, x = x.dtype, x.float()
        if self.kind == "layernorm":
            y = F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)
        else:
            y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight
        return y.to(dtype)


def make_norm(cfg: Config) -> Norm:
    return Norm(cfg.norm.kind, cfg.d_model, cfg.norm.eps, cfg.norm.bias)


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
    def __init__(self, cfg: Config):
        super().__init__()
        a, d = cfg.attention, cfg.d_model
        self.n_heads, self.n_kv_heads, self.head_dim = a.n_heads, a.n_kv_heads, a.head_dim
        self.theta = cfg.positions.theta if cfg.positions.kind == "rope" else None
        self.wq = nn.Linear(d, a.n_heads * a.head_dim, bias=a.bias)
        self.wk = nn.Linear(d, a.n_kv_heads * a.head_dim, bias=a.bias)
        self.wv = nn.Linear(d, a.n_kv_heads * a.head_dim, bias=a.bias)
        self.wo = nn.Linear(a.n_heads * a.head_dim, d, bias=a.bias)

    def forward(self, x: torch.Tensor, positions: torch.Tensor, cache: Optional[dict] = None) -> torch.Tensor:
        """cache, if given, holds this layer's past keys/values ("k", "v": [B, n_kv_heads, past, hd]) and is extended."""
        B, T, _ = x.shape
        split = lambda t, heads: t.view(B, T, heads, self.head_dim).transpose(1, 2)
        q, k, v = split(self.wq(x), self.n_heads), split(self.wk(x), self.n_kv_heads), split(self.wv(x), self.n_kv_heads)
        if self.theta is not None:
            cos, sin = rope_tables(self.head_dim, positions, self.theta)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        past = 0
        if cache is not None:
            if "k" in cache:
                past = cache["k"].shape[2]
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        # GQA: each kv head serves a group of consecutive query heads.
        group = self.n_heads // self.n_kv_heads
        if group > 1:
            k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        # Scale q rather than the [T, T] scores: same result, fewer operations.
        att = (q * (1.0 / math.sqrt(self.head_dim))) @ k.transpose(-2, -1)
        if T > 1:
            att = att + causal_mask(past + T, att.device)[past:]
        att = att.softmax(dim=-1)
        return self.wo((att @ v).transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))


ACTIVATIONS = {"gelu": F.gelu, "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"), "relu": F.relu}


class FeedForward(nn.Module):
    """w2(act(w1 h)), or swiglu's w2(silu(w1 h) * w3 h)."""

    def __init__(self, cfg: Config):
        super().__init__()
        f, d = cfg.ffn, cfg.d_model
        self.kind = f.kind
        self.w1 = nn.Linear(d, f.hidden, bias=f.bias)
        self.w2 = nn.Linear(f.hidden, d, bias=f.bias)
        self.w3 = nn.Linear(d, f.hidden, bias=f.bias) if f.kind == "swiglu" else None

    def forward(self, x):
        if self.w3 is not None:
            return self.w2(F.silu(self.w1(x)) * self.w3(x))
        return self.w2(ACTIVATIONS[self.kind](self.w1(x)))


def table_dtype(cfg: Config, mem) -> torch.dtype:
    """fp32, unless the table is stored in a type of its own (then it is kept and trained in it)."""
    own = cfg.values_dtype(mem)
    return TORCH_DTYPES[own] if own != cfg.dtype else torch.float32


def read_memory(memory: ProductKeyMemory, h: torch.Tensor, lookups: Optional[list]) -> torch.Tensor:
    if lookups is None:
        return memory(h)
    out, ids, w = memory(h, return_lookup=True)
    lookups.append((ids, w))
    return out


class Block(nn.Module):
    def __init__(self, cfg: Config, layer: int, tables: Dict[str, nn.Parameter]):
        super().__init__()
        inner, after = cfg.layer_memories(layer)
        self.post_norm = cfg.block == "post_norm"
        self.attn_norm = make_norm(cfg)
        self.attn = Attention(cfg)
        self.ffn_norm = make_norm(cfg)
        self.ffn = None if inner is not None and inner.placement == "replace" else FeedForward(cfg)
        self.pkm = build_memory(inner, cfg.d_model, tables, table_dtype(cfg, inner)) if inner else None
        self.pkm_after = build_memory(after, cfg.d_model, tables, table_dtype(cfg, after)) if after else None

    def feed_forward(self, h: torch.Tensor, lookups: Optional[list]) -> torch.Tensor:
        """F(h): the FFN, the memory (replace) or both (parallel), reading the same h."""
        out = self.ffn(h) if self.ffn is not None else 0
        if self.pkm is not None:
            out = out + read_memory(self.pkm, h, lookups)
        return out

    def forward(self, x, positions, lookups: Optional[list] = None, cache: Optional[dict] = None):
        if self.post_norm:
            x = self.attn_norm(x + self.attn(x, positions, cache))
            x = self.ffn_norm(x + self.feed_forward(x, lookups))
        else:
            x = x + self.attn(self.attn_norm(x), positions, cache)
            x = x + self.feed_forward(self.ffn_norm(x), lookups)
        if self.pkm_after is not None:
            x = x + read_memory(self.pkm_after, x, lookups)  # no norm: XLM's "after" memory
        return x


class LMHead(nn.Module):
    """logits = x . headT (+ bias); head is the token embedding when tied."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.weight = None if cfg.lm_head.tied else nn.Parameter(torch.empty(cfg.vocab_size, cfg.d_model))
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size)) if cfg.lm_head.bias else None

    def forward(self, x: torch.Tensor, tok_embeddings: torch.Tensor) -> torch.Tensor:
        logits = x @ (tok_embeddings if self.weight is None else self.weight).t()
        return logits if self.bias is None else logits + self.bias


class PKMTransformer(nn.Module):
    def __init__(self, cfg: Union[Config, ModelConfig]):
        super().__init__()
        if isinstance(cfg, ModelConfig):
            cfg = cfg.to_v2()
        self.cfg = cfg
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.d_model)
        learned = cfg.positions.kind == "learned"
        self.pos_embeddings = nn.Embedding(cfg.positions.max_positions, cfg.d_model) if learned else None
        self.emb_norm = make_norm(cfg) if cfg.embedding_norm else None
        # One Parameter per distinct table name: memories naming the same table share it.
        tables = {}
        self.layers = nn.ModuleList(Block(cfg, i, tables) for i in range(cfg.n_layers))
        self.norm = make_norm(cfg) if cfg.final_norm else None
        self.lm_head = LMHead(cfg)
        self._init_weights()
        self._check_table_names()

    def _init_weights(self):
        tables = {id(p) for p in self.value_tables().values()}
        for name, p in self.named_parameters():
            if name.endswith(".keys") or id(p) in tables:
                continue  # XLM initialisation, set in training/pkm.py
            if p.dim() >= 2:
                nn.init.normal_(p, 0.0, 0.02)
                if name.endswith("wo.weight") or name.endswith("w2.weight") or name.endswith("value_proj.weight"):
                    p.data.mul_(1.0 / math.sqrt(2 * self.cfg.n_layers))
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def _check_table_names(self):
        others = set(self.state_dict()) - {m.prefix + "values" for m in self.cfg.memories}
        for i, mem in enumerate(self.cfg.memories):
            if mem.values_name in others:
                raise ValueError(f"config: memories[{i}].values: {mem.values_name!r} is the name of another tensor")

    # ---- the memories, in the order forward() reports their lookups ----

    def memories(self):
        """[(layer, placement, module)]: by layer, the block's replace/parallel memory before its after memory."""
        out = []
        for i, block in enumerate(self.layers):
            inner, after = self.cfg.layer_memories(i)
            if inner is not None:
                out.append((i, inner.placement, block.pkm))
            if after is not None:
                out.append((i, "after", block.pkm_after))
        return out

    def pkm_modules(self):
        """[(layer, module)] in lookup order."""
        return [(i, m) for i, _, m in self.memories()]

    def value_tables(self) -> Dict[str, nn.Parameter]:
        """Value table name -> its one Parameter."""
        out = {}
        for mem in self.cfg.memories:
            block = self.layers[mem.layer]
            out[mem.values_name] = (block.pkm_after if mem.placement == "after" else block.pkm).values
        return out

    @torch.no_grad()
    def fold_batchnorm(self):
        """Folds every training query BatchNorm into its query Linear: the model becomes its export."""
        for _, pkm in self.pkm_modules():
            pkm.fold_batchnorm()
        for mem in self.cfg.memories:
            mem.query_batchnorm = False

    # ---- tensors by their docs/model-format.md names ----

    def named_tensors(self) -> Dict[str, torch.Tensor]:
        """state_dict with each value table under its config name, once."""
        out = dict(self.state_dict())
        for mem in self.cfg.memories:
            out.pop(mem.prefix + "values")
        for name, table in self.value_tables().items():
            out[name] = table.detach()
        return out

    def load_named_tensors(self, tensors: Dict[str, torch.Tensor]):
        """The inverse of named_tensors (every tensor must be there)."""
        state = {k: v for k, v in tensors.items() if k not in self.value_tables()}
        for mem in self.cfg.memories:
            state[mem.prefix + "values"] = tensors[mem.values_name]
        self.load_state_dict(state, strict=True)

    def new_cache(self) -> List[dict]:
        return [{} for _ in self.layers]

    def forward(self, tokens: torch.Tensor, lookups: Optional[list] = None,
                cache: Optional[List[dict]] = None, last_only: bool = False) -> torch.Tensor:
        """tokens [B, T] int64 -> logits [B, T, vocab] fp32 ([B, 1, vocab] with last_only: a
        prefill that needs only the next token's distribution).

        lookups, if given, receives (ids [B, T, H, k], w [B, T, H, k]) per memory in the order of
        memories(). cache, if given (one dict per layer, from new_cache()), makes this call
        continue the sequences it holds: incremental decoding.
        """
        past = cache[0]["k"].shape[2] if cache and "k" in cache[0] else 0
        positions = torch.arange(past, past + tokens.shape[1], device=tokens.device)
        x = self.tok_embeddings(tokens)
        if self.pos_embeddings is not None:
            x = x + self.pos_embeddings(positions)
        if self.emb_norm is not None:
            x = self.emb_norm(x)
        for i, block in enumerate(self.layers):
            x = block(x, positions, lookups, cache[i] if cache is not None else None)
        if last_only:
            x = x[:, -1:]
        if self.norm is not None:
            x = self.norm(x)
        return self.lm_head(x, self.tok_embeddings.weight)
