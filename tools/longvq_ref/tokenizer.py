"""Tokenizers named by config.json (§1): bytes, vocab (whitespace tokens), pixels.

The C++ engine implements the same three and is tested against these.
"""
from __future__ import annotations

import numpy as np

from .config import Config, TokenizerConfig


class TokenizerError(ValueError):
    pass


class Tokenizer:
    def __init__(self, cfg: TokenizerConfig):
        self.cfg = cfg
        self.kind = cfg.kind
        if self.kind == "vocab":
            self.index = {tok: i for i, tok in enumerate(cfg.tokens)}

    @staticmethod
    def from_config(cfg: Config) -> "Tokenizer":
        return Tokenizer(cfg.tokenizer)

    def special_id(self, name: str) -> int:
        """Id of a special token of a bytes tokenizer, e.g. '<bos>'."""
        if self.kind != "bytes" or name not in self.cfg.specials:
            raise TokenizerError(f"this tokenizer has no special token '{name}'")
        return 256 + self.cfg.specials.index(name)

    def encode(self, text: str) -> list[int]:
        if self.kind == "bytes":
            return list(text.encode("utf-8"))
        if self.kind == "vocab":
            ids = []
            for word in text.split():
                if word in self.index:
                    ids.append(self.index[word])
                elif self.cfg.unk is not None:
                    ids.append(self.index[self.cfg.unk])
                else:
                    raise TokenizerError(f"token '{word}' is not in the model's vocabulary and it has no "
                                         f"unknown-token; check the input matches the model's data set")
            return ids
        raise TokenizerError("a pixels tokenizer encodes pixel values: use encode_pixels")

    def decode(self, ids) -> bytes:
        """Bytes for output: byte ids as themselves, specials and vocab tokens as their text."""
        if self.kind == "bytes":
            out = bytearray()
            for i in ids:
                out += bytes([i]) if i < 256 else self.cfg.specials[i - 256].encode()
            return bytes(out)
        if self.kind == "vocab":
            return " ".join(self.cfg.tokens[i] for i in ids).encode()
        raise TokenizerError("a pixels tokenizer has no text to decode")

    def encode_pixels(self, pixels) -> np.ndarray:
        """value 0..255 → (value/255 − mean)/std, in float32 as the engine computes it."""
        if self.kind != "pixels":
            raise TokenizerError("encode_pixels needs a pixels tokenizer")
        p = np.asarray(pixels, dtype=np.float32)
        return ((p / np.float32(255.0) - np.float32(self.cfg.mean)) / np.float32(self.cfg.std)).astype(np.float32)
