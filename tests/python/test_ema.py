"""The EMA of §2.2: convolution == recurrence == chunked continuation; bidirectional == its sum."""
import pytest
import torch

from conftest import assert_close, TOL
from longvq_ref.ema import ema_chunk, ema_coefficients, ema_conv, ema_step


def params(d, n_dim, bidirectional, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    ch = 2 * d if bidirectional else d
    mk = lambda *s, std=1.0: (torch.randn(*s, generator=g, dtype=torch.float64) * std).to(dtype)
    return mk(ch, n_dim, 1, std=0.5), mk(ch, n_dim, 1, std=0.5), mk(ch, n_dim, 1), mk(ch, n_dim), mk(d)


def literal_ema(x, mask, delta, alpha, beta, gamma, omega, bidirectional):
    """y[t,c] = Σ_{j≤t} k[c,t−j]x[j,c] (+ Σ_{j≥t} k[c+d,j−t]x[j,c]) with k from its definition."""
    bsz, n, d = x.shape
    q, pb, g = ema_coefficients(delta, alpha, beta, gamma)
    xm = x * mask.unsqueeze(-1)
    kern = lambda c, t: float((g[c] * pb[c] * q[c] ** t).sum())
    y = torch.zeros_like(x)
    for b in range(bsz):
        for c in range(d):
            for t in range(n):
                acc = sum(kern(c, t - j) * float(xm[b, j, c]) for j in range(t + 1))
                if bidirectional:
                    acc += sum(kern(c + d, j - t) * float(xm[b, j, c]) for j in range(t, n))
                y[b, t, c] = acc
    return torch.nn.functional.silu(y + omega * x)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["causal", "bidir"])
def test_conv_is_the_definition(bidirectional):
    x = torch.randn(2, 9, 3, dtype=torch.float64)
    mask = torch.ones(2, 9)
    mask[1, 6:] = 0
    p = params(3, 4, bidirectional)
    assert_close(ema_conv(x, mask.bool(), *p, bidirectional=bidirectional),
                 literal_ema(x, mask.double(), *p, bidirectional), 1e-12, "fft vs literal")


def test_recurrence_and_chunks_equal_conv(dtype):
    d, n_dim, n = 5, 6, 50
    x = torch.randn(3, n, d, dtype=torch.float64).to(dtype)
    p = params(d, n_dim, False, dtype=dtype)
    whole = ema_conv(x, None, *p, bidirectional=False)
    h = torch.zeros(3, d, n_dim, dtype=dtype)
    steps = []
    for t in range(n):
        y, h = ema_step(x[:, t], h, *p)
        steps.append(y)
    assert_close(torch.stack(steps, 1), whole, TOL[dtype], "recurrence vs conv")
    for split in (1, 17, 49):
        y1, h1 = ema_chunk(x[:, :split], torch.zeros(3, d, n_dim, dtype=dtype), *p)
        y2, h2 = ema_chunk(x[:, split:], h1, *p)
        assert_close(torch.cat([y1, y2], 1), whole, TOL[dtype], f"chunks split at {split}")
        assert_close(h2, h, TOL[dtype], "final state after chunks vs recurrence")


def test_pads_do_not_leak_into_real_positions():
    d, n = 4, 12
    p = params(d, 3, True)
    x = torch.randn(1, n, d, dtype=torch.float64)
    mask = torch.zeros(1, n, dtype=torch.bool)
    mask[:, :7] = True
    other = x.clone()
    other[:, 7:] = 1e3  # garbage in pad positions
    a = ema_conv(x, mask, *p, bidirectional=True)
    b = ema_conv(other, mask, *p, bidirectional=True)
    assert_close(a[:, :7], b[:, :7], 1e-12, "pad content changed real outputs")
