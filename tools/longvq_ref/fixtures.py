"""Parity fixtures for the C++ engine: tests/fixtures/<name>/{config.json, model.safetensors,
expected.safetensors}. Layout: tests/fixtures/README.md.

  /usr/bin/python3 -m longvq_ref.fixtures [--out tests/fixtures]

Everything expected is computed in float64 from the stored fp32 weights. A model seed is kept
only if every key of every layer has a clear best code (see MIN_CODE_MARGIN), so an fp32 engine
cannot flip a code on a near-tie; the seed search is deterministic.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from . import model as model_module
from . import safetensors_io
from .config import AttentionConfig, ClassifierConfig, Config, EmbeddingConfig, TokenizerConfig
from .export import load_model, random_model, save_model
from .tokenizer import Tokenizer

MIN_CODE_MARGIN = 1e-4  # (2nd best − best distance) / (|K|² + max|C|²), for every key
FIXTURE_VERSION = 1
WORDS = [f"t{i}" for i in range(40)]


def _lm(**kw) -> Config:
    base = dict(vocab_size=len(WORDS), d_model=16, hidden_dim=24, z_dim=8, ema_ndim=4, ffn_dim=32, n_layers=2,
                task="lm", tokenizer=TokenizerConfig(kind="vocab", tokens=WORDS))
    base.update(kw)
    return Config(**base).validate()


def _cls(**kw) -> Config:
    base = dict(vocab_size=len(WORDS), d_model=16, hidden_dim=24, z_dim=8, ema_ndim=4, ffn_dim=32, n_layers=2,
                task="classify", bidirectional=True, classifier=ClassifierConfig(num_classes=5, hidden=12),
                tokenizer=TokenizerConfig(kind="vocab", tokens=WORDS))
    base.update(kw)
    return Config(**base).validate()


# Together these cover every config option: 4 norms, pre/postnorm, FFN on/off, causal and
# bidirectional, token and real embeddings, tied and untied heads, quantized and raw window
# keys, W = 0, W ≥ n, S = 1, unused codes, and pads in classification batches.
FIXTURES = {
    "lm_bytes_layernorm_tied": lambda: _lm(
        vocab_size=257, tokenizer=TokenizerConfig(kind="bytes", specials=["<bos>"]), final_norm_affine=False,
        embedding=EmbeddingConfig("token", 4.0), attention=AttentionConfig(8, 4, True)),
    "lm_rmsnorm_postnorm_untied": lambda: _lm(
        norm="rmsnorm", prenorm=False, ffn_dim=0, tie_embeddings=False, attention=AttentionConfig(6, 3, False)),
    "lm_scalenorm_w0_s1": lambda: _lm(norm="scalenorm", attention=AttentionConfig(1, 0, True)),
    "lm_bigwindow_unused_codes": lambda: _lm(n_layers=3, attention=AttentionConfig(16, 48, False)),
    "cls_batchnorm_tokens": lambda: _cls(norm="batchnorm", attention=AttentionConfig(8, 3, True)),
    "cls_pixels_postnorm_rawwin": lambda: _cls(
        vocab_size=0, prenorm=False, embedding=EmbeddingConfig("real"), attention=AttentionConfig(6, 4, False),
        tokenizer=TokenizerConfig(kind="pixels", mean=0.2860, std=0.3530)),
    "cls_rmsnorm_w0_s1": lambda: _cls(norm="rmsnorm", ffn_dim=0, attention=AttentionConfig(1, 0, True)),
    "lm_bf16_matrices": lambda: _lm(attention=AttentionConfig(8, 5, True)),
}
# Exported with bf16 matrices (export --bf16): expected values come from the stored bf16 weights.
BF16_FIXTURES = {"lm_bf16_matrices"}
LM_SHAPE = (2, 40)  # batch, length
LM_PREFILL = 13  # the stored state is the one after this many tokens (mid-window, W ∤ 13)
CLS_LENGTHS = [37, 20, 6]


def _code_margins(model, run):
    """Runs `run()` and returns the smallest relative argmin margin over every quantized key."""
    margins = []
    real_quantize = model_module.quantize

    def recording(k, codebook):
        dist = (codebook * codebook).sum(-1) - 2.0 * (k @ codebook.T)
        if codebook.shape[0] > 1:
            two = torch.topk(dist, 2, dim=-1, largest=False).values
            scale = (k * k).sum(-1) + (codebook * codebook).sum(-1).max()
            margins.append(float(((two[..., 1] - two[..., 0]) / scale).min()))
        return real_quantize(k, codebook)

    with mock.patch.object(model_module, "quantize", recording):
        run()
    return min(margins, default=float("inf"))


def _inputs(cfg: Config, gen: torch.Generator):
    """(model inputs, extra arrays to store, lengths or None)."""
    if cfg.task == "lm":
        return torch.randint(cfg.vocab_size, LM_SHAPE, generator=gen), {}, None
    n = max(CLS_LENGTHS)
    lengths = torch.tensor(CLS_LENGTHS)
    pad = torch.arange(n)[None, :] >= lengths[:, None]
    if cfg.embedding.kind == "token":
        tokens = torch.randint(cfg.vocab_size, (len(CLS_LENGTHS), n), generator=gen).masked_fill(pad, 0)
        return tokens, {}, lengths
    pixels = torch.randint(256, (len(CLS_LENGTHS), n), generator=gen).masked_fill(pad, 0).to(torch.uint8)
    normalized = torch.from_numpy(Tokenizer.from_config(cfg).encode_pixels(pixels.numpy()))
    return normalized.double(), {"pixels": pixels.numpy()}, lengths


@torch.no_grad()
def build_fixture(name: str, out_dir: Path, max_tries: int = 200) -> int:
    """Writes one fixture; returns the model seed that passed the margin check."""
    cfg = FIXTURES[name]()
    for seed in range(max_tries):
        save_model(random_model(cfg, seed=seed, calib_batch=2, calib_len=64), out_dir,
                   card=f"# {name}\n\nA random tiny model for engine parity tests (seed {seed}).\n",
                   bf16=name in BF16_FIXTURES)
        model = load_model(out_dir, dtype=torch.float64)  # exactly the stored fp32 (or bf16) weights
        gen = torch.Generator().manual_seed(1000 + seed)
        inputs, extra, lengths = _inputs(cfg, gen)
        results = {}

        def run():
            results["forward"] = model(inputs, lengths, return_layers=True)
            if cfg.task == "lm":
                state = model.init_state(inputs.shape[0])
                results["decode"] = [model.step(inputs[:, t], state) for t in range(inputs.shape[1])]
                results["prefill"] = model.prefill(inputs[:, :LM_PREFILL])[1]

        if _code_margins(model, run) >= MIN_CODE_MARGIN:
            break
    else:
        raise RuntimeError(f"{name}: no seed below {max_tries} gives clear codes; lower MIN_CODE_MARGIN")

    logits, layers = results["forward"]
    f32 = lambda t: t.detach().to(torch.float32).numpy()
    i32 = lambda t: t.detach().to(torch.int32).numpy()
    arrays = {"logits": f32(logits), **extra}
    arrays["inputs"] = i32(inputs) if cfg.embedding.kind == "token" else f32(inputs)
    if lengths is not None:
        arrays["lengths"] = i32(lengths)
    for i, (out, codes) in enumerate(layers):
        arrays[f"layers.{i}.output"] = f32(out)
        arrays[f"layers.{i}.codes"] = i32(codes)
    if cfg.task == "lm":
        arrays["decode_logits"] = f32(torch.stack(results["decode"], 1))
        arrays["prefill_len"] = np.array([LM_PREFILL], dtype=np.int32)
        for tname, t in results["prefill"].tensors().items():
            arrays[f"state.{tname}"] = t.detach().numpy().astype(np.int64 if tname == "pos" else
                                                                  np.int32 if t.dtype == torch.long else np.float32)
    safetensors_io.write(out_dir / "expected.safetensors", arrays,
                         {"fixture_version": str(FIXTURE_VERSION), "seed": str(seed),
                          "made_by": "python3 -m longvq_ref.fixtures"})
    return seed


def build_all(out_root: Path) -> None:
    for name in FIXTURES:
        seed = build_fixture(name, out_root / name)
        print(f"{name}: seed {seed}", file=sys.stderr)


def _main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m longvq_ref.fixtures", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[2] / "tests" / "fixtures"),
                   help="fixture root directory (default: tests/fixtures of this checkout)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    build_all(Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
