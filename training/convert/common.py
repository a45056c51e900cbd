"""What the converters share: the refusal error, state_dict key handling and weight rewrites."""
from typing import Dict, Iterable, Optional

import torch


class Refused(ValueError):
    """The source uses an option format 2 cannot serve; the message names it and says why."""


class Tensors:
    """A source state_dict read key by key, so that keys nobody used can be refused at the end
    (a tensor left behind is a part of the computation the converted model would miss)."""

    def __init__(self, state: Dict[str, torch.Tensor], source: str, ignored: Iterable[str] = ()):
        self.state, self.source = state, source
        self.used = set()
        self.ignored = tuple(ignored)  # key suffixes that hold no weight (buffers such as freqs_cis)

    def has(self, key: str) -> bool:
        return key in self.state

    def keys_under(self, prefix: str):
        return sorted(k for k in self.state if k.startswith(prefix))

    def get(self, key: str, shape: Optional[tuple] = None) -> torch.Tensor:
        if key not in self.state:
            raise ValueError(f"{self.source}: tensor {key!r} is missing")
        t = self.state[key]
        if shape is not None and tuple(t.shape) != tuple(shape):
            raise ValueError(f"{self.source}: tensor {key!r} is {list(t.shape)}, expected {list(shape)}")
        self.used.add(key)
        return t

    def maybe(self, key: str) -> Optional[torch.Tensor]:
        return self.get(key) if key in self.state else None

    def check_all_used(self):
        left = sorted(k for k in self.state if k not in self.used and not k.endswith(self.ignored))
        if left:
            raise Refused(f"{self.source}: tensors the conversion does not know how to serve: {left[:8]}"
                          f"{' ...' if len(left) > 8 else ''} ({len(left)} in all)")


def strip_prefix(state: Dict[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    """Drops `prefix` (DataParallel's `module.`) from the keys that start with it."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return dict(state)


def refuse_if(cond: bool, option: str, why: str):
    if cond:
        raise Refused(f"{option}: cannot be converted: {why}")


def fold_batchnorm(weight: torch.Tensor, bias: Optional[torch.Tensor], bn: Dict[str, torch.Tensor], eps: float):
    """Linear then eval-mode BatchNorm1d as one Linear: (W, b) scaled by weight/sqrt(var + eps),
    shifted by the BatchNorm's bias less its scaled running mean. Returns (W', b')."""
    scale = bn["weight"].double() / torch.sqrt(bn["running_var"].double() + eps)
    b = bias.double() if bias is not None else torch.zeros(weight.shape[0], dtype=torch.float64)
    new_w = weight.double() * scale.unsqueeze(1)
    new_b = (b - bn["running_mean"].double()) * scale + bn["bias"].double()
    return new_w.float(), new_b.float()


def interleaved_to_rotate_half(w: torch.Tensor, heads: int, head_dim: int) -> torch.Tensor:
    """Rows of wq/wk rotating pairs (2j, 2j+1) reordered for the rotate-half pairing (j, j + hd/2)
    within each head: new row j <- old row 2j, new row j + hd/2 <- old row 2j + 1."""
    rest = w.shape[1:]
    return w.reshape(heads, head_dim // 2, 2, *rest).transpose(1, 2).reshape(heads * head_dim, *rest)


def half_major_to_head_major(t: torch.Tensor, heads: int) -> torch.Tensor:
    """A query Linear's rows (or bias) ordered [half][head][d] reordered to [head][half][d]."""
    rest = t.shape[1:]
    return t.reshape(2, heads, -1, *rest).transpose(0, 1).reshape(t.shape)


def as_dict(params) -> dict:
    """argparse Namespace or dict -> dict."""
    return dict(params) if isinstance(params, dict) else dict(vars(params))
