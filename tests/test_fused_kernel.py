"""The fused reference kernel (benchmarks/fused_kernel.py) against normlib.core.formula and
PyTorch: values and gradients, float32 and float64, and float32 far from zero (offsets 1e3-1e5)
against float64, where the corrected two-pass variance matters."""
import pytest
import torch
import torch.nn.functional as F

from normlib.core import formula

kernel = pytest.importorskip("benchmarks.fused_kernel")
if kernel.load() is None:
    pytest.skip("no C++ compiler: the fused reference kernel is not built",
                allow_module_level=True)

TOL = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-12)}


def _inputs(dtype, shape=(6, 5, 48), offset=0.0):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g, dtype=torch.float64) + offset
    w = 1 + 0.1 * torch.randn(shape[-1], generator=g, dtype=torch.float64)
    b = 0.1 * torch.randn(shape[-1], generator=g, dtype=torch.float64)
    dy = torch.randn(shape, generator=g, dtype=torch.float64)
    return [t.to(dtype).requires_grad_(i < 3) for i, t in enumerate((x, w, b, dy))]


def _grads(y, dy, *leaves):
    return torch.autograd.grad(y, leaves, dy)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_layer_norm_matches_formula_and_pytorch(dtype):
    x, w, b, dy = _inputs(dtype)
    y = kernel.layer_norm(x, w, b, 1e-5)
    ref = formula(x, dims=(-1,), eps=1e-5, weight=w, bias=b)[0]
    torch.testing.assert_close(y, ref, **TOL[dtype])
    torch.testing.assert_close(y, F.layer_norm(x, (48,), w, b, 1e-5), **TOL[dtype])
    for got, want in zip(_grads(y, dy, x, w, b), _grads(ref, dy, x, w, b)):
        torch.testing.assert_close(got, want, **TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rms_norm_matches_formula_and_pytorch(dtype):
    x, w, _, dy = _inputs(dtype)
    y = kernel.rms_norm(x, w, 1e-6)
    ref = formula(x, dims=(-1,), eps=1e-6, weight=w, center=False)[0]
    torch.testing.assert_close(y, ref, **TOL[dtype])
    torch.testing.assert_close(y, F.rms_norm(x, (48,), w, 1e-6), **TOL[dtype])
    for got, want in zip(_grads(y, dy, x, w), _grads(ref, dy, x, w)):
        torch.testing.assert_close(got, want, **TOL[dtype])


def test_layer_norm_without_bias_matches_pytorch():
    x, w, _, dy = _inputs(torch.float64)
    y = kernel.layer_norm(x, w, None, 1e-5)
    ref = F.layer_norm(x, (48,), w, None, 1e-5)
    torch.testing.assert_close(y, ref, **TOL[torch.float64])
    for got, want in zip(_grads(y, dy, x, w), _grads(ref, dy, x, w)):
        torch.testing.assert_close(got, want, **TOL[torch.float64])


def test_gradcheck_float64():
    x, w, b, _ = _inputs(torch.float64, shape=(3, 7))
    assert torch.autograd.gradcheck(lambda x, w, b: kernel.layer_norm(x, w, b), (x, w, b))
    assert torch.autograd.gradcheck(lambda x, w: kernel.rms_norm(x, w), (x, w))


@pytest.mark.parametrize("offset", [1e3, 1e4, 1e5])
def test_layer_norm_float32_far_from_zero_against_float64(offset):
    # Unit-variance rows at a large offset: the first pass's mean carries a rounding c of order
    # offset * 2^-24, which the corrected variance removes; a wrong sign in c^2 or in the
    # mean's correction moves y by far more than this tolerance.
    x32, w32, b32, dy32 = _inputs(torch.float32, shape=(16, 256), offset=offset)
    x64, w64, b64, dy64 = (t.detach().double().requires_grad_(t.requires_grad)
                           for t in (x32, w32, b32, dy32))
    y32 = kernel.layer_norm(x32, w32, b32, 1e-5)
    y64 = formula(x64, dims=(-1,), eps=1e-5, weight=w64, bias=b64)[0]
    # Measured error at offset o: about 5e-8 * o; without the fold of c into the mean it
    # would be about |c| * rstd, 5e-7 * o: the tolerance lies between the two.
    tol = 1e-7 * offset
    torch.testing.assert_close(y32.double(), y64, rtol=0, atol=tol)
    g32 = _grads(y32, dy32, x32)[0]
    g64 = _grads(y64, dy64, x64)[0]
    torch.testing.assert_close(g32.double(), g64, rtol=0, atol=10 * tol)
