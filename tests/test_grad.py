"""The hand-derived backward passes of normlib.grad equal autograd."""
import pytest
import torch

import normlib.functional as NF
from normlib.core import formula, moments
from normlib.grad import batch_norm_backward, standardize_backward, weight_norm_backward
from conftest import assert_close


@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5), (4, 2, 3, 3)])
@pytest.mark.parametrize("with_weight", [False, True])
def test_batch_norm_backward_equals_autograd(shape, with_weight):
    x = (torch.randn(shape, dtype=torch.float64) * 2 + 3).requires_grad_()
    c = shape[1]
    w = (torch.rand(c, dtype=torch.float64) + 0.5).requires_grad_() if with_weight else None
    b = torch.randn(c, dtype=torch.float64, requires_grad=True)
    y = NF.batch_norm(x, None, None, w, b, training=True)
    grad_y = torch.randn_like(y)
    auto = torch.autograd.grad(y, [x] + ([w] if with_weight else []) + [b], grad_y)
    dx, dw, db = batch_norm_backward(grad_y, x.detach(), None if w is None else w.detach())
    assert_close(dx, auto[0])
    assert_close(db, auto[-1])
    if with_weight:
        assert_close(dw, auto[1])


@pytest.mark.parametrize("shape,dim", [((4, 6), 0), ((4, 6), 1), ((3, 2, 3, 3), 0)])
def test_weight_norm_backward_equals_autograd(shape, dim):
    v = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    others = [d for d in range(len(shape)) if d != dim]
    g = (torch.rand(torch.linalg.vector_norm(v, dim=others, keepdim=True).shape, dtype=torch.float64) + 0.5).requires_grad_()
    w = NF.weight_norm(v, g, dim)
    grad_w = torch.randn_like(w)
    auto_v, auto_g = torch.autograd.grad(w, [v, g], grad_w)
    grad_v, grad_g = weight_norm_backward(grad_w, v.detach(), g.detach(), dim)
    assert_close(grad_v, auto_v)
    assert_close(grad_g, auto_g)


def test_weight_norm_gradient_with_respect_to_v_is_orthogonal_to_v():
    v = torch.randn(5, 7, dtype=torch.float64)
    g = torch.rand(5, 1, dtype=torch.float64)
    grad_v, _ = weight_norm_backward(torch.randn(5, 7, dtype=torch.float64), v, g)
    assert_close((grad_v * v).sum(dim=1), torch.zeros(5, dtype=torch.float64))


@pytest.mark.parametrize("dims, param_dims, weight_shape", [
    ((0, 2, 3), (0, 2, 3), (1, 4, 1, 1)),  # batch norm
    ((2, 3), (0, 3), (1, 2, 2, 1)),  # group norm on (N, G, C/G, HW): partial sums per channel
    ((1,), (0,), (12,)),  # layer norm on (N, D): no partial sums
])
def test_standardize_backward_with_the_kept_statistics_equals_the_recomputed(dims, param_dims, weight_shape):
    shape = (3, 4, 5, 6) if len(weight_shape) == 4 else (7, 12)
    x = torch.randn(shape, dtype=torch.float64) * 2 + 1e3  # a large offset: the sums must not cancel
    g = torch.randn(shape, dtype=torch.float64)
    w = torch.rand(weight_shape, dtype=torch.float64) + 0.5
    view = x.reshape(3, 2, 2, 30) if dims == (2, 3) else x
    gv = g.reshape(view.shape)
    mean, var = moments(view, dims)
    kept = standardize_backward(gv, view, dims, 1e-5, w, param_dims, mean=mean, inv_std=torch.rsqrt(var + 1e-5))
    recomputed = standardize_backward(gv, view, dims, 1e-5, w, param_dims)
    for a, b in zip(kept, recomputed):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-9)
    xr = view.clone().requires_grad_()
    wr = w.clone().requires_grad_()
    auto = torch.autograd.grad(formula(xr, dims, 1e-5, wr)[0], (xr, wr), gv)
    torch.testing.assert_close(kept[0], auto[0], rtol=0, atol=1e-9)
    torch.testing.assert_close(kept[1].reshape(w.shape), auto[1], rtol=0, atol=1e-7)
