"""The LongVQ model of longvq-model.md, as a plain PyTorch module.

Parameter names (state_dict keys) are exactly the tensor names of §6, so export is a copy.
Three ways to run it, held equal by the tests:
  forward  – whole sequences (LM logits or class logits), attention "fast" or "dense";
  prefill  – a causal chunk continued from a State (or from scratch), returns the new State;
  step     – one token per sequence from a State (the decode recurrence of §4).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention_step, dense_attention, push_key, quantize, window_codebook_attention
from .config import Config
from .ema import ema_chunk, ema_conv, ema_step
from .norms import Norm
from .state import LayerState, State


class EMA(nn.Module):
    def __init__(self, channels: int, d: int, n_dim: int):
        super().__init__()
        self.delta = nn.Parameter(torch.zeros(channels, n_dim, 1))
        self.alpha = nn.Parameter(torch.zeros(channels, n_dim, 1))
        self.beta = nn.Parameter(torch.zeros(channels, n_dim, 1))
        self.gamma = nn.Parameter(torch.zeros(channels, n_dim))
        self.omega = nn.Parameter(torch.zeros(d))

    def params(self):
        return self.delta, self.alpha, self.beta, self.gamma, self.omega


class Mix(nn.Module):
    """The gated EMA + VQ-attention sublayer of §2.1."""

    def __init__(self, cfg: Config):
        super().__init__()
        d, h, e = cfg.d_model, cfg.hidden_dim, cfg.z_dim
        self.cfg = cfg
        self.norm = Norm(cfg.norm, d, cfg.norm_eps)
        self.ema = EMA(cfg.ema_channels, d, cfg.ema_ndim)
        self.v_proj = nn.Linear(d, h)
        self.mx_proj = nn.Linear(d, cfg.mx_dim)
        self.h_proj = nn.Linear(h, d)
        self.qk_scale = nn.Parameter(torch.ones(2, e))
        self.qk_offset = nn.Parameter(torch.zeros(2, e))
        # Learned by an EMA of assigned keys in training, not by gradient [TVQ].
        self.register_buffer("codebook", torch.zeros(cfg.attention.codebook_size, e))
        self.rel_bias = nn.Parameter(torch.zeros(cfg.rel_bias_len))
        self.key_sink = None  # training sets a list here to collect (K, codes, mask) per forward
        self.dropout = 0.0  # training only (LongVQModel.set_dropout); not part of the exported model

    def gates(self, x_norm, x_ema):
        """Everything of §2.1 between the EMA and the attention, per token."""
        d, e, h = self.cfg.d_model, self.cfg.z_dim, self.cfg.hidden_dim
        v = F.silu(self.v_proj(x_norm))  # V = φ(v_proj(X~))                       [.., h]
        mx = self.mx_proj(x_ema)  # B = mx_proj(X')                                [.., 2d+e+h]
        u = torch.sigmoid(mx[..., :d])  # u = σ(B[:, 0:d])
        z, r = torch.split(F.silu(mx[..., d:d + e + h]), [e, h], dim=-1)  # Z,R = split(φ(B[:, d:d+e+h]))
        hx = mx[..., d + e + h:]  # HX = B[:, d+e+h:]
        q = z * self.qk_scale[0] + self.qk_offset[0]  # Q = Z ⊙ qk_scale[0] + qk_offset[0]
        k = z * self.qk_scale[1] + self.qk_offset[1]  # K = Z ⊙ qk_scale[1] + qk_offset[1]
        return v, u, r, hx, q, k

    def finish(self, residual, u, r, hx, o):
        hh = F.silu(hx + self.h_proj(o * r))  # Hh = φ(HX + h_proj(O ⊙ R))
        hh = F.dropout(hh, self.dropout, self.training)  # (training only, as MEGA's)
        y = residual + u * (hh - residual)  # Y = res + u ⊙ (Hh − res)
        return y if self.cfg.prenorm else self.norm(y)

    def attention_args(self):
        a = self.cfg.attention
        return dict(codebook=self.codebook, rel_bias=self.rel_bias, window=a.window,
                    quantize_window_keys=a.quantize_window_keys)

    def forward(self, x, mask=None, attention="fast", block_len=None, straight_through=False):
        """x [B, n, d], mask [B, n] (True = real) → (Y [B, n, d], codes [B, n])."""
        x_norm = self.norm(x) if self.cfg.prenorm else x  # X~ = prenorm ? Norm(X) : X
        x_ema = ema_conv(x_norm, mask, *self.ema.params(), bidirectional=self.cfg.bidirectional)
        v, u, r, hx, q, k = self.gates(x_norm, x_ema)
        codes = quantize(k, self.codebook)  # c_j = argmin_s ||K_j − C_s||²
        if self.key_sink is not None:
            self.key_sink.append((k, codes, mask))
        args = dict(self.attention_args(), bidirectional=self.cfg.bidirectional, key_valid=mask)
        if attention == "dense":
            o = dense_attention(q, k, v, codes, **args)
        elif attention == "fast":
            o = window_codebook_attention(q, k, v, codes, **args, block_len=block_len,
                                          straight_through=straight_through)
        else:
            raise ValueError(f"attention must be 'fast' or 'dense', got '{attention}'")
        return self.finish(x, u, r, hx, o), codes

    def prefill(self, x, st: LayerState, pos, block_len=None, straight_through=False):
        """Causal chunk x [B, T, d] continued from st at positions pos [B] → (Y, codes, new state)."""
        bsz, n, _ = x.shape
        w = self.cfg.attention.window
        x_norm = self.norm(x) if self.cfg.prenorm else x
        x_ema, ema_new = ema_chunk(x_norm, st.ema, *self.ema.params())
        v, u, r, hx, q, k = self.gates(x_norm, x_ema)
        codes = quantize(k, self.codebook)
        if self.key_sink is not None:
            self.key_sink.append((k, codes, None))
        # Keys = the ring in time order (positions pos−W .. pos−1, some empty) then the chunk;
        # the ring entries take part as keys only, so their queries are zero and dropped.
        ring_pos = pos[:, None] - w + torch.arange(w, device=x.device)  # [B, W]
        slot = torch.remainder(ring_pos, max(w, 1))
        filled = ring_pos >= 0
        def ring_then_chunk(ring, chunk):
            past = torch.gather(ring, 1, slot.view(bsz, w, *([1] * (ring.dim() - 2))).expand_as(ring))
            return torch.cat([past, chunk], dim=1)
        all_codes = ring_then_chunk(st.ring_codes, codes).clamp_min(0)
        all_v = ring_then_chunk(st.ring_values, v)
        all_k = ring_then_chunk(st.ring_keys, k) if st.ring_keys is not None else torch.cat(
            [torch.zeros(bsz, w, k.shape[-1], dtype=k.dtype, device=k.device), k], dim=1)
        all_q = torch.cat([torch.zeros(bsz, w, q.shape[-1], dtype=q.dtype, device=q.device), q], dim=1)
        valid = torch.cat([filled, torch.ones(bsz, n, dtype=torch.bool, device=x.device)], dim=1)
        o = window_codebook_attention(all_q, all_k, all_v, all_codes, **self.attention_args(),
                                      bidirectional=False, key_valid=valid, block_len=block_len,
                                      cache_u=st.cache_u, cache_n=st.cache_n,
                                      straight_through=straight_through)[:, w:]
        y = self.finish(x, u, r, hx, o)
        # New state: the last W keys form the ring; every earlier valid key joins (U, N).
        leaving = valid[:, :n].to(v.dtype)  # sequence index < T  ⇔  position < pos + T − W
        onehot = F.one_hot(all_codes[:, :n], self.cfg.attention.codebook_size).to(v.dtype) * leaving[..., None]
        cache_u = st.cache_u + onehot.transpose(1, 2) @ all_v[:, :n]
        cache_n = st.cache_n + onehot.sum(1).round().to(st.cache_n.dtype)
        new_pos = pos[:, None] + n - w + torch.arange(w, device=x.device)  # positions kept in the ring
        keep = new_pos >= 0
        new_slot = torch.remainder(new_pos, max(w, 1))
        def scatter_ring(ring, seq, empty):
            fresh = torch.where(keep.view(bsz, w, *([1] * (seq.dim() - 2))), seq[:, n:], empty)
            return torch.empty_like(ring).scatter_(
                1, new_slot.view(bsz, w, *([1] * (ring.dim() - 2))).expand_as(ring), fresh)
        new_state = LayerState(
            ema=ema_new,
            ring_codes=scatter_ring(st.ring_codes, all_codes, torch.full((), -1, dtype=torch.long, device=x.device)),
            ring_values=scatter_ring(st.ring_values, all_v, torch.zeros((), dtype=v.dtype, device=x.device)),
            ring_keys=None if st.ring_keys is None else scatter_ring(st.ring_keys, all_k,
                                                                      torch.zeros((), dtype=k.dtype, device=x.device)),
            cache_u=cache_u, cache_n=cache_n)
        return y, codes, new_state

    def step(self, x, st: LayerState, pos):
        """One token per sequence, x [B, d] → (Y [B, d], code [B]); updates st in place."""
        x_norm = self.norm(x) if self.cfg.prenorm else x
        x_ema, st.ema = ema_step(x_norm, st.ema, *self.ema.params())
        v, u, r, hx, q, k = self.gates(x_norm, x_ema)
        code = quantize(k, self.codebook)
        a = self.attention_args()
        ring = dict(ring_codes=st.ring_codes, ring_values=st.ring_values, ring_keys=st.ring_keys,
                    cache_u=st.cache_u, cache_n=st.cache_n, pos=pos)
        o = attention_step(q, k, v, code, **a, **ring)
        push_key(k, v, code, a["window"], **ring)
        return self.finish(x, u, r, hx, o), code


class FFN(nn.Module):
    """The normalized feed-forward of §2.3."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.prenorm = cfg.prenorm
        self.norm = Norm(cfg.norm, cfg.d_model, cfg.norm_eps)
        self.fc1 = nn.Linear(cfg.d_model, cfg.ffn_dim)
        self.fc2 = nn.Linear(cfg.ffn_dim, cfg.d_model)
        self.dropout = 0.0  # training only, as in Mix

    def _branch(self, x):
        drop = lambda t: F.dropout(t, self.dropout, self.training)
        return drop(self.fc2(drop(F.silu(self.fc1(x)))))

    def forward(self, x):
        if self.prenorm:  # Y = X + fc2(φ(fc1(Norm(X))))
            return x + self._branch(self.norm(x))
        return self.norm(x + self._branch(x))  # Y = Norm(X + fc2(φ(fc1(X))))


class Layer(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.mix = Mix(cfg)
        self.ffn = FFN(cfg) if cfg.ffn_dim > 0 else None

    def _ffn(self, y):
        return self.ffn(y) if self.ffn is not None else y


class Classifier(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        c = cfg.classifier
        self.hidden = nn.Linear(cfg.d_model, c.hidden)
        self.out = nn.Linear(c.hidden, c.num_classes, bias=False)

    def forward(self, rep):
        return self.out(F.gelu(self.hidden(rep)))  # logits = out(gelu(hidden(rep)))


class RealEmbedding(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(d))
        self.bias = nn.Parameter(torch.zeros(d))

    def forward(self, x):
        return x.unsqueeze(-1) * self.weight + self.bias  # x·w + b


class LongVQModel(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        if cfg.embedding.kind == "token":
            self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        else:
            self.embed = RealEmbedding(cfg.d_model)
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.n_layers))
        self.final_norm = (Norm(cfg.norm, cfg.d_model, cfg.norm_eps, affine=cfg.final_norm_affine)
                           if cfg.prenorm else None)
        if cfg.task == "lm" and not cfg.tie_embeddings:
            self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.task == "classify":
            self.classifier = Classifier(cfg)

    def set_dropout(self, p: float):
        """Training-time dropout on each sublayer's branch (and the FFN's hidden layer); a model in
        eval() mode, and every exported model, computes exactly §2 whatever p is."""
        for layer in self.layers:
            layer.mix.dropout = p
            if layer.ffn is not None:
                layer.ffn.dropout = p

    # -- pieces shared by every path ---------------------------------------------------------
    def embed_inputs(self, inputs):
        if self.cfg.embedding.kind == "token":
            return self.embed(inputs) * self.cfg.embedding.scale  # x = scale · E[token]
        return self.embed(inputs.to(self.embed.weight.dtype))

    def head(self, x):
        """Final norm then LM logits, for hidden states x [..., d]."""
        if self.final_norm is not None:
            x = self.final_norm(x)
        if self.cfg.tie_embeddings:
            return x @ self.embed.weight.T  # logits = x · Eᵀ
        return self.lm_head(x)

    # -- whole sequences ----------------------------------------------------------------------
    def forward(self, inputs, lengths=None, attention="fast", block_len=None, return_layers=False,
                straight_through=False):
        """inputs [B, n] (token ids, or normalized reals); lengths [B] of real positions.

        LM → logits [B, n, V]; classify → logits [B, classes]. With return_layers, also a list
        of (layer output [B, n, d], codes [B, n]) per layer.
        """
        bsz, n = inputs.shape[:2]
        mask = None
        if lengths is not None:
            mask = torch.arange(n, device=inputs.device)[None, :] < lengths[:, None]
        x = self.embed_inputs(inputs)
        per_layer = []
        for layer in self.layers:
            y, codes = layer.mix(x, mask, attention=attention, block_len=block_len,
                                 straight_through=straight_through)
            x = layer._ffn(y)
            per_layer.append((x, codes))
        if self.cfg.task == "lm":
            logits = self.head(x)
        else:
            if self.final_norm is not None:
                x = self.final_norm(x)
            if mask is None:
                rep = x.mean(1)
            else:  # mean over real positions
                rep = (x * mask.unsqueeze(-1).to(x.dtype)).sum(1) / lengths[:, None].to(x.dtype)
            logits = self.classifier(rep)
        return (logits, per_layer) if return_layers else logits

    # -- recurrent use (causal LM) --------------------------------------------------------------
    def _need_causal(self):
        if self.cfg.bidirectional:
            raise ValueError("prefill/step need a causal model; this one is bidirectional")

    def init_state(self, batch: int) -> State:
        return State.zeros(self.cfg, batch, dtype=self.embed.weight.dtype)

    def prefill(self, tokens, state: State | None = None, block_len=None, return_layers=False,
                straight_through=False):
        """Consumes tokens [B, T] after `state` (a fresh state when None).

        Returns (logits [B, T, V], new State) — and the per-layer (output, codes) list with
        return_layers. The input state is not modified. straight_through: as in forward (training).
        """
        self._need_causal()
        state = state if state is not None else self.init_state(tokens.shape[0])
        if tokens.shape[1] == 0:  # an empty chunk consumes nothing
            empty = torch.zeros(tokens.shape[0], 0, self.cfg.vocab_size, dtype=self.embed.weight.dtype,
                                device=tokens.device)
            return (empty, state.clone(), []) if return_layers else (empty, state.clone())
        x = self.embed_inputs(tokens)
        new_layers, per_layer = [], []
        for layer, st in zip(self.layers, state.layers):
            y, codes, st_new = layer.mix.prefill(x, st, state.pos, block_len=block_len,
                                                 straight_through=straight_through)
            x = layer._ffn(y)
            new_layers.append(st_new)
            per_layer.append((x, codes))
        new_state = State(new_layers, state.pos + tokens.shape[1])
        logits = self.head(x)
        return (logits, new_state, per_layer) if return_layers else (logits, new_state)

    def step(self, tokens, state: State, return_layers=False):
        """One token per sequence, tokens [B] → logits [B, V]; updates `state` in place."""
        self._need_causal()
        x = self.embed_inputs(tokens)
        per_layer = []
        for layer, st in zip(self.layers, state.layers):
            y, code = layer.mix.step(x, st, state.pos)
            x = layer._ffn(y)
            per_layer.append((x, code))
        state.pos += 1
        logits = self.head(x)
        return (logits, per_layer) if return_layers else logits
