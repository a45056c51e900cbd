"""Writes a converted model: config + format 2 tensors -> a model directory via training/export.py.

The tensors are loaded into the reference model first, so a name or shape that format 2 does
not allow fails here, naming the tensor, before anything is written.
"""
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from training.config import Config
from training.convert.tokenizers import check_tokenizer_fits, install_tokenizer, tokenizer_kind
from training.export import export
from training.model import PKMTransformer


class Mapping:
    """Format 2 tensors with the source tensors each came from, grouped for the summary."""

    def __init__(self):
        self.tensors: Dict[str, torch.Tensor] = {}
        self.groups: Dict[str, List[Tuple[str, str, str]]] = {}
        self.files: Dict[str, Tuple[str, str]] = {}  # name -> (text, what it is, for the log)

    def put_file(self, name: str, text: str, what: str):
        """A file of the model directory besides the tensors (a vocabulary the source carries)."""
        self.files[name] = (text, what)

    def put(self, group: str, name: str, tensor: torch.Tensor, source: str, how: str = ""):
        if name in self.tensors:
            raise ValueError(f"convert: tensor {name!r} written twice")
        self.tensors[name] = tensor.detach()
        self.groups.setdefault(group, []).append((name, source, how))

    def summary(self) -> List[str]:
        lines = []
        for group, rows in self.groups.items():
            count = sum(self.tensors[n].numel() for n, _, _ in rows)
            hows = sorted({h for _, _, h in rows if h})
            lines.append(f"convert: {group}: {len(rows)} tensors, {count} parameters"
                         f" ({rows[0][1]} -> {rows[0][0]}{', ...' if len(rows) > 1 else ''})"
                         + (f"; {'; '.join(hows)}" if hows else ""))
        return lines


def describe(cfg: Config) -> str:
    """The one-line 'served as' description of a converted model."""
    a = cfg.attention
    mems = ", ".join(f"{m.placement}@{m.layer} H{m.heads} k{m.knn} n{m.n_keys}² k_dim {m.k_dim} v_dim {m.v_dim} "
                     f"{m.output}{' query layernorm' if m.query_norm == 'layernorm' else ''}"
                     f"{' values ' + m.values_name if m.values else ''} {cfg.values_dtype(m)}"
                     for m in cfg.memories)
    pos = cfg.positions.kind + (f" theta {cfg.positions.theta:g}" if cfg.positions.kind == "rope" else "")
    return (f"served as: family {cfg.family}, {cfg.n_layers} layers d_model {cfg.d_model} vocab {cfg.vocab_size}, "
            f"{cfg.block} {cfg.norm.kind} eps {cfg.norm.eps:g}, {pos}, attention {a.n_heads}/{a.n_kv_heads} heads "
            f"of {a.head_dim}, ffn {cfg.ffn.kind} {cfg.ffn.hidden}, head {'tied' if cfg.lm_head.tied else 'own'}"
            f"{' +bias' if cfg.lm_head.bias else ''}, memories [{mems}], {cfg.dtype}")


def write(cfg: Config, mapping: Mapping, out: Path, tokenizer: Optional[Path] = None, log=print) -> PKMTransformer:
    model = PKMTransformer(cfg)
    expected = model.named_tensors()
    missing = sorted(set(expected) - set(mapping.tensors))
    extra = sorted(set(mapping.tensors) - set(expected))
    if missing or extra:
        raise ValueError(f"convert: format 2 tensors missing {missing}, unexpected {extra}")
    for name, t in mapping.tensors.items():
        if tuple(t.shape) != tuple(expected[name].shape):
            raise ValueError(f"convert: tensor {name!r} is {list(t.shape)}, format 2 expects {list(expected[name].shape)}")
    model.load_named_tensors({k: v.to(expected[k].dtype) for k, v in mapping.tensors.items()})
    kind = tokenizer_kind(Path(tokenizer)) if tokenizer is not None else None
    if kind is not None:
        check_tokenizer_fits(kind, Path(tokenizer), mapping.files)
    export(model.eval(), None, Path(out))
    for name, (text, what) in mapping.files.items():
        (Path(out) / name).write_text(text)
        log(f"tokenizer: {what} -> {name}")
    if kind is not None:
        install_tokenizer(Path(tokenizer), Path(out), kind)
        log(f"tokenizer: {kind} from {tokenizer}")
    for line in mapping.summary():
        log(line)
    log(describe(cfg))
    return model
