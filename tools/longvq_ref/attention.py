"""VQ attention (longvq-model.md §3): the dense definition, the fast path, the decode step.

Shapes: Q, K [B, n, e]; V [B, n, h]; codes [B, n] (long); codebook C [S, e];
rel_bias T [W+1] (causal) or [2W+1] (bidirectional); key_valid [B, n] bool (False = pad).

dense_attention is the definition. window_codebook_attention is the whole-sequence fast path:
queries are cut into blocks of L ≥ W tokens; keys of the neighbouring blocks are scored one by
one (bias where |i−j| ≤ W), all older (and, bidirectionally, newer) keys enter through per-code
sums U and counts N. Both share one running max, so they match to rounding.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def quantize(k, codebook):
    """c_j = argmin_s ||K_j − C_s||², ties to the lowest s, via ||C_s||² − 2·K_j·C_s."""
    dist = (codebook * codebook).sum(-1) - 2.0 * (k @ codebook.T)  # [..., S]
    return torch.argmin(dist, dim=-1)


def _bias_index(delta, window: int, bidirectional: bool):
    """Index into T for offset delta = i − j: T[i−j] causal, T[W + j − i] bidirectional."""
    return (window - delta) if bidirectional else delta


def softmax_combine(parts):
    """Σ over parts of e^{s−m}·values / Σ over parts of e^{s−m}·counts, with ONE max m.

    parts: (scores [..., Q, M], values [..., M, h], counts [..., M] or None). A part with
    counts is a codebook memory: M codes whose scores stand for counts[s] keys each, with
    values = per-code sums U_s; its entries enter the max as score + log N_s (§3). Absent keys
    have score −inf; a query with no key at all gets a zero output.
    """
    maxes = []
    for s, _, counts in parts:
        if counts is not None:
            s = s + torch.log(counts.clamp_min(1)).unsqueeze(-2)
        maxes.append(s.max(-1).values)
    m = torch.stack(maxes, -1).max(-1).values
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m)).unsqueeze(-1)
    num, den = 0.0, 0.0
    for s, values, counts in parts:
        w = torch.exp(s - m)
        num = num + w @ values
        den = den + (w if counts is None else w * counts.unsqueeze(-2)).sum(-1)
    return num / torch.where(den > 0, den, torch.ones_like(den)).unsqueeze(-1)


def dense_attention(q, k, v, codes, codebook, rel_bias, window: int, quantize_window_keys: bool,
                    bidirectional: bool, key_valid=None):
    """The O(n²) definition of §3, materialized."""
    n, e = q.shape[1], q.shape[2]
    pos = torch.arange(n, device=q.device)
    delta = pos[:, None] - pos[None, :]  # i − j                          [n, n]
    local = delta.abs() <= window
    k_hat = codebook[codes]  # K̂_j = C[c_j]                                [B, n, e]
    content = q @ k_hat.transpose(1, 2)
    if not quantize_window_keys:  # key_j = local ? K_j : K̂_j
        content = torch.where(local, q @ k.transpose(1, 2), content)
    idx = _bias_index(delta, window, bidirectional).clamp(0, rel_bias.shape[0] - 1)
    bias = torch.where(local, rel_bias[idx], torch.zeros((), dtype=q.dtype))
    s = content / math.sqrt(e) + bias  # s_ij                                [B, n, n]
    allowed = torch.ones_like(s, dtype=torch.bool) if bidirectional else (delta >= 0).expand_as(s)
    if key_valid is not None:
        allowed = allowed & key_valid[:, None, :]
    s = torch.where(allowed, s, torch.full((), -math.inf, dtype=q.dtype))
    return softmax_combine([(s, v, None)])


def _shift_blocks(x, offset: int):
    """y[:, r] = x[:, r + offset] (zeros where r + offset is outside the blocks)."""
    if offset == 0:
        return x
    nb = x.shape[1]
    out = torch.zeros_like(x)
    if abs(offset) < nb:
        if offset > 0:
            out[:, : nb - offset] = x[:, offset:]
        else:
            out[:, -offset:] = x[:, : nb + offset]
    return out


def default_block_len(window: int) -> int:
    return max(window, 32)


def window_codebook_attention(q, k, v, codes, codebook, rel_bias, window: int,
                              quantize_window_keys: bool, bidirectional: bool, key_valid=None,
                              block_len: int | None = None, cache_u=None, cache_n=None,
                              straight_through: bool = False):
    """Fast whole-sequence VQ attention, equal to dense_attention (invariant 1).

    cache_u [B, S, h] / cache_n [B, S]: keys that precede the whole sequence and are non-local
    to all of its queries (causal prefill from a state). straight_through scores window keys as
    Q·K̂ with K̂ = K + sg(C[c] − K), so that training sends gradients to K [TVQ].
    """
    bsz, n, e = q.shape
    h = v.shape[-1]
    n_codes = codebook.shape[0]
    L = block_len or default_block_len(window)
    if L < max(window, 1):
        raise ValueError(f"block_len {L} must be >= max(window, 1) = {max(window, 1)}")
    nb = -(-n // L)
    pad = nb * L - n
    if key_valid is None:
        key_valid = torch.ones(bsz, n, dtype=torch.bool, device=q.device)
    if pad:
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        codes = F.pad(codes, (0, pad))
        key_valid = F.pad(key_valid, (0, pad), value=False)
    scale = 1.0 / math.sqrt(e)
    dtype = q.dtype

    qc = (q @ codebook.T) * scale  # qc_i[s] = Q_i·C_s/sqrt(e)                    [B, Tp, S]
    qcb = qc.view(bsz, nb, L, n_codes)
    onehot = F.one_hot(codes, n_codes).to(dtype) * key_valid.unsqueeze(-1).to(dtype)

    # Keys scored one by one: blocks r−1, r (and r+1 bidirectionally) of query block r.
    offsets = (-1, 0, 1) if bidirectional else (-1, 0)
    def neighbours(x):  # [B, Tp, ...] → [B, nb, len(offsets)·L, ...]
        xb = x.reshape(bsz, nb, L, *x.shape[2:])
        return torch.cat([_shift_blocks(xb, o) for o in offsets], dim=2)

    vx, codes_x, valid_x = neighbours(v), neighbours(codes), neighbours(key_valid)
    width = codes_x.shape[2]
    ia = torch.arange(L, device=q.device)
    delta = ia[:, None] - torch.arange(width, device=q.device)[None, :] + L  # i − j  [L, M]
    local = delta.abs() <= window
    if straight_through:
        k_hat = k + (codebook[codes] - k).detach()
        content = (q.view(bsz, nb, L, e) @ neighbours(k_hat).transpose(-1, -2)) * scale
    else:
        content = torch.gather(qcb, 3, codes_x.unsqueeze(2).expand(bsz, nb, L, width))
    if not quantize_window_keys:
        raw = (q.view(bsz, nb, L, e) @ neighbours(k).transpose(-1, -2)) * scale
        content = torch.where(local, raw, content)
    idx = _bias_index(delta, window, bidirectional).clamp(0, rel_bias.shape[0] - 1)
    bias = torch.where(local, rel_bias[idx], torch.zeros((), dtype=dtype))
    allowed = valid_x.unsqueeze(2)
    if not bidirectional:
        allowed = allowed & (delta >= 0)
    scores = torch.where(allowed, content + bias, torch.full((), -math.inf, dtype=dtype))

    # Codebook memory of every other key: per-block sums, then prefix (+ suffix) over blocks.
    block_u = onehot.view(bsz, nb, L, n_codes).transpose(-1, -2) @ v.view(bsz, nb, L, h)  # [B,nb,S,h]
    block_n = onehot.view(bsz, nb, L, n_codes).sum(2)  # [B, nb, S]
    def older_than_previous(x):  # Σ over blocks ≤ r−2
        return _shift_blocks(torch.cumsum(x, 1), -2)
    def newer_than_next(x):  # Σ over blocks ≥ r+2
        return _shift_blocks(torch.cumsum(x.flip(1), 1).flip(1), 2)
    mem_u, mem_n = older_than_previous(block_u), older_than_previous(block_n)
    if bidirectional:
        mem_u, mem_n = mem_u + newer_than_next(block_u), mem_n + newer_than_next(block_n)
    if cache_u is not None:
        mem_u = mem_u + cache_u.unsqueeze(1)
        mem_n = mem_n + cache_n.unsqueeze(1).to(dtype)
    cache_scores = torch.where((mem_n > 0).unsqueeze(2), qcb, torch.full((), -math.inf, dtype=dtype))
    out = softmax_combine([(scores, vx, None), (cache_scores, mem_u, mem_n)])
    return out.reshape(bsz, nb * L, h)[:, :n]


def ring_positions(pos, window: int):
    """Token position held by each ring slot (slot = position mod W), −1 where empty.

    pos [B] = tokens consumed; the ring holds positions pos−W .. pos−1 that are ≥ 0.
    """
    slots = torch.arange(window, device=pos.device)
    j = pos[:, None] - 1 - torch.remainder(pos[:, None] - 1 - slots, window)
    return torch.where(j >= 0, j, torch.full_like(j, -1))


def attention_step(q, k, v, code, codebook, rel_bias, window: int, quantize_window_keys: bool,
                   ring_codes, ring_values, ring_keys, cache_u, cache_n, pos):
    """One decode query per sequence (§4): q, k [B, e], v [B, h], code [B].

    Attends over (ring ∪ current key) with bias and over (U, N); the caller then pushes the
    current key with push_key. Returns O [B, h].
    """
    e = q.shape[-1]
    scale = 1.0 / math.sqrt(e)
    dtype = q.dtype
    neg_inf = torch.full((), -math.inf, dtype=dtype)
    qc = (q @ codebook.T) * scale  # [B, S]
    s_cur = (torch.gather(qc, 1, code[:, None]) if quantize_window_keys
             else (q * k).sum(-1, keepdim=True) * scale) + rel_bias[0]  # [B, 1]
    parts = [(s_cur.unsqueeze(1), v.unsqueeze(1), None)]  # [B,1,1], [B,1,h]
    if window > 0:
        j = ring_positions(pos, window)
        dist = (pos[:, None] - j).clamp(0, window)  # 1..W for filled slots
        content = (torch.gather(qc, 1, ring_codes.clamp_min(0)) if quantize_window_keys
                   else (ring_keys @ q.unsqueeze(-1)).squeeze(-1) * scale)
        ring_scores = torch.where(j >= 0, content + rel_bias[dist], neg_inf)
        parts.append((ring_scores.unsqueeze(1), ring_values, None))  # [B,1,W], [B,W,h]
    cache_scores = torch.where(cache_n > 0, qc, neg_inf)
    parts.append((cache_scores.unsqueeze(1), cache_u, cache_n.to(dtype)))  # [B,1,S], [B,S,h], [B,S]
    return softmax_combine(parts).squeeze(1)


def push_key(k, v, code, window: int, ring_codes, ring_values, ring_keys, cache_u, cache_n, pos):
    """State update after a decode step: the current key enters the ring; the key leaving the
    ring (distance W+1 from the next query) is added to U and N. Updates tensors in place."""
    bsz = v.shape[0]
    rows = torch.arange(bsz, device=v.device)
    if window == 0:
        cache_u[rows, code] += v
        cache_n[rows, code] += 1
        return
    slot = torch.remainder(pos, window)
    full = pos >= window  # the slot holds position pos − W, which now leaves the window
    old_code = ring_codes[rows, slot].clamp_min(0)
    cache_u[rows, old_code] += ring_values[rows, slot] * full.unsqueeze(-1).to(v.dtype)
    cache_n[rows, old_code] += full.to(cache_n.dtype)
    ring_codes[rows, slot] = code
    ring_values[rows, slot] = v
    if ring_keys is not None:
        ring_keys[rows, slot] = k
