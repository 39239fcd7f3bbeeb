"""normlib under torch.compile: one graph per layer, and the same values and gradients as PyTorch.

Under compilation :func:`normlib.fused.standardize` hands the compiler
:class:`normlib.fused.TracedStandardize` (the formula, and the closed-form backward in
out-of-place operations) instead of the in-place autograd.Function; this checks that path,
which the benchmark times but no notebook runs.
"""
import pytest
import torch
import torch.nn.functional as F

import normlib.functional as NF
from test_numerics import LAYOUTS, _leaves  # the numerics tests' layouts and float64 leaves

CASES = {
    "batch": (lambda lib, x, w, b: lib.batch_norm(x, None, None, w, b, training=True), (6, 4, 5, 5), 4),
    "layer": (lambda lib, x, w, b: lib.layer_norm(x, (8,), w, b), (3, 5, 8), 8),
    "instance": (lambda lib, x, w, b: lib.instance_norm(x, weight=w, bias=b), (6, 4, 5, 5), 4),
    "group": (lambda lib, x, w, b: lib.group_norm(x, 2, w, b), (6, 4, 5, 5), 4),
    "rms": (lambda lib, x, w, b: lib.rms_norm(x, (8,), w) + 0 * b.sum(), (3, 5, 8), 8),
}


@pytest.mark.parametrize("method", CASES)
def test_compiled_normlib_matches_pytorch_in_one_graph(method):
    f, shape, channels = CASES[method]
    torch._dynamo.reset()
    compiled = torch.compile(lambda x, w, b: f(NF, x, w, b), fullgraph=True)  # a graph break would raise
    x = (torch.randn(shape) * 3 + 100).requires_grad_()
    w = (torch.rand(channels) + 0.5).requires_grad_()
    b = torch.randn(channels).requires_grad_()
    g = torch.randn(shape)
    ours = compiled(x, w, b)
    ours_grads = torch.autograd.grad(ours, (x, w, b), g)
    theirs = f(F, x, w, b)
    theirs_grads = torch.autograd.grad(theirs, (x, w, b), g)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    for a, c in zip(ours_grads, theirs_grads):
        torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("dims, affine_shape", LAYOUTS)
def test_compiled_standardize_has_the_formulas_gradients_through_all_three_outputs(dims, affine_shape, center):
    """TracedStandardize's closed form, float64, against autograd through the formula: the output,
    the returned mean and variance, and every layout of statistics and parameters (group norm's
    partial sums, layer norm's, batch norm's), with an offset that a careless sum would feel."""
    from normlib.core import formula
    from normlib.fused import standardize

    x, params = _leaves(affine_shape, scale=3, offset=100)
    g = torch.randn(x.shape, dtype=torch.float64)

    def loss(f, x, *params):
        w, b = params or (None, None)
        y, mean, var = f(x, dims, 1e-5, w, b, center)
        return (y * g).sum() + (mean**2).sum() + var.sum()

    torch._dynamo.reset()
    compiled = torch.compile(lambda *a: loss(standardize, *a), fullgraph=True)
    ours = torch.autograd.grad(compiled(x, *params), [x, *params])
    reference = torch.autograd.grad(loss(formula, x, *params), [x, *params])
    for got, want in zip(ours, reference):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-9)
