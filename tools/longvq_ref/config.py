"""The typed model configuration (`config.json`), exactly as longvq-model.md §1 defines it.

Every reader of a config (this package, the exporter, the C++ engine) applies the same range
checks, so a config that loads here loads everywhere.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

FORMAT_VERSION = 1
NORM_KINDS = ("layernorm", "scalenorm", "rmsnorm", "batchnorm")
TASKS = ("lm", "classify")
EMBEDDING_KINDS = ("token", "real")
TOKENIZER_KINDS = ("bytes", "vocab", "pixels")


class ConfigError(ValueError):
    """A config.json that this version cannot run; the message says what to change."""


@dataclass
class AttentionConfig:
    codebook_size: int = 64  # S
    window: int = 32  # W
    quantize_window_keys: bool = True


@dataclass
class EmbeddingConfig:
    kind: str = "token"
    scale: float = 1.0  # only for kind == "token"


@dataclass
class ClassifierConfig:
    num_classes: int = 2
    hidden: int = 64
    pooling: str = "mean"
    activation: str = "gelu"


@dataclass
class TokenizerConfig:
    kind: str = "bytes"
    specials: list = field(default_factory=list)  # bytes: ids 256.. in this order
    tokens: list = field(default_factory=list)  # vocab: id = index
    unk: Optional[str] = None  # vocab: token that unknown words map to (None: unknown is an error)
    mean: float = 0.5  # pixels: (value/255 - mean) / std
    std: float = 0.5


@dataclass
class Config:
    vocab_size: int = 256
    d_model: int = 64
    hidden_dim: int = 128
    z_dim: int = 32
    ema_ndim: int = 16
    ffn_dim: int = 128
    n_layers: int = 2
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    norm: str = "layernorm"
    prenorm: bool = True
    final_norm_affine: bool = True
    norm_eps: float = 1e-5
    bidirectional: bool = False
    task: str = "lm"
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    tie_embeddings: bool = True
    classifier: Optional[ClassifierConfig] = None
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    format_version: int = FORMAT_VERSION

    # Derived sizes, named as in the design page.
    @property
    def d(self) -> int:
        return self.d_model

    @property
    def mx_dim(self) -> int:  # rows of mx_proj: u | z | r | hx
        return 2 * self.d_model + self.z_dim + self.hidden_dim

    @property
    def ema_channels(self) -> int:  # D'
        return 2 * self.d_model if self.bidirectional else self.d_model

    @property
    def rel_bias_len(self) -> int:
        w = self.attention.window
        return 2 * w + 1 if self.bidirectional else w + 1

    def validate(self) -> "Config":
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ConfigError(msg)

        need(self.format_version == FORMAT_VERSION,
             f"config format_version {self.format_version} is not supported (this reader knows "
             f"{FORMAT_VERSION}); re-export the model with this version's exporter")
        for name in ("d_model", "hidden_dim", "z_dim", "ema_ndim", "n_layers"):
            need(getattr(self, name) > 0, f"config field {name} must be > 0, got {getattr(self, name)}")
        need(self.ffn_dim >= 0, f"config field ffn_dim must be >= 0 (0 = no FFN), got {self.ffn_dim}")
        need(self.attention.codebook_size >= 1,
             f"attention.codebook_size must be >= 1, got {self.attention.codebook_size}")
        need(self.attention.window >= 0, f"attention.window must be >= 0, got {self.attention.window}")
        need(self.norm in NORM_KINDS, f"unknown norm '{self.norm}'; use one of {', '.join(NORM_KINDS)}")
        need(self.norm_eps > 0 and math.isfinite(self.norm_eps), f"norm_eps must be > 0, got {self.norm_eps}")
        need(self.task in TASKS, f"unknown task '{self.task}'; use one of {', '.join(TASKS)}")
        need(self.embedding.kind in EMBEDDING_KINDS,
             f"unknown embedding.kind '{self.embedding.kind}'; use one of {', '.join(EMBEDDING_KINDS)}")
        need(self.tokenizer.kind in TOKENIZER_KINDS,
             f"unknown tokenizer.kind '{self.tokenizer.kind}'; use one of {', '.join(TOKENIZER_KINDS)}")
        if self.embedding.kind == "token":
            need(self.vocab_size > 0, f"vocab_size must be > 0, got {self.vocab_size}")
            need(self.embedding.scale > 0 and math.isfinite(self.embedding.scale),
                 f"embedding.scale must be > 0, got {self.embedding.scale}")
        if self.task == "lm":
            need(not self.bidirectional, "a task 'lm' model must be causal: set bidirectional to false")
            need(self.embedding.kind == "token", "a task 'lm' model needs embedding.kind 'token'")
            need(self.norm != "batchnorm", "batchnorm is for classifiers only; use layernorm, scalenorm or rmsnorm")
        else:
            need(self.classifier is not None, "a task 'classify' model needs a 'classifier' section")
            c = self.classifier
            need(c.num_classes >= 2, f"classifier.num_classes must be >= 2, got {c.num_classes}")
            need(c.hidden > 0, f"classifier.hidden must be > 0, got {c.hidden}")
            need(c.pooling == "mean", f"classifier.pooling '{c.pooling}' is not supported; use 'mean'")
            need(c.activation == "gelu", f"classifier.activation '{c.activation}' is not supported; use 'gelu'")
        t = self.tokenizer
        if t.kind == "bytes":
            need(self.vocab_size == 256 + len(t.specials),
                 f"a bytes tokenizer with {len(t.specials)} specials needs vocab_size {256 + len(t.specials)}, "
                 f"got {self.vocab_size}")
        elif t.kind == "vocab":
            need(len(t.tokens) == self.vocab_size,
                 f"tokenizer.tokens lists {len(t.tokens)} tokens but vocab_size is {self.vocab_size}")
            need(t.unk is None or t.unk in t.tokens, f"tokenizer.unk '{t.unk}' is not in tokenizer.tokens")
        else:
            need(self.embedding.kind == "real", "a pixels tokenizer needs embedding.kind 'real'")
            need(t.std > 0, f"tokenizer.std must be > 0, got {t.std}")
        return self

    # -- JSON ----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        out = asdict(self)
        if self.classifier is None:
            del out["classifier"]
        tok = out["tokenizer"]
        keep = {"bytes": ("kind", "specials"), "vocab": ("kind", "tokens", "unk"),
                "pixels": ("kind", "mean", "std")}[self.tokenizer.kind]
        out["tokenizer"] = {k: tok[k] for k in keep}
        if self.embedding.kind == "real":
            out["embedding"] = {"kind": "real"}
        return out

    @staticmethod
    def from_dict(raw: dict) -> "Config":
        raw = dict(raw)
        known = {f for f in Config.__dataclass_fields__}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s) {unknown}; this reader knows {sorted(known)}")
        try:
            if "attention" in raw:
                raw["attention"] = AttentionConfig(**raw["attention"])
            if "embedding" in raw:
                raw["embedding"] = EmbeddingConfig(**raw["embedding"])
            if raw.get("classifier") is not None:
                raw["classifier"] = ClassifierConfig(**raw["classifier"])
            if "tokenizer" in raw:
                raw["tokenizer"] = TokenizerConfig(**raw["tokenizer"])
            cfg = Config(**raw)
        except TypeError as err:  # an unknown key inside a section
            raise ConfigError(f"bad config section: {err}") from None
        return cfg.validate()

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @staticmethod
    def load(path: str | Path) -> "Config":
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}: not valid JSON ({err}); re-export the model") from None
        return Config.from_dict(raw)

    def fingerprint(self) -> str:
        """The shape-defining fields of a decoding state, in a fixed textual form.

        A state file records it; restoring into a model with another fingerprint is refused.
        The C++ engine builds the same string.
        """
        a = self.attention
        return (f"longvq-v{self.format_version}:V={self.vocab_size},d={self.d_model},h={self.hidden_dim},"
                f"e={self.z_dim},N={self.ema_ndim},f={self.ffn_dim},L={self.n_layers},S={a.codebook_size},"
                f"W={a.window},qwk={int(a.quantize_window_keys)},norm={self.norm},"
                f"prenorm={int(self.prenorm)},bidir={int(self.bidirectional)}")
