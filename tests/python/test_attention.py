"""Invariant 1 at the kernel level: the fast window + codebook path == the dense definition.

The dense definition is itself checked against a literal transcription of §3 (Python loops).
"""
import math

import pytest
import torch

from conftest import assert_close, TOL
from longvq_ref.attention import (attention_step, dense_attention, push_key, quantize,
                                  window_codebook_attention)


def literal_attention(q, k, v, codes, codebook, rel_bias, window, qwk, bidirectional, key_valid):
    """§3 word for word, one query and one key at a time."""
    bsz, n, e = q.shape
    out = torch.zeros(bsz, n, v.shape[-1], dtype=q.dtype)
    for b in range(bsz):
        for i in range(n):
            scores, values = [], []
            for j in range(n):
                if not key_valid[b, j] or (not bidirectional and j > i):
                    continue
                local = abs(i - j) <= window
                key = k[b, j] if (local and not qwk) else codebook[codes[b, j]]
                s = float(q[b, i] @ key) / math.sqrt(e)
                if local:
                    s += float(rel_bias[window + j - i] if bidirectional else rel_bias[i - j])
                scores.append(s)
                values.append(v[b, j])
            if scores:
                w = torch.softmax(torch.tensor(scores, dtype=q.dtype), 0)
                out[b, i] = sum(wi * vi for wi, vi in zip(w, values))
    return out


def random_case(n, window, n_codes, bidirectional, dtype, pads=False, seed=0, unused=False):
    g = torch.Generator().manual_seed(seed)
    bsz, e, h = 3, 5, 4
    q = torch.randn(bsz, n, e, generator=g, dtype=torch.float64)
    k = torch.randn(bsz, n, e, generator=g, dtype=torch.float64)
    v = torch.randn(bsz, n, h, generator=g, dtype=torch.float64)
    codebook = torch.randn(n_codes, e, generator=g, dtype=torch.float64)
    if unused:  # half the codebook far from every key: those codes are never chosen
        codebook[n_codes // 2:] += 100.0
    rel_bias = torch.randn(2 * window + 1 if bidirectional else window + 1, generator=g, dtype=torch.float64)
    key_valid = torch.ones(bsz, n, dtype=torch.bool)
    if pads:  # right padding of different lengths, as in a classification batch
        for b, length in enumerate([n, max(1, n - 3), max(1, n // 2)]):
            key_valid[b, length:] = False
    cast = lambda t: t.to(dtype)
    q, k, v, codebook, rel_bias = map(cast, (q, k, v, codebook, rel_bias))
    return q, k, v, quantize(k, codebook), codebook, rel_bias, key_valid


EDGE_CASES = [  # (n, W, S): n < W, n = W, n = W + 1, W = 0, S = 1, many blocks, W ≥ n
    (3, 5, 4), (5, 5, 4), (6, 5, 4), (17, 0, 4), (17, 3, 1), (40, 4, 7), (9, 20, 3), (1, 2, 3), (33, 1, 2),
]


@pytest.mark.parametrize("bidirectional", [False, True], ids=["causal", "bidir"])
@pytest.mark.parametrize("qwk", [True, False], ids=["qwk", "rawwin"])
@pytest.mark.parametrize("n,window,n_codes", EDGE_CASES)
def test_fast_equals_dense(n, window, n_codes, qwk, bidirectional, dtype):
    for pads in ([False, True] if bidirectional else [False]):
        q, k, v, codes, cb, rb, valid = random_case(n, window, n_codes, bidirectional, dtype, pads)
        args = dict(codebook=cb, rel_bias=rb, window=window, quantize_window_keys=qwk,
                    bidirectional=bidirectional, key_valid=valid)
        dense = dense_attention(q, k, v, codes, **args)
        for block_len in sorted({max(window, 1), max(window, 1) + 2, 32}):
            fast = window_codebook_attention(q, k, v, codes, **args, block_len=block_len)
            assert_close(fast, dense, TOL[dtype], f"block_len {block_len} pads {pads}")


@pytest.mark.parametrize("bidirectional", [False, True], ids=["causal", "bidir"])
@pytest.mark.parametrize("qwk", [True, False], ids=["qwk", "rawwin"])
def test_dense_is_the_definition(qwk, bidirectional):
    for n, window, n_codes in [(7, 2, 3), (6, 0, 1), (5, 9, 4)]:
        q, k, v, codes, cb, rb, valid = random_case(n, window, n_codes, bidirectional, torch.float64,
                                                     pads=bidirectional)
        args = (cb, rb, window, qwk, bidirectional, valid)
        assert_close(dense_attention(q, k, v, codes, *args), literal_attention(q, k, v, codes, *args),
                     1e-12, "dense vs literal")


def test_unused_codes_and_straight_through_value():
    q, k, v, codes, cb, rb, valid = random_case(30, 3, 8, False, torch.float64, unused=True)
    assert codes.max() < 4, "the far half of the codebook must stay unused"
    args = dict(codebook=cb, rel_bias=rb, window=3, quantize_window_keys=True, bidirectional=False)
    dense = dense_attention(q, k, v, codes, **args)
    assert_close(window_codebook_attention(q, k, v, codes, **args, block_len=4), dense, 1e-10, "unused")
    st = window_codebook_attention(q, k, v, codes, **args, block_len=4, straight_through=True)
    assert_close(st, dense, 1e-10, "straight-through forward value")


def test_quantize_ties_go_to_lowest_code():
    cb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    k = torch.tensor([[0.5, 0.5], [2.0, 0.0]], dtype=torch.float64)
    assert quantize(k, cb).tolist() == [0, 0]


@pytest.mark.parametrize("window,n_codes,qwk", [(3, 4, True), (0, 3, True), (2, 1, False), (12, 5, False)])
def test_step_by_step_equals_causal_dense(window, n_codes, qwk, dtype):
    """The decode recurrence (ring, U, N, eviction after use) reproduces the definition."""
    n = 20
    q, k, v, codes, cb, rb, _ = random_case(n, window, n_codes, False, dtype)
    dense = dense_attention(q, k, v, codes, cb, rb, window, qwk, False)
    bsz, e, h = q.shape[0], q.shape[2], v.shape[2]
    ring = dict(ring_codes=torch.full((bsz, window), -1), ring_values=torch.zeros(bsz, window, h, dtype=dtype),
                ring_keys=None if qwk else torch.zeros(bsz, window, e, dtype=dtype),
                cache_u=torch.zeros(bsz, n_codes, h, dtype=dtype), cache_n=torch.zeros(bsz, n_codes, dtype=torch.long))
    pos = torch.zeros(bsz, dtype=torch.long)
    outs = []
    for t in range(n):
        outs.append(attention_step(q[:, t], k[:, t], v[:, t], codes[:, t], cb, rb, window, qwk, **ring, pos=pos))
        push_key(k[:, t], v[:, t], codes[:, t], window, **ring, pos=pos)
        pos = pos + 1
    assert_close(torch.stack(outs, 1), dense, TOL[dtype], "step vs dense")
    # Every key older than the window sits in (U, N): n − W of them.
    assert int(ring["cache_n"].sum(1)[0]) == max(0, n - window)
