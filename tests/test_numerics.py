"""Numerics of normlib's statistics and of its closed-form backward (the book's numerics chapter)."""
import pytest
import torch
import torch.nn.functional as F

import normlib.functional as NF
from normlib.core import Standardize, moments, standardize

METHODS = {
    "batch": lambda lib, x: lib.batch_norm(x, None, None, training=True),
    "layer": lambda lib, x: lib.layer_norm(x, x.shape[1:]),
    "instance": lambda lib, x: lib.instance_norm(x),
    "group": lambda lib, x: lib.group_norm(x, 4),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("offset", [0.0, 1e2, 1e4])
def test_float32_error_of_output_and_input_gradient_is_within_2x_of_pytorch(method, offset):
    f = METHODS[method]
    x32 = (torch.randn(16, 8, 8, 8, dtype=torch.float64) + offset).float()
    g = torch.randn(x32.shape)
    x64 = x32.double().requires_grad_()
    y64 = f(NF, x64)
    (gx64,) = torch.autograd.grad(y64, x64, g.double())
    errors = {}
    for name, lib in (("normlib", NF), ("torch", F)):
        x = x32.clone().requires_grad_()
        y = f(lib, x)
        (gx,) = torch.autograd.grad(y, x, g)
        errors[name] = ((y.double() - y64).abs().max().item(), (gx.double() - gx64).abs().max().item())
    for ours, theirs in zip(errors["normlib"], errors["torch"]):
        assert ours <= 2 * theirs + 1e-7, errors  # 1e-7: a few float32 roundings of O(1) values


def test_one_pass_variance_fails_where_two_passes_do_not():
    x = (torch.randn(4096, 4, dtype=torch.float64) + 1e4).float()
    exact = x.double().var(dim=0, unbiased=False)
    one_pass = (x * x).mean(dim=0) - x.mean(dim=0) ** 2
    _, ours = moments(x, (0,))
    assert ((one_pass.double() - exact) / exact).abs().max() > 0.1
    assert ((ours.flatten().double() - exact) / exact).abs().max() < 10 * torch.finfo(torch.float32).eps


def test_standardize_forward_is_the_composite_formula_bit_for_bit():
    x = torch.randn(6, 5, 4, 3) * 7 + 100
    dims = (0, 2, 3)
    mean, var = moments(x, dims)
    expected = (x - mean) * torch.rsqrt(var + 1e-5)
    x_hat, m, v = standardize(x.requires_grad_(), dims, 1e-5)
    assert torch.equal(x_hat, expected) and torch.equal(m, mean) and torch.equal(v, var)


@pytest.mark.parametrize("dims", [(0, 2), (1, 2), (2,), (0,)])
def test_standardize_gradients_through_all_three_outputs_pass_gradcheck(dims):
    x = torch.randn(4, 3, 5, dtype=torch.float64, requires_grad=True)

    def f(x):
        x_hat, mean, var = Standardize.apply(x, dims, 1e-3)
        return x_hat, mean * 2, var.sqrt()

    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))


def test_constant_channel_gives_zero_output_and_a_gradient_scaled_by_one_over_sqrt_eps():
    x = torch.full((32, 3), 2.5, requires_grad=True)
    y = NF.batch_norm(x, None, None, training=True, eps=1e-5)
    g = torch.randn(32, 3)
    (gx,) = torch.autograd.grad(y, x, g)
    assert y.abs().max() == 0
    torch.testing.assert_close(gx, (g - g.mean(dim=0)) / 1e-5 ** 0.5)  # x_hat = 0: only g - mean(g) is left
