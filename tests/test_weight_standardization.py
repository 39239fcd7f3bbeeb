"""Weight standardization (Qiao et al., 2019): the functional form, the parametrization, WSConv2d."""
import pytest
import torch
from torch.nn.utils import parametrize

import normlib.functional as NF
import normlib.nn as nnn
from conftest import assert_close


def paper_ws(w, eps):
    """Eq. (2) of the paper, op for op: per output filter, the mean and biased variance of its fan-in."""
    flat = w.reshape(w.shape[0], -1)
    mu = flat.mean(dim=1, keepdim=True)
    sigma = torch.sqrt(((flat - mu) ** 2).mean(dim=1, keepdim=True) + eps)
    return ((flat - mu) / sigma).reshape(w.shape)


@pytest.mark.parametrize("shape", [(8, 3, 3, 3), (5, 7), (4, 2, 5), (6, 1, 2, 2, 2)])
def test_equals_the_papers_equation_forward_and_backward(shape):
    w = (torch.randn(shape, dtype=torch.float64) * 0.3 + 0.1).requires_grad_()
    ours, ref = NF.weight_standardization(w, eps=1e-5), paper_ws(w, 1e-5)
    assert_close(ours, ref)
    g = torch.randn_like(ref)
    assert_close(torch.autograd.grad(ours, w, g)[0], torch.autograd.grad(ref, w, g)[0])


def test_each_output_filter_has_mean_zero_and_variance_one_up_to_eps():
    w = torch.randn(16, 4, 3, 3, dtype=torch.float64) * 0.2 + 3.0
    ws = NF.weight_standardization(w, eps=0.0 + 1e-12)
    assert ws.mean(dim=(1, 2, 3)).abs().max() < 1e-12
    assert (ws.var(dim=(1, 2, 3), unbiased=False) - 1).abs().max() < 1e-9


def test_gradcheck_float64():
    w = torch.randn(4, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w: NF.weight_standardization(w, 1e-5), (w,))
    assert torch.autograd.gradgradcheck(lambda w: NF.weight_standardization(w, 1e-5), (w,))


def test_parametrization_and_wsconv2d_compute_the_same_convolution_as_conv2d_with_standardized_weights():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, groups=1).double()
    ws = nnn.WSConv2d(3, 8, 3, padding=1, eps=1e-5).double()
    ws.load_state_dict(conv.state_dict())  # Conv2d's keys: the raw weight and the bias
    param = nnn.weight_standardization(torch.nn.Conv2d(3, 8, 3, padding=1).double(), eps=1e-5)
    with torch.no_grad():
        param.parametrizations.weight.original.copy_(conv.weight)  # the raw, stored weight
        param.bias.copy_(conv.bias)
    assert parametrize.is_parametrized(param, "weight")
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    expected = torch.nn.functional.conv2d(x, paper_ws(conv.weight, 1e-5), conv.bias, padding=1)
    for layer in (ws, param):
        y = layer(x)
        assert_close(y, expected)
    g = torch.randn_like(expected)
    raw = {ws: ws.weight, param: param.parametrizations.weight.original}
    grads = [torch.autograd.grad(layer(x), [x, raw[layer], layer.bias], g) for layer in (ws, param)]
    for a, b in zip(*grads):
        assert_close(a, b)


def test_state_dicts_round_trip():
    ws = nnn.WSConv2d(2, 4, 3, groups=2, bias=False)
    assert sorted(ws.state_dict()) == sorted(torch.nn.Conv2d(2, 4, 3, groups=2, bias=False).state_dict()) == ["weight"]
    again = nnn.WSConv2d(2, 4, 3, groups=2, bias=False)
    again.load_state_dict(ws.state_dict())
    x = torch.randn(1, 2, 5, 5)
    assert torch.equal(again(x), ws(x))
    param = nnn.weight_standardization(torch.nn.Linear(6, 3))
    assert sorted(param.state_dict()) == ["bias", "parametrizations.weight.original"]
    other = nnn.weight_standardization(torch.nn.Linear(6, 3))
    other.load_state_dict(param.state_dict())
    assert torch.equal(other.weight, param.weight)
    assert_close(param.weight, NF.weight_standardization(param.parametrizations.weight.original))


def test_wsconv2d_weight_of_groups_is_standardized_per_output_filter():
    ws = nnn.WSConv2d(4, 6, 3, groups=2)  # weight (6, 2, 3, 3): fan-in of 2 * 3 * 3 = 18 values
    w_hat = NF.weight_standardization(ws.weight)
    assert w_hat.shape == (6, 2, 3, 3)
    assert w_hat.mean(dim=(1, 2, 3)).abs().max() < 1e-6


def test_bad_arguments_raise_clear_value_errors():
    with pytest.raises(ValueError, match="at least 2 dimensions, got 1-D"):
        NF.weight_standardization(torch.randn(5))
    with pytest.raises(ValueError, match="more than 1 value per filter"):
        NF.weight_standardization(torch.randn(5, 1, 1, 1))
    with pytest.raises(ValueError, match="eps must be positive"):
        NF.weight_standardization(torch.randn(5, 3), eps=0.0)
    with pytest.raises(ValueError, match="must be a real floating-point tensor"):
        NF.weight_standardization(torch.ones(5, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="eps must be positive"):
        nnn.WSConv2d(3, 4, 3, eps=-1.0)
    with pytest.raises(ValueError, match="eps must be positive"):
        nnn.WeightStandardization(eps=0.0)
