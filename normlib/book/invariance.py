"""The invariance table of Ba, Kiros & Hinton (2016, Table 1), computed rather than typed.

The six transformations of the layer-normalization paper (Section 5.1) act on a layer
``a = W x`` with ``W`` of shape ``(C, D)`` and inputs ``x`` of shape ``(N, D, L)``; every factor is
positive. :func:`invariance_table` applies each to a normalization ``f(W, x)`` and marks the method
invariant when the output changes by less than ``1e-12`` in float64 (rounding of values of order
one; a transformation that is not ignored changes the output by far more). Chapter 06 builds the
table for BN, WN, LN and their relatives (INV-6), the RMSNorm chapter adds RMSNorm's row (RMS-2)
with the same code.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["TRANSFORMS", "random_factors", "invariance_table", "as_markdown"]

Norm = Callable[[Tensor, Tensor], Tensor]

#: (W, x, r) -> (W', x'); ``r`` holds the random vectors of :func:`random_factors`.
TRANSFORMS = {
    "weight-matrix re-scaling": lambda W, x, r: (2.5 * W, x),
    "weight-matrix re-centering": lambda W, x, r: (W + r["u"].reshape(1, -1), x),  # W + 1 u^T
    "weight-vector re-scaling": lambda W, x, r: (r["delta_rows"].reshape(-1, 1) * W, x),
    "dataset re-scaling": lambda W, x, r: (W, 2.5 * x),
    "dataset re-centering": lambda W, x, r: (W, x + r["z"].reshape(1, -1, 1)),
    "single-case re-scaling": lambda W, x, r: (W, r["delta_cases"].reshape(-1, 1, 1) * x),
}


def random_factors(n: int, d: int, c: int, gen: torch.Generator) -> dict[str, Tensor]:
    """The shift vectors ``u`` (of the weight rows) and ``z`` (of the data), and positive factors in [0.5, 3]."""
    f64 = torch.float64
    return {
        "u": torch.randn(d, generator=gen, dtype=f64),
        "z": torch.randn(d, generator=gen, dtype=f64),
        "delta_rows": 0.5 + 2.5 * torch.rand(c, generator=gen, dtype=f64),
        "delta_cases": 0.5 + 2.5 * torch.rand(n, generator=gen, dtype=f64),
    }


def invariance_table(methods: dict[str, Norm], W: Tensor, x: Tensor, factors: dict[str, Tensor],
                     undefined: tuple[str, ...] = ()) -> tuple[dict, dict]:
    """``({method: {transform: True/False/None}}, gaps)`` for the layer ``W`` on the inputs ``x``.

    ``undefined`` names methods whose output is not defined on these inputs (their row is ``None``).
    ``gaps`` holds the largest deviation among the invariant cells and the smallest among the others,
    so a caller can assert that the two are cleanly separated.
    """
    table, gaps = {}, {"invariant": 0.0, "not": math.inf}
    for name, f in methods.items():
        if name in undefined:
            table[name] = dict.fromkeys(TRANSFORMS)
            continue
        y = f(W, x)
        table[name] = {}
        for t, transform in TRANSFORMS.items():
            d = (f(*transform(W, x, factors)) - y).abs().max().item()
            invariant = d < 1e-12  # float64 rounding of O(1) outputs
            table[name][t] = invariant
            if invariant:
                gaps["invariant"] = max(gaps["invariant"], d)
            else:
                gaps["not"] = min(gaps["not"], d)
    return table, gaps


def as_markdown(table: dict, reference: dict | None = None, reference_name: str = "paper") -> str:
    """The table as Markdown (✓ invariant, ✗ not, — undefined), noting every cell that differs from ``reference``."""
    head = "| | " + " | ".join(TRANSFORMS) + " |\n|---|" + "---|" * len(TRANSFORMS) + "\n"
    mark = {True: "✓", False: "✗", None: "—"}
    rows = ""
    for name, row in table.items():
        cells = []
        for t in TRANSFORMS:
            cell = mark[row[t]]
            if reference and name in reference and reference[name][t] != row[t]:
                cell += f" ({reference_name} {mark[reference[name][t]]})"
            cells.append(cell)
        rows += f"| {name} | " + " | ".join(cells) + " |\n"
    return head + rows
