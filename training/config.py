"""Model configuration: the fields of config.json (docs/model-format.md documents each)."""
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import List

FORMAT_VERSION = 1
ARCHITECTURE = "pkm-transformer"


@dataclass
class ModelConfig:
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

    def to_json(self, dtype: str) -> dict:
        d = {"format_version": FORMAT_VERSION, "architecture": ARCHITECTURE}
        for f in dataclasses.fields(self):
            if f.name not in self.TRAINING_ONLY:
                d[f.name] = getattr(self, f.name)
        d["dtype"] = dtype
        return d

    @classmethod
    def from_json(cls, d: dict) -> "ModelConfig":
        if d.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"config: format_version {d.get('format_version')} unsupported, expected {FORMAT_VERSION}")
        if d.get("architecture") != ARCHITECTURE:
            raise ValueError(f"config: architecture {d.get('architecture')!r}, expected {ARCHITECTURE!r}")
        names = {f.name for f in dataclasses.fields(cls)} - set(cls.TRAINING_ONLY)
        unknown = set(d) - names - {"format_version", "architecture", "dtype"}
        if unknown:
            raise ValueError(f"config: unknown field(s) {sorted(unknown)}")
        missing = names - set(d)
        if missing:
            raise ValueError(f"config: missing field(s) {sorted(missing)}")
        return cls(**{k: d[k] for k in names}, pkm_query_batchnorm=False)

    @classmethod
    def load(cls, path: Path) -> "ModelConfig":
        return cls.from_json(json.loads(Path(path).read_text()))
