"""A small residual MLP for the digits, with the switches of the residual-network chapter.

One block computes ``x + α · f(x)`` on a residual stream of ``width`` features; its branch ``f``
is two linear layers, in one of two orders:

- ``placement="pre"`` (the pre-activation order of ResNet v2, He et al. 2016):
  ``norm → ReLU → Linear → norm → ReLU → Linear``;
- ``placement="end"``: ``Linear → norm → ReLU → Linear → norm``, a normalization at the end of
  the branch.

The switches:

- ``norm``: ``"bn"`` (``normlib.nn.BatchNorm1d``), ``"gn"`` (``normlib.nn.GroupNorm`` with
  ``groups`` groups) or ``"none"``;
- ``skipinit``: SkipInit (De & Smith 2020), a learnable scalar ``α`` initialized to zero that
  multiplies each branch;
- ``fixup``: Fixup (Zhang, Dauphin & Ma 2019), for the pre-activation branch without
  normalization: the last linear layer of each branch and the classifier start at zero, the other
  layer of each branch is scaled by ``L^(-1/(2m-2))`` (``L`` blocks, ``m = 2`` layers per branch:
  ``L^(-1/2)``), a scalar bias (zero) sits before each linear layer and each ReLU, and a scalar
  multiplier (one) at the end of each branch;
- ``residual=False``: the same layers without the skip connections (a plain network);
- ``depth``: the number of blocks ``L``.

Every linear layer of a branch is drawn from He's ``N(0, 2 / fan_in)`` (so that
``ReLU → Linear`` keeps the second moment of a symmetric input: the branch is variance-preserving)
with zero biases; the stem from ``N(0, 1 / fan_in)``. The blocks are ``model.blocks``, which
:func:`normlib.book.diagnostics.signal_propagation` reads.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

import normlib.nn as NN

__all__ = ["ResidualBlock", "ResidualMLP", "residual_mlp"]

NORMS = ("none", "bn", "gn")


def _norm(kind: str, width: int, groups: int, dtype) -> nn.Module:
    if kind == "bn":
        return NN.BatchNorm1d(width, dtype=dtype)
    if kind == "gn":
        return NN.GroupNorm(groups, width, dtype=dtype)
    return nn.Identity()


def _he(linear: nn.Linear, gain: float = 2.0) -> nn.Linear:
    nn.init.normal_(linear.weight, std=math.sqrt(gain / linear.in_features))
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)
    return linear


class ResidualBlock(nn.Module):
    """``x + α · f(x)`` (or ``f(x)`` alone when ``residual=False``); see the module docstring."""

    def __init__(
        self,
        width: int,
        depth: int,
        norm: str = "none",
        placement: str = "pre",
        skipinit: bool = False,
        fixup: bool = False,
        residual: bool = True,
        groups: int = 4,
        dtype=torch.float64,
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        if placement not in ("pre", "end"):
            raise ValueError(f"placement must be 'pre' or 'end', got {placement!r}")
        if fixup and (norm != "none" or placement != "pre" or skipinit):
            raise ValueError("fixup is for the pre-activation branch without normalization or SkipInit")
        self.placement, self.residual = placement, residual
        self.norm1, self.norm2 = (_norm(norm, width, groups, dtype) for _ in range(2))
        self.linear1 = _he(nn.Linear(width, width, bias=not fixup, dtype=dtype))
        self.linear2 = _he(nn.Linear(width, width, bias=not fixup, dtype=dtype))
        if fixup:
            with torch.no_grad():
                self.linear1.weight.mul_(depth ** (-1 / (2 * 2 - 2)))  # L^(-1/(2m-2)), m = 2 layers
                self.linear2.weight.zero_()
            self.biases = nn.Parameter(torch.zeros(4, dtype=dtype))  # before ReLU, Linear, ReLU, Linear
            self.scale = nn.Parameter(torch.ones((), dtype=dtype))  # Fixup's multiplier
        else:
            self.register_parameter("biases", None)
            self.register_parameter("scale", None)
        if skipinit:
            self.scale = nn.Parameter(torch.zeros((), dtype=dtype))  # SkipInit's alpha

    def branch(self, x: Tensor) -> Tensor:
        b = self.biases if self.biases is not None else torch.zeros(4, dtype=x.dtype)
        if self.placement == "pre":
            h = self.linear1(torch.relu(self.norm1(x) + b[0]) + b[1])
            h = self.linear2(torch.relu(self.norm2(h) + b[2]) + b[3])
        else:
            h = self.norm2(self.linear2(torch.relu(self.norm1(self.linear1(x)))))
        return h if self.scale is None else h * self.scale

    def forward(self, x: Tensor) -> Tensor:
        return x + self.branch(x) if self.residual else self.branch(x)


class ResidualMLP(nn.Module):
    """stem ``Linear(in, width)`` → ``depth`` blocks → [norm] → ReLU → classifier ``Linear(width, out)``."""

    def __init__(
        self,
        depth: int = 16,
        width: int = 32,
        in_features: int = 64,
        out_features: int = 10,
        norm: str = "none",
        placement: str = "pre",
        skipinit: bool = False,
        fixup: bool = False,
        residual: bool = True,
        groups: int = 4,
        dtype=torch.float64,
    ) -> None:
        super().__init__()
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive integer, got {depth!r}")
        self.stem = _he(nn.Linear(in_features, width, dtype=dtype), gain=1.0)
        self.blocks = nn.ModuleList(
            ResidualBlock(width, depth, norm, placement, skipinit, fixup, residual, groups, dtype) for _ in range(depth)
        )
        self.final_norm = _norm(norm, width, groups, dtype) if placement == "pre" else nn.Identity()
        self.head = nn.Linear(width, out_features, dtype=dtype)
        if fixup:  # Fixup starts the classifier at zero too
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, x: Tensor) -> Tensor:
        h = self.stem(x)
        for block in self.blocks:
            h = block(h)
        return self.head(torch.relu(self.final_norm(h)))


def residual_mlp(kind: str, depth: int = 16, width: int = 32, seed: int = 0, **kwargs) -> ResidualMLP:
    """The chapter's networks by name, initialized under ``torch.manual_seed(seed)``:

    ``"plain"`` (no skip connections, no normalization), ``"plain-bn"``, ``"unnormalized"``
    (residual, no normalization), ``"bn"`` (BN in the pre-activation branch), ``"bn-end"``
    (BN at the end of the branch), ``"gn"``, ``"skipinit"``, ``"fixup"``.

    >>> [type(m).__name__ for m in residual_mlp("fixup", depth=2).blocks]
    ['ResidualBlock', 'ResidualBlock']
    """
    options = {
        "plain": dict(residual=False),
        "plain-bn": dict(residual=False, norm="bn"),
        "unnormalized": dict(),
        "bn": dict(norm="bn"),
        "bn-end": dict(norm="bn", placement="end"),
        "gn": dict(norm="gn"),
        "skipinit": dict(skipinit=True),
        "fixup": dict(fixup=True),
    }
    if kind not in options:
        raise ValueError(f"kind must be one of {sorted(options)}, got {kind!r}")
    torch.manual_seed(seed)
    return ResidualMLP(depth=depth, width=width, **options[kind], **kwargs)
