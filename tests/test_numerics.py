"""Numerics of normlib's statistics and of its closed-form backward (the book's numerics chapter)."""
import pytest
import torch
import torch.nn.functional as F

import normlib.functional as NF
from normlib.core import formula, moments
from normlib import fused
from normlib.fused import Standardize, standardize

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


# (dims of the statistics, shape of weight and bias) for x of shape (4, 6, 5): batch-, instance-,
# layer- and group-norm-like layouts, and one without an affine step
LAYOUTS = [((0, 2), (1, 6, 1)), ((2,), (1, 6, 1)), ((1, 2), (6, 5)), ((2,), (5,)), ((1, 2), None), ((0,), (6, 5))]


@pytest.mark.parametrize("dims, affine_shape", LAYOUTS)
def test_standardize_equals_the_formula(dims, affine_shape):
    x = torch.randn(4, 6, 5, dtype=torch.float64) * 7 + 100
    w, b = (None, None) if affine_shape is None else (torch.rand(affine_shape, dtype=torch.float64) + 0.5, torch.randn(affine_shape, dtype=torch.float64))
    for got, expected in zip(standardize(x, dims, 1e-5, w, b), formula(x, dims, 1e-5, w, b)):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    x32 = x.float()  # float32: the same values up to a few roundings
    w32, b32 = (None, None) if w is None else (w.float(), b.float())
    for got, expected in zip(standardize(x32, dims, 1e-5, w32, b32), formula(x32, dims, 1e-5, w32, b32)):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def _leaves(affine_shape, shape=(4, 6, 5), scale=1.0, offset=0.0):
    """x of ``shape`` (standard normal times ``scale`` plus ``offset``) and, unless affine_shape is
    None, (weight, bias) of that shape: float64 leaves."""
    x = (torch.randn(shape, dtype=torch.float64) * scale + offset).requires_grad_()
    params = () if affine_shape is None else (
        (torch.rand(affine_shape, dtype=torch.float64) + 0.5).requires_grad_(),
        torch.randn(affine_shape, dtype=torch.float64, requires_grad=True),
    )
    return x, params


@pytest.mark.parametrize("dims, affine_shape", [((2,), (1, 6, 1)), ((1, 2), (6, 5)), ((2,), (5,)), ((1, 2), None)])
def test_backward_in_blocks_of_rows_equals_the_backward_in_one_block(dims, affine_shape, monkeypatch):
    x, params = _leaves(affine_shape, shape=(7, 6, 5), scale=3, offset=10)
    g = torch.randn(x.shape, dtype=torch.float64)

    def grads():
        w, b = params or (None, None)
        return torch.autograd.grad(Standardize.apply(x, w, b, dims, 1e-5, True)[0], [x, *params], g)

    whole = grads()
    monkeypatch.setattr(fused, "BLOCK", 60)  # seven rows of 30 elements: blocks of 3, 3 and 1 rows
    assert len(fused._blocks(x, dims, True)) == 3
    for got, expected in zip(grads(), whole):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    expected = torch.autograd.grad(formula(x, dims, 1e-5, *(params or (None, None)))[0], [x, *params], g)
    for got, want in zip(grads(), expected):  # and the blocks against autograd through the formula
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("dims, affine_shape", LAYOUTS)
def test_standardize_gradients_through_all_three_outputs_pass_gradcheck(dims, affine_shape):
    x, params = _leaves(affine_shape)

    def f(x, *params):
        y, mean, var = Standardize.apply(x, *(params or (None, None)), dims, 1e-3, True)
        return y, mean * 2, var.sqrt()

    assert torch.autograd.gradcheck(f, (x, *params))
    assert torch.autograd.gradgradcheck(f, (x, *params))


def test_standardize_gradient_of_the_output_alone_uses_the_closed_form_and_passes_gradcheck():
    x = torch.randn(4, 6, 5, dtype=torch.float64, requires_grad=True)
    w = torch.rand(1, 6, 1, dtype=torch.float64, requires_grad=True)
    b = torch.randn(1, 6, 1, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: Standardize.apply(x, w, b, (0, 2), 1e-3, True)[0], (x, w, b))
    only_weight = torch.autograd.grad(Standardize.apply(x.detach(), w, None, (0, 2), 1e-3, True)[0].sum(), w)[0]
    assert only_weight.shape == w.shape  # x needs no gradient: the backward skips it


def test_constant_channel_gives_zero_output_and_a_gradient_scaled_by_one_over_sqrt_eps():
    x = torch.full((32, 3), 2.5, requires_grad=True)
    y = NF.batch_norm(x, None, None, training=True, eps=1e-5)
    g = torch.randn(32, 3)
    (gx,) = torch.autograd.grad(y, x, g)
    assert y.abs().max() == 0
    torch.testing.assert_close(gx, (g - g.mean(dim=0)) / 1e-5 ** 0.5)  # x_hat = 0: only g - mean(g) is left


FUNC_LAYERS = {
    "batch": (lambda lib, x, w, b: lib.batch_norm(x, None, None, w, b, training=True), 4),
    "layer": (lambda lib, x, w, b: lib.layer_norm(x, (5,), w, b), 5),
    "instance": (lambda lib, x, w, b: lib.instance_norm(x, weight=w, bias=b), 4),
    "group": (lambda lib, x, w, b: lib.group_norm(x, 2, w, b), 4),
}
TRANSFORMS = {
    "grad": lambda f, x: torch.func.grad(lambda x: f(x).pow(3).sum())(x),
    "jacrev": lambda f, x: torch.func.jacrev(f)(x),
    "jacfwd": lambda f, x: torch.func.jacfwd(f)(x),
    "hessian": lambda f, x: torch.func.hessian(lambda x: f(x).pow(3).sum())(x),
    "vmap": lambda f, x: torch.func.vmap(f)(torch.stack([x, 3 * x + 1])),
}


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("layer", FUNC_LAYERS)
def test_torch_func_transforms_agree_with_pytorch(layer, transform):
    f, c = FUNC_LAYERS[layer]
    x = torch.randn(3, 4, 5, dtype=torch.float64)
    w = torch.rand(c, dtype=torch.float64) + 0.5
    b = torch.randn(c, dtype=torch.float64)
    ours = TRANSFORMS[transform](lambda x: f(NF, x, w, b), x)
    theirs = TRANSFORMS[transform](lambda x: f(F, x, w, b), x)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-10)


@pytest.mark.parametrize("dims, affine_shape", LAYOUTS)
def test_standardize_forward_mode_derivative_passes_gradcheck(dims, affine_shape):
    x, params = _leaves(affine_shape)
    f = lambda x, *p: Standardize.apply(x, *(p or (None, None)), dims, 1e-3, True)
    assert torch.autograd.gradcheck(f, (x, *params), check_forward_ad=True, check_backward_ad=False,
                                    check_undefined_grad=False, check_batched_grad=False)


@pytest.mark.parametrize("x_shape, stats_shape, weight_shape, small", [
    ((8, 16, 4, 4), (1, 16, 1, 1), (1, 16, 1, 1), True),    # batch norm: one scale per channel
    ((8, 16, 4, 4), (8, 16, 1, 1), (1, 16, 1, 1), True),    # instance norm: per sample and channel
    ((8, 4, 4, 16), (8, 4, 1, 1), (1, 4, 4, 1), True),      # group norm, grouped view
    ((8, 16, 32), (8, 16, 1), (32,), False),                # layer norm: the scale is as large as x
    ((8, 16, 32), (8, 16, 1), None, True),                  # layer norm without weight
])
def test_the_affine_step_folds_into_the_scale_where_that_scale_is_small(x_shape, stats_shape, weight_shape, small):
    x = torch.empty(x_shape)
    weight = None if weight_shape is None else torch.empty(weight_shape)
    assert fused._small_scale(x, torch.empty(stats_shape), weight) is small
