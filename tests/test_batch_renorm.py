"""Batch renormalization (Ioffe, 2017): normlib.functional.batch_renorm, normlib.nn.BatchRenorm1d/2d."""
import pytest
import torch

import normlib.functional as NF
import normlib.nn as nnn
from conftest import assert_close


def paper_batch_renorm(x, mu, var, gamma, beta, eps, rmax, dmax):
    """Algorithm 1 of the paper, op for op, for autograd to differentiate (r, d: stop_gradient)."""
    dims = [0] + list(range(2, x.dim()))
    shape = [1, -1] + [1] * (x.dim() - 2)
    mu_b = x.mean(dim=dims, keepdim=True)
    sigma_b = torch.sqrt(((x - mu_b) ** 2).mean(dim=dims, keepdim=True) + eps)
    sigma = torch.sqrt(var.reshape(shape) + eps)
    r = torch.clamp(sigma_b / sigma, 1 / rmax, rmax).detach()
    d = torch.clamp((mu_b - mu.reshape(shape)) / sigma, -dmax, dmax).detach()
    x_hat = (x - mu_b) / sigma_b * r + d
    return gamma.reshape(shape) * x_hat + beta.reshape(shape)


def _stats(c, shift=0.7, scale=2.5):
    mu = torch.linspace(-shift, shift, c, dtype=torch.float64)
    var = torch.linspace(1 / scale, scale, c, dtype=torch.float64)
    return mu, var


@pytest.mark.parametrize("shape", [(16, 5), (8, 5, 6), (6, 5, 3, 4)])
@pytest.mark.parametrize("rmax,dmax", [(3.0, 5.0), (1.2, 0.1), (1.0, 0.0)])
def test_output_and_gradients_equal_the_papers_equations_by_autograd(shape, rmax, dmax):
    c = shape[1]
    x = (torch.randn(shape, dtype=torch.float64) * 1.5 + 0.3).requires_grad_()
    gamma = torch.rand(c, dtype=torch.float64).add(0.5).requires_grad_()
    beta = torch.randn(c, dtype=torch.float64).requires_grad_()
    mu, var = _stats(c)
    y = NF.batch_renorm(x, mu.clone(), var.clone(), gamma, beta, training=True, rmax=rmax, dmax=dmax)
    ref = paper_batch_renorm(x, mu, var, gamma, beta, 1e-5, rmax, dmax)
    assert_close(y, ref)
    g = torch.randn_like(y)
    for a, b in zip(torch.autograd.grad(y, (x, gamma, beta), g), torch.autograd.grad(ref, (x, gamma, beta), g)):
        assert_close(a, b)


def test_where_no_clip_is_active_training_uses_the_inference_transform():
    x = torch.randn(32, 4, 3, 3, dtype=torch.float64) * 2 + 1
    mu, var = _stats(4, shift=0.5, scale=1.5)
    y = NF.batch_renorm(x, mu.clone(), var.clone(), training=True, rmax=100.0, dmax=100.0)
    expected = (x - mu.reshape(1, -1, 1, 1)) / torch.sqrt(var.reshape(1, -1, 1, 1) + 1e-5)
    assert_close(y, expected)


@pytest.mark.parametrize("rmax,dmax,mu,var", [
    (1.0, 0.0, 0.3, 2.0),  # r = 1, d = 0: batch norm
    (1.5, 0.5, 50.0, 1e-3),  # both clips saturated: r = rmax, d = -dmax
])
def test_gradcheck_float64_where_r_and_d_are_locally_constant(rmax, dmax, mu, var):
    """A stop-gradient is the true derivative only where r and d do not move with x: at saturated
    clips (or r = 1, d = 0). There finite differences and the backward pass must agree."""
    x = torch.randn(6, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    gamma = torch.rand(3, dtype=torch.float64, requires_grad=True)
    beta = torch.randn(3, dtype=torch.float64, requires_grad=True)
    running_mean, running_var = torch.full((3,), mu, dtype=torch.float64), torch.full((3,), var, dtype=torch.float64)

    def f(x, gamma, beta):  # momentum 0: the running statistics stay as they are between calls
        return NF.batch_renorm(x, running_mean, running_var, gamma, beta, training=True, momentum=0.0, rmax=rmax, dmax=dmax)

    assert torch.autograd.gradcheck(f, (x, gamma, beta))
    assert torch.autograd.gradgradcheck(f, (x, gamma, beta))


@pytest.mark.parametrize("cls,ref_cls,shape", [
    (nnn.BatchRenorm2d, torch.nn.BatchNorm2d, (8, 3, 4, 4)),
    (nnn.BatchRenorm1d, torch.nn.BatchNorm1d, (16, 3)),
    (nnn.BatchRenorm1d, torch.nn.BatchNorm1d, (8, 3, 5)),
])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_with_rmax_1_and_dmax_0_it_is_torch_batch_norm_in_training_and_evaluation(cls, ref_cls, shape, momentum):
    ours = cls(3, momentum=momentum, rmax=1.0, dmax=0.0).double()
    ref = ref_cls(3, momentum=momentum).double()
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5), ref.bias.uniform_(-1, 1)
        ours.weight.copy_(ref.weight), ours.bias.copy_(ref.bias)
    for step in range(4):
        x = (torch.randn(shape, dtype=torch.float64) * (step + 1) + step).requires_grad_()
        y_ours, y_ref = ours(x), ref(x)
        assert_close(y_ours, y_ref)
        g = torch.randn_like(y_ref)
        for a, b in zip(torch.autograd.grad(y_ours, [x, *ours.parameters()], g),
                        torch.autograd.grad(y_ref, [x, *ref.parameters()], g)):
            assert_close(a, b)
    for key, value in ref.state_dict().items():
        assert_close(ours.state_dict()[key].double(), value.double())
    ours.eval(), ref.eval()
    x = torch.randn(shape, dtype=torch.float64)
    assert_close(ours(x), ref(x))


def test_state_dict_round_trips_with_torch_batch_norm():
    ref = torch.nn.BatchNorm2d(4)
    ref(torch.randn(8, 4, 3, 3) * 3 + 1)  # non-trivial running statistics
    ours = nnn.BatchRenorm2d(4)
    assert sorted(ours.state_dict()) == sorted(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    back = torch.nn.BatchNorm2d(4)
    back.load_state_dict(ours.state_dict())
    for key, value in ref.state_dict().items():
        assert torch.equal(back.state_dict()[key], value)
    ours.eval(), ref.eval()
    x = torch.randn(2, 4, 3, 3)
    assert_close(ours(x), ref(x))


def test_evaluation_mode_is_batch_norm_evaluation_and_leaves_buffers_alone():
    brn = nnn.BatchRenorm2d(3).double()
    brn(torch.randn(8, 3, 4, 4, dtype=torch.float64) * 2)
    brn.eval()
    before = {k: v.clone() for k, v in brn.state_dict().items()}
    x = torch.randn(1, 3, 4, 4, dtype=torch.float64)
    expected = torch.nn.functional.batch_norm(x, brn.running_mean, brn.running_var, brn.weight, brn.bias, False)
    assert_close(brn(x), expected)
    for key, value in brn.state_dict().items():
        assert torch.equal(value, before[key])


def test_warmup_relaxes_the_bounds_linearly_from_batch_norm_counted_in_training_batches():
    brn = nnn.BatchRenorm1d(2, rmax=3.0, dmax=5.0, warmup=(2, 6))
    assert [brn.bounds(s) for s in (0, 1, 2, 4, 6, 100)] == [(1.0, 0.0), (1.0, 0.0), (1.0, 0.0), (2.0, 2.5), (3.0, 5.0), (3.0, 5.0)]
    assert nnn.BatchRenorm1d(2).bounds(0) == (3.0, 5.0)
    # before `start` a training step is batch norm's, even with running statistics far from the batch's
    bn = torch.nn.BatchNorm1d(2).double()
    brn = brn.double()
    with torch.no_grad():
        brn.running_mean.fill_(10.0), bn.running_mean.fill_(10.0)
    x = torch.randn(16, 2, dtype=torch.float64)
    assert_close(brn(x), bn(x))
    assert int(brn.num_batches_tracked) == 1


@pytest.mark.parametrize("kwargs,match", [
    ({"rmax": 0.5}, "rmax must be at least 1"),
    ({"dmax": -1.0}, "dmax must be non-negative"),
    ({"warmup": (5, 2)}, "warmup must be"),
    ({"warmup": (-1, 2)}, "warmup must be"),
    ({"eps": 0.0}, "eps must be positive"),
])
def test_bad_arguments_raise_clear_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nnn.BatchRenorm2d(3, **kwargs)


def test_bad_inputs_raise_clear_value_errors():
    with pytest.raises(ValueError, match="expects a 4-D input, got 3-D"):
        nnn.BatchRenorm2d(3)(torch.randn(4, 3, 5))
    with pytest.raises(ValueError, match="expects 3 channels"):
        nnn.BatchRenorm2d(3)(torch.randn(4, 2, 5, 5))
    with pytest.raises(ValueError, match="expects a 2-D or 3-D input"):
        nnn.BatchRenorm1d(3)(torch.randn(4, 3, 5, 5))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nnn.BatchRenorm1d(3)(torch.randn(1, 3))
    rm, rv = torch.zeros(3), torch.ones(3)
    with pytest.raises(ValueError, match="needs running_mean and running_var"):
        NF.batch_renorm(torch.randn(4, 3), None, None, training=True)
    with pytest.raises(ValueError, match="rmax must be at least 1"):
        NF.batch_renorm(torch.randn(4, 3), rm, rv, training=True, rmax=0.9)
    with pytest.raises(ValueError, match="dmax must be non-negative"):
        NF.batch_renorm(torch.randn(4, 3), rm, rv, training=True, dmax=-0.1)
    with pytest.raises(ValueError, match="input must be"):
        NF.batch_renorm(torch.randn(4), rm, rv, training=True)
    with pytest.raises(ValueError, match="one value per channel"):
        NF.batch_renorm(torch.randn(4, 5), rm, rv, training=True)
