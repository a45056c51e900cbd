"""Model configuration: the fields of config.json (docs/model-format.md documents each).

`Config` is format_version 2, nested like the JSON. `ModelConfig` is format_version 1, the flat
recipe the bundled model was trained with; it stays so that its checkpoints and train.py's
overrides keep working, and reads as the equivalent version 2 model through `to_v2()`.
`from_json` / `load` read either version and always return a `Config`.

Every error names the field by its JSON path (`memories[1].placement`), what was expected and
what was found.
"""
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

FORMAT_VERSION = 2
ARCHITECTURE = "pkm-transformer"
DTYPES = ("float32", "float16", "bfloat16")


class ConfigError(ValueError):
    def __init__(self, path: str, message: str):
        super().__init__(f"config: {path}: {message}")
        self.path = path


def _need(cond: bool, path: str, message: str):
    if not cond:
        raise ConfigError(path, message)


def _one_of(value, allowed, path: str):
    _need(value in allowed, path, f"expected one of {list(allowed)}, found {value!r}")


# ---- format_version 2 -------------------------------------------------------------------------

@dataclass
class Norm:
    kind: str = "layernorm"   # layernorm | rmsnorm
    eps: float = 1e-5
    bias: bool = True         # layernorm only


@dataclass
class Positions:
    kind: str = "rope"        # rope | learned | none
    theta: Optional[float] = None          # rope
    max_positions: Optional[int] = None    # learned

    FIELDS = {"rope": ("theta",), "learned": ("max_positions",), "none": ()}


@dataclass
class Attention:
    n_heads: int = 8
    n_kv_heads: int = 8
    head_dim: int = 32
    bias: bool = True


@dataclass
class FFN:
    kind: str = "gelu"        # gelu | gelu_tanh | relu | swiglu
    hidden: int = 1024
    bias: bool = True


@dataclass
class LMHead:
    tied: bool = True
    bias: bool = False


@dataclass
class Memory:
    layer: int = 0
    placement: str = "replace"   # replace | parallel | after
    heads: int = 4
    knn: int = 32
    n_keys: int = 128
    k_dim: int = 128
    v_dim: int = 256
    query_bias: bool = True
    query_norm: str = "none"     # none | layernorm
    query_norm_eps: Optional[float] = None  # layernorm only; default 1e-5
    output: str = "sum"          # sum | memory_plus
    output_bias: Optional[bool] = None  # memory_plus only (and required there)
    values: Optional[str] = None        # default: the memory's own table, default_values_name()
    values_dtype: Optional[str] = None  # default: the model's dtype
    # Training only, never in config.json: a BatchNorm on the query, folded at export.
    query_batchnorm: bool = False

    @property
    def prefix(self) -> str:
        """Where its tensors live: layers.{l}.pkm. or layers.{l}.pkm_after."""
        return f"layers.{self.layer}.{'pkm_after' if self.placement == 'after' else 'pkm'}."

    @property
    def values_name(self) -> str:
        return self.values or self.prefix + "values"

    @property
    def query_norm_epsilon(self) -> float:
        return 1e-5 if self.query_norm_eps is None else self.query_norm_eps

    @property
    def slots(self) -> int:
        return self.n_keys ** 2


@dataclass
class Config:
    vocab_size: int = 8000
    d_model: int = 256
    n_layers: int = 6
    max_seq_len: int = 512
    bos_id: int = 1
    eos_id: int = 2
    dtype: str = "float32"
    family: str = "pkmserve"
    norm: Norm = field(default_factory=Norm)
    block: str = "pre_norm"      # pre_norm | post_norm
    embedding_norm: bool = False
    final_norm: bool = True
    positions: Positions = field(default_factory=lambda: Positions("rope", theta=10000.0))
    attention: Attention = field(default_factory=Attention)
    ffn: FFN = field(default_factory=FFN)
    lm_head: LMHead = field(default_factory=LMHead)
    memories: List[Memory] = field(default_factory=list)

    def __post_init__(self):
        self.validate()

    def values_dtype(self, mem: Memory) -> str:
        return mem.values_dtype or self.dtype

    def layer_memories(self, layer: int):
        """(the block's replace/parallel memory or None, its after memory or None)."""
        inner = [m for m in self.memories if m.layer == layer and m.placement != "after"]
        after = [m for m in self.memories if m.layer == layer and m.placement == "after"]
        return (inner[0] if inner else None), (after[0] if after else None)

    def validate(self):
        for name in ("vocab_size", "d_model", "n_layers", "max_seq_len"):
            _need(getattr(self, name) >= 1, name, f"expected >= 1, found {getattr(self, name)}")
        for name in ("bos_id", "eos_id"):
            v = getattr(self, name)
            _need(0 <= v < self.vocab_size, name, f"expected in [0, vocab_size={self.vocab_size}), found {v}")
        _one_of(self.dtype, DTYPES, "dtype")
        _need(bool(self.family), "family", "expected a non-empty name")
        _one_of(self.norm.kind, ("layernorm", "rmsnorm"), "norm.kind")
        _need(self.norm.eps > 0, "norm.eps", f"expected > 0, found {self.norm.eps}")
        _need(not (self.norm.kind == "rmsnorm" and self.norm.bias), "norm.bias", "rmsnorm has no bias: expected false")
        _one_of(self.block, ("pre_norm", "post_norm"), "block")
        self._validate_positions()
        a = self.attention
        _need(a.n_heads >= 1, "attention.n_heads", f"expected >= 1, found {a.n_heads}")
        _need(a.n_kv_heads >= 1 and a.n_heads % a.n_kv_heads == 0, "attention.n_kv_heads",
              f"expected a divisor of n_heads={a.n_heads}, found {a.n_kv_heads}")
        _need(a.head_dim >= 1, "attention.head_dim", f"expected >= 1, found {a.head_dim}")
        _need(self.positions.kind != "rope" or a.head_dim % 2 == 0, "attention.head_dim",
              f"expected an even width under rope, found {a.head_dim}")
        _one_of(self.ffn.kind, ("gelu", "gelu_tanh", "relu", "swiglu"), "ffn.kind")
        _need(self.ffn.hidden >= 1, "ffn.hidden", f"expected >= 1, found {self.ffn.hidden}")
        for i, mem in enumerate(self.memories):
            self._validate_memory(mem, f"memories[{i}]")
        self._validate_memory_sets()

    def _validate_positions(self):
        p = self.positions
        _one_of(p.kind, tuple(Positions.FIELDS), "positions.kind")
        for name in ("theta", "max_positions"):
            wanted = name in Positions.FIELDS[p.kind]
            _need((getattr(p, name) is not None) == wanted, f"positions.{name}",
                  f"{'required' if wanted else 'not allowed'} when kind is {p.kind!r}")
        if p.kind == "rope":
            _need(p.theta > 0, "positions.theta", f"expected > 0, found {p.theta}")
        if p.kind == "learned":
            _need(p.max_positions >= self.max_seq_len, "positions.max_positions",
                  f"expected >= max_seq_len={self.max_seq_len}, found {p.max_positions}")

    def _validate_memory(self, m: Memory, path: str):
        _need(0 <= m.layer < self.n_layers, f"{path}.layer", f"expected in [0, n_layers={self.n_layers}), found {m.layer}")
        _one_of(m.placement, ("replace", "parallel", "after"), f"{path}.placement")
        for name in ("heads", "n_keys", "k_dim", "v_dim"):
            _need(getattr(m, name) >= 1, f"{path}.{name}", f"expected >= 1, found {getattr(m, name)}")
        _need(1 <= m.knn <= m.n_keys, f"{path}.knn", f"expected in [1, n_keys={m.n_keys}], found {m.knn}")
        _need(m.k_dim % 2 == 0, f"{path}.k_dim", f"expected an even width, found {m.k_dim}")
        _one_of(m.query_norm, ("none", "layernorm"), f"{path}.query_norm")
        if m.query_norm_eps is not None:
            _need(m.query_norm == "layernorm", f"{path}.query_norm_eps", "allowed only when query_norm is 'layernorm'")
            _need(m.query_norm_eps > 0, f"{path}.query_norm_eps", f"expected > 0, found {m.query_norm_eps}")
        _one_of(m.output, ("sum", "memory_plus"), f"{path}.output")
        if m.output == "sum":
            _need(m.v_dim == self.d_model, f"{path}.v_dim",
                  f"expected d_model={self.d_model} when output is 'sum', found {m.v_dim}")
        _need((m.output_bias is not None) == (m.output == "memory_plus"), f"{path}.output_bias",
              "required when output is 'memory_plus', not allowed otherwise")
        _need(m.values is None or bool(m.values), f"{path}.values", "expected a non-empty tensor name")
        if m.values_dtype is not None:
            _one_of(m.values_dtype, DTYPES, f"{path}.values_dtype")
        # The folded BatchNorm's shift becomes the query bias, so it needs one.
        _need(not m.query_batchnorm or m.query_bias, f"{path}.query_bias", "query_batchnorm needs a query bias")

    def _validate_memory_sets(self):
        seen, tables = {}, {}
        for i, m in enumerate(self.memories):
            slot = (m.layer, m.placement == "after")
            _need(slot not in seen, f"memories[{i}].placement",
                  f"block {m.layer} already has a{'n after' if slot[1] else ' replace/parallel'} memory "
                  f"(memories[{seen.get(slot)}])")
            seen[slot] = i
            shape = (m.n_keys, m.v_dim, self.values_dtype(m))
            first = tables.setdefault(m.values_name, (i, shape))
            _need(first[1] == shape, f"memories[{i}].values",
                  f"shares {m.values_name!r} with memories[{first[0]}], so n_keys, v_dim and values_dtype must agree: "
                  f"expected {first[1]}, found {shape}")

    # ---- JSON ----

    def to_json(self) -> dict:
        d = {"format_version": FORMAT_VERSION, "architecture": ARCHITECTURE}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "positions":
                value = {"kind": value.kind, **{k: getattr(value, k) for k in Positions.FIELDS[value.kind]}}
            elif f.name == "memories":
                value = [_memory_json(m) for m in value]
            elif dataclasses.is_dataclass(value):
                value = dataclasses.asdict(value)
            d[f.name] = value
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Config":
        _need(isinstance(d, dict), "config", f"expected an object, found {type(d).__name__}")
        version = d.get("format_version")
        if version == 1:
            return ModelConfig.from_json(d).to_v2(d.get("dtype"))
        _need(version == FORMAT_VERSION, "format_version", f"expected 1 or {FORMAT_VERSION}, found {version!r}")
        _need(d.get("architecture") == ARCHITECTURE, "architecture",
              f"expected {ARCHITECTURE!r}, found {d.get('architecture')!r}")
        body = {k: v for k, v in d.items() if k not in ("format_version", "architecture")}
        return _read(cls, body, "")


def _memory_json(m: Memory) -> dict:
    d = {k: v for k, v in dataclasses.asdict(m).items() if k != "query_batchnorm"}
    if m.query_norm == "layernorm":
        d["query_norm_eps"] = m.query_norm_epsilon  # written out, as the default is easy to miss
    for name in ("query_norm_eps", "output_bias", "values", "values_dtype"):
        if d[name] is None:
            del d[name]
    return d


# Fields a JSON object may omit, per dataclass (the doc's defaults); all others are required.
_OPTIONAL = {Config: {"embedding_norm", "final_norm"},
             Memory: {"query_norm_eps", "output_bias", "values", "values_dtype"},
             Positions: {"theta", "max_positions"}}  # which of these two belongs is checked by kind
_TRAINING_ONLY = {Memory: {"query_batchnorm"}}


def _read(cls, d, path: str):
    """Builds dataclass cls from JSON object d, checking names and types; nested objects recurse."""
    where = path or "config"
    _need(isinstance(d, dict), where, f"expected an object, found {type(d).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in _TRAINING_ONLY.get(cls, ())}
    prefix = f"{path}." if path else ""
    for name in d:
        _need(name in fields, prefix + name, f"unknown field (known: {sorted(fields)})")
    optional = _OPTIONAL.get(cls, set())
    for name in fields:
        _need(name in d or name in optional, prefix + name, "missing")
    kwargs = {}
    for name, value in d.items():
        kind, fpath = fields[name].type, prefix + name
        if kind in (Norm, Positions, Attention, FFN, LMHead):
            value = _read(kind, value, fpath)
        elif kind == List[Memory]:
            _need(isinstance(value, list), fpath, f"expected a list, found {type(value).__name__}")
            value = [_read(Memory, m, f"{fpath}[{i}]") for i, m in enumerate(value)]
        else:
            value = _check_type(value, kind, fpath)
        kwargs[name] = value
    return cls(**kwargs)


def _check_type(value, kind, path):
    base = {Optional[int]: int, Optional[float]: float, Optional[bool]: bool, Optional[str]: str}.get(kind, kind)
    if base is bool:
        ok = isinstance(value, bool)
    elif base is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, base)
    _need(ok, path, f"expected {base.__name__}, found {json.dumps(value)}")
    return float(value) if base is float else value


# The key under which train.py's checkpoints record a version 2 config's training-only option.
QUERY_BATCHNORM = "training_query_batchnorm"


def set_query_batchnorm(cfg: Config, on: bool) -> None:
    """The training-only query BatchNorm on every memory whose query has a bias (the fold needs one)."""
    for mem in cfg.memories:
        mem.query_batchnorm = on and mem.query_bias


def from_json(d: dict) -> Config:
    return Config.from_json(d)


def load(path: Path) -> Config:
    return Config.from_json(json.loads(Path(path).read_text()))


# ---- format_version 1 -------------------------------------------------------------------------

@dataclass
class ModelConfig:
    """format_version 1: the bundled model's recipe (pre-LayerNorm, RoPE, GELU, sum memories)."""
    vocab_size: int = 8000
    d_model: int = 256
    n_layers: int = 6
    n_heads: int = 8
    d_ff: int = 1024
    max_seq_len: int = 512          # longest context the model was trained for
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True
    bos_id: int = 1
    eos_id: int = 2
    # Product-key memory
    pkm_layers: List[int] = field(default_factory=lambda: [4])  # 0-based layer indices
    pkm_mode: str = "replace"       # replace: PKM instead of the FFN; parallel: FFN + PKM
    pkm_heads: int = 4
    pkm_knn: int = 32
    pkm_n_keys: int = 128           # sub-keys per half; slots = pkm_n_keys ** 2
    pkm_k_dim: int = 128            # query dim per head; each half has pkm_k_dim / 2
    pkm_v_dim: int = 256            # must equal d_model (values are added to the residual)
    # Training only: never written to config.json (folded into the query Linear at export).
    pkm_query_batchnorm: bool = True

    TRAINING_ONLY = ("pkm_query_batchnorm",)
    VERSION = 1

    def __post_init__(self):
        self.validate()

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def pkm_slots(self) -> int:
        return self.pkm_n_keys ** 2

    def validate(self):
        def need(cond, msg):
            if not cond:
                raise ValueError(f"config: {msg}")
        need(self.d_model % self.n_heads == 0, f"d_model {self.d_model} must be a multiple of n_heads {self.n_heads}")
        need(self.head_dim % 2 == 0, f"head_dim {self.head_dim} must be even for RoPE")
        need(self.pkm_mode in ("replace", "parallel"), f"pkm_mode must be replace or parallel, got {self.pkm_mode!r}")
        need(all(0 <= i < self.n_layers for i in self.pkm_layers),
             f"pkm_layers {self.pkm_layers} must lie in [0, {self.n_layers})")
        need(len(set(self.pkm_layers)) == len(self.pkm_layers), f"pkm_layers {self.pkm_layers} has duplicates")
        need(self.pkm_k_dim % 2 == 0, f"pkm_k_dim {self.pkm_k_dim} must be even")
        need(1 <= self.pkm_knn <= self.pkm_n_keys, f"pkm_knn {self.pkm_knn} must lie in [1, pkm_n_keys={self.pkm_n_keys}]")
        need(self.pkm_v_dim == self.d_model, f"pkm_v_dim {self.pkm_v_dim} must equal d_model {self.d_model}")

    def to_v2(self, dtype: Optional[str] = None) -> Config:
        """The version 2 model this always was (docs/model-format.md, "Version 1")."""
        return Config(
            vocab_size=self.vocab_size, d_model=self.d_model, n_layers=self.n_layers,
            max_seq_len=self.max_seq_len, bos_id=self.bos_id, eos_id=self.eos_id,
            dtype=dtype or "float32", family="pkmserve",
            norm=Norm("layernorm", self.norm_eps, bias=True), block="pre_norm",
            embedding_norm=False, final_norm=True, positions=Positions("rope", theta=float(self.rope_theta)),
            attention=Attention(self.n_heads, self.n_heads, self.head_dim, bias=True),
            ffn=FFN("gelu", self.d_ff, bias=True), lm_head=LMHead(tied=self.tie_embeddings, bias=False),
            memories=[Memory(layer=i, placement=self.pkm_mode, heads=self.pkm_heads, knn=self.pkm_knn,
                             n_keys=self.pkm_n_keys, k_dim=self.pkm_k_dim, v_dim=self.pkm_v_dim,
                             query_bias=True, query_norm="none", output="sum",
                             query_batchnorm=self.pkm_query_batchnorm)
                      for i in self.pkm_layers])

    def to_json(self, dtype: str) -> dict:
        d = {"format_version": self.VERSION, "architecture": ARCHITECTURE}
        for f in dataclasses.fields(self):
            if f.name not in self.TRAINING_ONLY:
                d[f.name] = getattr(self, f.name)
        d["dtype"] = dtype
        return d

    @classmethod
    def from_json(cls, d: dict) -> "ModelConfig":
        """Reads a version 1 config.json only; `Config.from_json` reads both versions."""
        if d.get("format_version") != cls.VERSION:
            raise ValueError(f"config: format_version {d.get('format_version')} unsupported, expected {cls.VERSION}")
        if d.get("architecture") != ARCHITECTURE:
            raise ValueError(f"config: architecture {d.get('architecture')!r}, expected {ARCHITECTURE!r}")
        names = {f.name for f in dataclasses.fields(cls)} - set(cls.TRAINING_ONLY)
        unknown = set(d) - names - {"format_version", "architecture", "dtype"}
        if unknown:
            raise ValueError(f"config: unknown field(s) {sorted(unknown)}")
        missing = names - set(d)
        if missing:
            raise ValueError(f"config: missing field(s) {sorted(missing)}")
        if d.get("dtype") not in DTYPES:
            raise ValueError(f"config: dtype expected one of {list(DTYPES)}, found {d.get('dtype')!r}")
        return cls(**{k: d[k] for k in names}, pkm_query_batchnorm=False)

    @classmethod
    def load(cls, path: Path) -> "ModelConfig":
        return cls.from_json(json.loads(Path(path).read_text()))
