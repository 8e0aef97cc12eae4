"""ONNX exports of the PyTorch reference for the ONNX Runtime peer of compare.py (opset 14).

  export_forward(model, inputs, lengths, path)  the whole-sequence forward (class logits, or LM
                                                logits of every position) for a fixed [B, n]
  export_step(model, state, path)               one decode step with the state as explicit
                                                inputs ("tokens", "pos", "state.<i>.<field>") and
                                                outputs ("logits", "new.pos", "new.state.<i>.<field>")

Both trace the reference itself (tools/longvq_ref/model.py), with one substitution: ONNX opset
14 has no FFT (torch 1.13 cannot export aten::fft_rfft at any opset), so while exporting, the
EMA's causal convolution (`ema._causal_conv`, an FFT of size 2n in the reference) is evaluated
as a direct depthwise convolution (ONNX Conv with a length-n kernel). The kernel depends only on
the parameters and n, so it is folded into a constant, as the engine also derives q, pb, g once
at load. Same sums, different order: outputs match the FFT to float32 rounding, but the direct
convolution costs O(n²·d) per sequence instead of O(n log n·d) (it is the decode step's
recurrence that needs no convolution at all).
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import fields

import torch
import torch.nn.functional as F

from longvq_ref import ema as ema_mod
from longvq_ref.attention import default_block_len
from longvq_ref.state import LayerState, State

OPSET = 14
STATE_FIELDS = [f.name for f in fields(LayerState)]


def _direct_causal_conv(x, k):
    """y[b,t,c] = Σ_{j≤t} k[c,t−j]·x[b,j,c], as a depthwise Conv with the kernel as a constant."""
    n = x.shape[1]
    weight = torch.from_numpy(k.detach().flip(-1).contiguous().numpy().copy()).unsqueeze(1)  # [d, 1, n]
    xt = F.pad(x.transpose(1, 2), (n - 1, 0))
    return F.conv1d(xt, weight, groups=weight.shape[0]).transpose(1, 2)


@contextlib.contextmanager
def direct_ema_conv():
    saved = ema_mod._causal_conv
    ema_mod._causal_conv = _direct_causal_conv
    try:
        yield
    finally:
        ema_mod._causal_conv = saved


class _Forward(torch.nn.Module):
    def __init__(self, model, block_len):
        super().__init__()
        self.model, self.block_len = model, block_len

    def forward(self, inputs, lengths=None):
        # With lengths, pad to whole attention blocks here (masked positions change no real
        # output): the reference's own F.pad of its bool/long tensors exports to a graph that
        # ONNX Runtime rejects ("Mul: Incompatible dimensions").
        block = self.block_len or default_block_len(self.model.cfg.attention.window)
        pad = -inputs.shape[1] % block
        if lengths is not None and pad:
            inputs = torch.cat([inputs, torch.zeros(inputs.shape[0], pad, dtype=inputs.dtype)], 1)
        return self.model(inputs, lengths, block_len=self.block_len)


def state_names(state: State) -> list:
    return [f"state.{i}.{f}" for i, layer in enumerate(state.layers) for f in STATE_FIELDS
            if getattr(layer, f) is not None]


def flatten_state(state: State) -> list:
    return [getattr(layer, f) for layer in state.layers for f in STATE_FIELDS if getattr(layer, f) is not None]


class _Step(torch.nn.Module):
    """tokens [B], pos [B], flattened state → logits [B, V], new pos, new flattened state."""

    def __init__(self, model, template: State):
        super().__init__()
        self.model = model
        self.present = [[getattr(l, f) is not None for f in STATE_FIELDS] for l in template.layers]

    def forward(self, tokens, pos, *flat):
        it = iter(flat)
        layers = [LayerState(**{f: (next(it).clone() if here else None) for f, here in zip(STATE_FIELDS, present)})
                  for present in self.present]
        state = State(layers, pos.clone())
        logits = self.model.step(tokens, state)  # updates the clones in place
        return (logits, state.pos, *flatten_state(state))


def _quiet_export(module, args, path, input_names, output_names):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings: shapes are fixed per export on purpose
        with torch.no_grad(), direct_ema_conv():
            torch.onnx.export(module, args, str(path), opset_version=OPSET, input_names=input_names,
                              output_names=output_names, do_constant_folding=True)


def export_forward(model, inputs, lengths, path, block_len=None):
    """Whole-sequence forward for inputs [B, n] (and lengths [B], or None = all full)."""
    module = _Forward(model, block_len).eval()
    if lengths is None:
        _quiet_export(module, (inputs,), path, ["inputs"], ["logits"])
    else:
        _quiet_export(module, (inputs, lengths), path, ["inputs", "lengths"], ["logits"])


def export_step(model, state: State, path):
    """Decode step for the batch size of `state`; the state's values only serve as an example."""
    tokens = torch.zeros(state.pos.shape[0], dtype=torch.long)
    names = state_names(state)
    module = _Step(model, state).eval()
    _quiet_export(module, (tokens, state.pos.clone(), *[t.clone() for t in flatten_state(state)]), path,
                  ["tokens", "pos", *names], ["logits", "new.pos", *[f"new.{n}" for n in names]])
    return names


def reference_forward(model, inputs, lengths, block_len=None):
    """The exported function run in PyTorch under the same substitution (for diagnosing diffs)."""
    with torch.no_grad(), direct_ema_conv():
        return model(inputs, lengths, block_len=block_len)
