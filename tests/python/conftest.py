"""Shared pieces of the reference's tests: tiny configs that cover every config option."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

from longvq_ref.config import (AttentionConfig, ClassifierConfig, Config,  # noqa: E402
                               EmbeddingConfig, TokenizerConfig)
from longvq_ref.export import random_model  # noqa: E402

torch.set_num_threads(1)

VOCAB_WORDS = [f"w{i}" for i in range(29)]


def lm_config(*, norm="layernorm", prenorm=True, ffn=12, tie=True, window=3, codes=5, qwk=True,
              final_affine=True, scale=1.0, bytes_vocab=False, layers=2) -> Config:
    tok = (TokenizerConfig(kind="bytes", specials=["<bos>"]) if bytes_vocab
           else TokenizerConfig(kind="vocab", tokens=VOCAB_WORDS))
    return Config(vocab_size=257 if bytes_vocab else len(VOCAB_WORDS), d_model=12, hidden_dim=10, z_dim=6,
                  ema_ndim=3, ffn_dim=ffn, n_layers=layers,
                  attention=AttentionConfig(codebook_size=codes, window=window, quantize_window_keys=qwk),
                  norm=norm, prenorm=prenorm, final_norm_affine=final_affine, task="lm",
                  embedding=EmbeddingConfig("token", scale), tie_embeddings=tie, tokenizer=tok).validate()


def cls_config(*, norm="layernorm", prenorm=True, ffn=12, window=3, codes=5, qwk=True, pixels=False,
               layers=2) -> Config:
    tok = TokenizerConfig(kind="pixels", mean=0.5, std=0.5) if pixels else TokenizerConfig(
        kind="vocab", tokens=VOCAB_WORDS)
    return Config(vocab_size=0 if pixels else len(VOCAB_WORDS), d_model=12, hidden_dim=10, z_dim=6, ema_ndim=3,
                  ffn_dim=ffn, n_layers=layers,
                  attention=AttentionConfig(codebook_size=codes, window=window, quantize_window_keys=qwk),
                  norm=norm, prenorm=prenorm, bidirectional=True, task="classify",
                  embedding=EmbeddingConfig("real" if pixels else "token"),
                  classifier=ClassifierConfig(num_classes=4, hidden=7), tokenizer=tok).validate()


# Every option appears in at least one config; edge cases: W = 0, S = 1, W ≥ n, many unused codes.
LM_CONFIGS = {
    "layernorm_prenorm_tied": lambda: lm_config(final_affine=False),
    "rmsnorm_postnorm_untied_noffn": lambda: lm_config(norm="rmsnorm", prenorm=False, ffn=0, tie=False,
                                                      qwk=False, window=2, codes=4),
    "scalenorm_w0_s1_scaled": lambda: lm_config(norm="scalenorm", window=0, codes=1, scale=3.0),
    "bigwindow_unquantized_bytes": lambda: lm_config(window=40, codes=16, qwk=False, bytes_vocab=True),
    "w1_s2_postnorm": lambda: lm_config(norm="layernorm", prenorm=False, window=1, codes=2, layers=3),
}
CLS_CONFIGS = {
    "batchnorm_tokens": lambda: cls_config(norm="batchnorm", window=2, codes=6),
    "pixels_postnorm_unquantized": lambda: cls_config(pixels=True, prenorm=False, qwk=False, window=3, codes=4),
    "rmsnorm_w0_s1_noffn": lambda: cls_config(norm="rmsnorm", window=0, codes=1, ffn=0),
    "scalenorm_bigwindow": lambda: cls_config(norm="scalenorm", window=30, codes=8),
}


def make_model(cfg: Config, seed: int = 0, dtype=torch.float64):
    return random_model(cfg, seed=seed, calib_batch=2, calib_len=48).to(dtype)


def make_inputs(cfg: Config, batch: int, n: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    if cfg.embedding.kind == "token":
        return torch.randint(cfg.vocab_size, (batch, n), generator=gen)
    return torch.randn(batch, n, generator=gen, dtype=torch.float64)


def assert_close(a, b, tol, what=""):
    """max |a − b| ≤ tol · max(1, max |b|): the tolerance is relative to the output's scale."""
    scale = max(1.0, float(b.abs().max())) if b.numel() else 1.0
    err = float((a - b).abs().max()) if b.numel() else 0.0
    assert err <= tol * scale, f"{what}: max abs diff {err:.3e} > {tol:.1e} × scale {scale:.3g}"


TOL = {torch.float64: 1e-10, torch.float32: 1e-4}


@pytest.fixture(params=[torch.float64, torch.float32], ids=["f64", "f32"])
def dtype(request):
    return request.param
