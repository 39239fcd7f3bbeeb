"""RMSNorm (Zhang & Sennrich, 2019): normlib's against torch.nn 2.13's, forward and backward."""
import pytest
import torch
import torch.nn.functional as F

import normlib.functional as NF
import normlib.nn as nnn
from conftest import assert_close


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape,normalized", [((8, 5), (5,)), ((2, 3, 4, 6), (4, 6)), ((7, 1), (1,))])
@pytest.mark.parametrize("with_weight", [False, True])
@pytest.mark.parametrize("eps", [None, 1e-6, 0.0])
def test_rms_norm_matches_torch_forward_and_backward(dtype, shape, normalized, with_weight, eps):
    x = (torch.randn(shape, dtype=dtype) * 3 + 1).requires_grad_()
    w = (torch.rand(normalized, dtype=dtype) + 0.5).requires_grad_() if with_weight else None
    ours, theirs = NF.rms_norm(x, normalized, w, eps), F.rms_norm(x, normalized, w, eps)
    assert_close(ours, theirs)
    g = torch.randn_like(theirs)
    leaves = [x] + ([w] if with_weight else [])
    for a, b in zip(torch.autograd.grad(ours, leaves, g), torch.autograd.grad(theirs, leaves, g)):
        assert_close(a, b)


def test_rms_norm_is_layer_norm_without_the_mean_on_centred_rows():
    x = torch.randn(6, 10, dtype=torch.float64)
    x = x - x.mean(dim=1, keepdim=True)
    assert_close(NF.rms_norm(x, (10,), eps=1e-5), NF.layer_norm(x, (10,), eps=1e-5))


def test_rms_norm_gradients_first_second_and_forward_mode_pass_gradcheck():
    x = torch.randn(3, 4, 5, dtype=torch.float64, requires_grad=True)
    w = (torch.rand(5, dtype=torch.float64) + 0.5).requires_grad_()
    f = lambda x, w: NF.rms_norm(x, (5,), w, 1e-6)
    assert torch.autograd.gradcheck(f, (x, w), check_forward_ad=True)
    assert torch.autograd.gradgradcheck(f, (x, w))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_rms_norm_in_half_precision_uses_float32_statistics_and_eps(dtype):
    x = torch.full((2, 4), 1e-3, dtype=dtype)  # mean square 1e-6: float16's eps would swamp it
    assert_close(NF.rms_norm(x, (4,)).float(), F.rms_norm(x, (4,)).float())
    assert NF.rms_norm(x, (4,)).dtype == dtype


def test_rms_norm_accepts_complex_input_as_torch_does():
    x = torch.randn(3, 4, dtype=torch.complex128)
    assert_close(NF.rms_norm(x, (4,)), F.rms_norm(x, (4,)))


def test_rms_norm_module_state_dict_round_trip_and_repr():
    ref = torch.nn.RMSNorm((3, 4), eps=1e-6).double()
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
    ours = nnn.RMSNorm((3, 4), eps=1e-6).double()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    assert_close(ours(x), ref(x))
    back = torch.nn.RMSNorm((3, 4), eps=1e-6).double()
    back.load_state_dict(ours.state_dict())
    assert_close(back(x), ref(x))
    assert repr(ours) == repr(ref) and repr(nnn.RMSNorm(5, elementwise_affine=False)) == repr(
        torch.nn.RMSNorm(5, elementwise_affine=False))
    assert sorted(nnn.RMSNorm(5, elementwise_affine=False).state_dict()) == []

