"""The speed path where its corrections matter: float32 far from zero (offsets 1e3-1e5) against
float64, for Standardize's folded first-pass rounding (mu = mu0 + c, var = mean(d^2) - c^2), for
its folded gamma/sigma branch (batch and group norm) and its unfolded one (layer norm), for the
backward's row blocks (more than two blocks), and for the compiled path's closed form."""
import pytest
import torch

import normlib.fused as fused
from normlib.core import formula

OFFSETS = [1e3, 1e4, 1e5]
# (input shape, statistics' dims, weight's shape): folded (BN, GN-like) and unfolded (LN).
CASES = {
    "batch norm (folded)": ((4, 8, 32, 32), (0, 2, 3), (1, 8, 1, 1)),
    "instance norm (folded)": ((4, 8, 32, 32), (2, 3), (1, 8, 1, 1)),
    "layer norm (unfolded)": ((64, 1024), (1,), (1024,)),
}
Y_TOL = 2e-5    # measured: at most 3e-6 on every case and offset
VAR_TOL = 5e-6  # measured: at most 8e-7 (var is about 1)
# Gradients, relative to their largest entry: the backward recomputes x - mean from the float32
# mean, whose rounding (about offset * 6e-8) moves x_hat. Measured at 1e5: dx 2e-4, dgamma 4e-3.
GRAD_TOL = {"x": 5e-9, "weight": 1e-7, "bias": 0.0}


def _case(name, offset, seed=0):
    shape, dims, wshape = CASES[name]
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) + offset).float()
    w = (1 + 0.5 * torch.randn(wshape, generator=g, dtype=torch.float64)).float()
    b = (0.1 * torch.randn(wshape, generator=g, dtype=torch.float64)).float()
    dy = torch.randn(shape, generator=g, dtype=torch.float64).float()
    return x, w, b, dy, dims


def _against_float64(fn, name, offset, y_tol=Y_TOL):
    x, w, b, dy, dims = _case(name, offset)
    leaves = [t.clone().requires_grad_() for t in (x, w, b)]
    y, mean, var = fn(*leaves, dims)
    grads = torch.autograd.grad(y, leaves, dy)
    leaves64 = [t.double().requires_grad_() for t in (x, w, b)]
    y64, mean64, var64 = formula(leaves64[0], dims, 1e-5, leaves64[1], leaves64[2])
    grads64 = torch.autograd.grad(y64, leaves64, dy.double())
    torch.testing.assert_close(y.double(), y64, rtol=0, atol=y_tol)
    torch.testing.assert_close(mean.double(), mean64, rtol=2**-23, atol=0)
    torch.testing.assert_close(var.double(), var64, rtol=0, atol=VAR_TOL)
    for (what, per_offset), got, want in zip(GRAD_TOL.items(), grads, grads64):
        error = (got.double() - want).abs().max() / want.abs().max()
        assert error <= per_offset * offset + 1e-5, (what, error.item())
    return x, dims


def _eager(x, w, b, dims):
    return fused.standardize(x, dims, 1e-5, w, b)


def _traced(x, w, b, dims):
    return fused.TracedStandardize.apply(x, w, b, dims, 1e-5, True)


@pytest.mark.parametrize("offset", OFFSETS)
@pytest.mark.parametrize("name", list(CASES))
def test_standardize_float32_far_from_zero(name, offset):
    x, dims = _against_float64(_eager, name, offset)
    # The test can see the correction: leaving c out of the mean would move y by |c| * rstd,
    # beyond Y_TOL at every offset here.
    m0 = x.mean(dim=dims, keepdim=True)
    c = (x - m0).mean(dim=dims, keepdim=True).abs().max().item()
    assert c > 2 * Y_TOL, c


@pytest.mark.parametrize("offset", OFFSETS)
@pytest.mark.parametrize("name", list(CASES))
def test_traced_closed_form_far_from_zero(name, offset):
    # The traced forward is formula's two-pass moments without the fold of c: its y carries the
    # float32 mean's rounding, measured at most 1.3e-7 * offset; the eager path's stays below Y_TOL.
    _against_float64(_traced, name, offset, y_tol=2e-7 * offset)


@pytest.mark.parametrize("offset", [1e4])
def test_backward_row_blocks_far_from_zero(monkeypatch, offset):
    # 64 rows of 1024 in blocks of 4096 elements: 16 blocks, well beyond 2 * BLOCK.
    monkeypatch.setattr(fused, "BLOCK", 4096)
    x, _, _, _, dims = _case("layer norm (unfolded)", offset)
    assert len(fused._blocks(x, dims, rows_share_params=True)) > 2
    _against_float64(_eager, "layer norm (unfolded)", offset)


def test_compiled_far_from_zero():
    compiled = torch.compile(_eager, fullgraph=True, dynamic=False)
    _against_float64(compiled, "layer norm (unfolded)", 1e4, y_tol=2e-7 * 1e4)


@pytest.mark.parametrize("offset", OFFSETS)
def test_folded_shift_without_bias_far_from_zero(offset):
    # The folded branch's shift -c * gamma / sigma when there is no bias.
    x, w, _, _, dims = _case("batch norm (folded)", offset)
    y = fused.standardize(x, dims, 1e-5, w, None)[0]
    y64 = formula(x.double(), dims, 1e-5, w.double(), None)[0]
    torch.testing.assert_close(y.double(), y64, rtol=0, atol=Y_TOL)
