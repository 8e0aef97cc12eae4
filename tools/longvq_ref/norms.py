"""The four norms of longvq-model.md §2.4 [MEGA], each acting on the last axis, per token."""
from __future__ import annotations

import torch
from torch import nn


class Norm(nn.Module):
    """layernorm | scalenorm | rmsnorm | batchnorm (eval-mode affine from running statistics).

    affine=False (the LM's final norm in MEGA) drops the learned parameters; batchnorm keeps
    its running statistics either way.
    """

    def __init__(self, kind: str, dim: int, eps: float, affine: bool = True):
        super().__init__()
        self.kind, self.eps, self.affine = kind, eps, affine
        if kind in ("layernorm", "batchnorm") and affine:
            self.weight = nn.Parameter(torch.ones(dim))
            self.bias = nn.Parameter(torch.zeros(dim))
        elif kind == "rmsnorm" and affine:
            self.weight = nn.Parameter(torch.ones(dim))
        elif kind == "scalenorm" and affine:
            self.scalar = nn.Parameter(torch.ones(1))
        if kind == "batchnorm":
            self.register_buffer("running_mean", torch.zeros(dim))
            self.register_buffer("running_var", torch.ones(dim))

    def forward(self, x):
        if self.kind == "layernorm":
            mean = x.mean(-1, keepdim=True)
            var = ((x - mean) ** 2).mean(-1, keepdim=True)
            y = (x - mean) / torch.sqrt(var + self.eps)
            return y * self.weight + self.bias if self.affine else y
        if self.kind in ("scalenorm", "rmsnorm"):
            y = x / torch.sqrt((x * x).mean(-1, keepdim=True) + self.eps)
            if not self.affine:
                return y
            return y * (self.scalar if self.kind == "scalenorm" else self.weight)
        # batchnorm: y = (x − running_mean)/sqrt(running_var + eps) · weight + bias
        y = (x - self.running_mean) / torch.sqrt(self.running_var + self.eps)
        return y * self.weight + self.bias if self.affine else y
