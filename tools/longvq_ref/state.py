"""The decoding state of a causal LongVQ model (longvq-model.md §4), owned by the caller.

Per layer: ema [B, d, N]; the window ring of the W most recent keys, slot = position mod W
(ring_codes [B, W] with −1 in empty slots, ring_values [B, W, h], ring_keys [B, W, e] only when
window keys are not quantized); cache_u [B, S, h] per-code sums of values that left the window;
cache_n [B, S] per-code counts. pos [B] counts the tokens consumed.

A state file is a safetensors file (tensor names below, metadata format/version/config
fingerprint, and from version 2 data_crc32, the CRC-32 of the data area); see
docs/file-formats.md §3. Version 1 files (no checksum) still load, with a warning.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Optional

import torch

from . import safetensors_io
from .config import Config

STATE_FORMAT = "longvq-state"
STATE_VERSION = 2
CHECKSUM_KEY = "data_crc32"
MAX_POSITION = 2**31 - 1  # the longest context (per-code counts are int32; engine/runtime/state.h)


class StateError(ValueError):
    """A state file that does not fit this model; the message says why and what to do."""


@dataclass
class LayerState:
    ema: torch.Tensor
    ring_codes: torch.Tensor
    ring_values: torch.Tensor
    ring_keys: Optional[torch.Tensor]
    cache_u: torch.Tensor
    cache_n: torch.Tensor

    def map(self, fn) -> "LayerState":
        return LayerState(**{f.name: None if getattr(self, f.name) is None else fn(getattr(self, f.name))
                             for f in fields(self)})


@dataclass
class State:
    layers: list
    pos: torch.Tensor

    @staticmethod
    def zeros(cfg: Config, batch: int, dtype=torch.float64) -> "State":
        d, h, e, n_dim = cfg.d_model, cfg.hidden_dim, cfg.z_dim, cfg.ema_ndim
        s, w = cfg.attention.codebook_size, cfg.attention.window
        layers = [LayerState(
            ema=torch.zeros(batch, d, n_dim, dtype=dtype),
            ring_codes=torch.full((batch, w), -1, dtype=torch.long),
            ring_values=torch.zeros(batch, w, h, dtype=dtype),
            ring_keys=None if cfg.attention.quantize_window_keys else torch.zeros(batch, w, e, dtype=dtype),
            cache_u=torch.zeros(batch, s, h, dtype=dtype),
            cache_n=torch.zeros(batch, s, dtype=torch.long),
        ) for _ in range(cfg.n_layers)]
        return State(layers, torch.zeros(batch, dtype=torch.long))

    def clone(self) -> "State":
        return State([l.map(torch.clone) for l in self.layers], self.pos.clone())

    def select(self, index) -> "State":
        """The states of the sequences `index` (a list of batch rows)."""
        return State([l.map(lambda t: t[index]) for l in self.layers], self.pos[index])

    @staticmethod
    def cat(states: list) -> "State":
        layers = []
        for per_layer in zip(*(s.layers for s in states)):
            layers.append(LayerState(**{
                f.name: None if getattr(per_layer[0], f.name) is None
                else torch.cat([getattr(l, f.name) for l in per_layer]) for f in fields(LayerState)}))
        return State(layers, torch.cat([s.pos for s in states]))

    # -- files ---------------------------------------------------------------------------------
    def tensors(self) -> dict:
        out = {"pos": self.pos}
        for i, layer in enumerate(self.layers):
            for f in fields(layer):
                t = getattr(layer, f.name)
                if t is not None:
                    out[f"layers.{i}.{f.name}"] = t
        return out

    def save(self, path: str | Path, cfg: Config) -> None:
        arrays = {}
        for name, t in self.tensors().items():
            if t.dtype == torch.long:  # codes and counts fit int32 for any practical context
                t = t.to(torch.int32) if name != "pos" else t
            arrays[name] = t.detach().cpu().numpy()
        meta = {"format": STATE_FORMAT, "version": str(STATE_VERSION), "config": cfg.fingerprint()}
        safetensors_io.write(path, arrays, meta, data_crc32_key=CHECKSUM_KEY)

    @staticmethod
    def load(path: str | Path, cfg: Config, dtype=torch.float64) -> "State":
        arrays, meta = safetensors_io.read(path)
        if meta.get("format") != STATE_FORMAT:
            raise StateError(f"{path}: not a longvq state file (format '{meta.get('format')}')")
        if meta.get("version") == str(STATE_VERSION):
            stored, computed = meta.get(CHECKSUM_KEY), safetensors_io.data_crc32(path)
            if stored is None:
                raise StateError(f"{path}: a version {STATE_VERSION} state file needs metadata "
                                 f"'{CHECKSUM_KEY}', which is missing; the file is corrupt")
            if stored != computed:
                raise StateError(f"{path}: the checksum of the state's data does not match (stored {stored}, "
                                 f"computed {computed}): the file is damaged; recompute the state from the prompt")
        elif meta.get("version") == "1":
            warnings.warn(f"{path}: a version 1 state file has no checksum, so damage to it cannot be "
                          f"detected; save it again to get one")
        else:
            raise StateError(f"{path}: state version {meta.get('version')} is not supported (this "
                             f"reader knows 1 and {STATE_VERSION}); recompute the state from the prompt")
        if meta.get("config") != cfg.fingerprint():
            raise StateError(f"{path}: the state was made by another model ({meta.get('config')}), "
                             f"not this one ({cfg.fingerprint()}); recompute it with this model")
        template = State.zeros(cfg, int(arrays["pos"].shape[0]), dtype)
        def take(name, like):
            if name not in arrays:
                raise StateError(f"{path}: tensor '{name}' is missing; the file is incomplete")
            t = torch.from_numpy(arrays[name].copy())
            if tuple(t.shape) != tuple(like.shape):
                raise StateError(f"{path}: tensor '{name}' has shape {tuple(t.shape)}, "
                                 f"expected {tuple(like.shape)}")
            return t.to(like.dtype)
        layers = []
        for i, layer in enumerate(template.layers):
            layers.append(replace(layer, **{
                f.name: take(f"layers.{i}.{f.name}", getattr(layer, f.name))
                for f in fields(layer) if getattr(layer, f.name) is not None}))
        pos = take("pos", template.pos)
        if bool(((pos < 0) | (pos > MAX_POSITION)).any()):
            raise StateError(f"{path}: tensor 'pos' holds a position outside 0..{MAX_POSITION} (the longest "
                             f"context a state holds); the file is corrupt")
        return State(layers, pos)
