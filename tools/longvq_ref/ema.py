"""The multi-dimensional damped EMA of MEGA (longvq-model.md §2.2), as plain functions.

Shapes: x is [B, n, d]; the parameters delta/alpha/beta are [D', N, 1], gamma [D', N],
with D' = 2d for the bidirectional form (rows d.. are the backward direction).

Three equivalent evaluations are provided, and the tests hold them equal:
  * ema_conv_*: the convolution with the full kernel (FFT, as MEGA); the whole-sequence path.
  * ema_step:   the recurrence H <- q*H + pb*x; the decode path.
  * ema_chunk:  the convolution continued from a state H_prev; the (chunked) prefill path.
"""
from __future__ import annotations

import torch


def ema_coefficients(delta, alpha, beta, gamma):
    """Returns (q, pb, g), each [D', N]. Naming trap kept from MEGA: p = sigmoid(delta)."""
    n_dim = gamma.shape[1]
    p = torch.sigmoid(delta.squeeze(-1))  # p = σ(delta)                  [D', N]
    q = 1.0 - p * torch.sigmoid(alpha.squeeze(-1))  # q = 1 − σ(delta)·σ(alpha)
    pb = p * beta.squeeze(-1)  # pb = p · beta
    g = gamma * (1.0 / n_dim) ** 0.5  # g = gamma · sqrt(1/N)
    return q, pb, g


def ema_kernel(q, pb, g, length: int):
    """k[c, t] = Σ_n g[c,n]·pb[c,n]·q[c,n]^t for t < length; returns [D', length]."""
    t = torch.arange(length, dtype=q.dtype, device=q.device)
    powers = torch.exp(torch.log(q).unsqueeze(-1) * t)  # q^t                 [D', N, n]
    return torch.einsum("cn,cnt->ct", g * pb, powers)


def _causal_conv(x, k):
    """y[b,t,c] = Σ_{j≤t} k[c,t−j]·x[b,j,c] by FFT of size 2n (exact up to rounding)."""
    n = x.shape[1]
    size = 2 * n
    xf = torch.fft.rfft(x.transpose(1, 2), n=size)  # [B, d, n+1]
    kf = torch.fft.rfft(k, n=size)  # [d, n+1]
    return torch.fft.irfft(xf * kf, n=size)[..., :n].transpose(1, 2)


def ema_conv(x, mask, delta, alpha, beta, gamma, omega, bidirectional: bool):
    """Whole-sequence EMA sublayer output X' = φ(y + ω·x), [B, n, d].

    mask [B, n] (True = real token) zeroes pads before the sum; ω uses the unmasked x [MEGA].
    """
    d = x.shape[-1]
    n = x.shape[1]
    q, pb, g = ema_coefficients(delta, alpha, beta, gamma)
    k = ema_kernel(q, pb, g, n)  # [D', n]
    xm = x if mask is None else x * mask.unsqueeze(-1).to(x.dtype)
    y = _causal_conv(xm, k[:d])  # Σ_{j≤t} k[c,t−j]·x[j,c]
    if bidirectional:  # + Σ_{j≥t} k[c+d,j−t]·x[j,c]  (lag 0 counted twice, as MEGA)
        y = y + _causal_conv(xm.flip(1), k[d:]).flip(1)
    return torch.nn.functional.silu(y + omega * x)


def ema_chunk(x, h_prev, delta, alpha, beta, gamma, omega):
    """Causal EMA over a chunk continued from state h_prev [B, d, N] (MEGA's `step` form).

    y[t] = Σ_{j≤t} k[t−j]·x[j] + Σ_n g·q^{t+1}·H_prev
    H_new = q^T·H_prev + Σ_j pb·q^{T−1−j}·x[j]
    Returns (X' [B, T, d], H_new [B, d, N]).
    """
    n = x.shape[1]
    q, pb, g = ema_coefficients(delta, alpha, beta, gamma)
    k = ema_kernel(q, pb, g, n)
    y = _causal_conv(x, k)
    t = torch.arange(n + 1, dtype=x.dtype, device=x.device)
    powers = torch.exp(torch.log(q).unsqueeze(-1) * t)  # q^t, t = 0..n     [d, N, n+1]
    y = y + torch.einsum("cn,cnt,bcn->btc", g, powers[..., 1:], h_prev)
    decay_to_end = powers[..., :n].flip(-1)  # q^{T−1−j}                    [d, N, n]
    h_new = powers[..., n] * h_prev + torch.einsum("cn,cnj,bjc->bcn", pb, decay_to_end, x)
    return torch.nn.functional.silu(y + omega * x), h_new


def ema_step(x, h, delta, alpha, beta, gamma, omega):
    """One decode step: x [B, d], h [B, d, N] → (X' [B, d], new h)."""
    q, pb, g = ema_coefficients(delta, alpha, beta, gamma)
    h = q * h + pb * x.unsqueeze(-1)  # H ← q·H + pb·x~
    y = (g * h).sum(-1)  # y = Σ_n g·H
    return torch.nn.functional.silu(y + omega * x), h
