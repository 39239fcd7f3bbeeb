"""normlib.nn modules are drop-in replacements for their torch.nn namesakes."""
import pytest
import torch

import normlib.nn as nnn
from conftest import assert_close

PAIRS = [
    (lambda m: m.BatchNorm1d(4), (16, 4)),
    (lambda m: m.BatchNorm1d(4, momentum=None), (8, 4, 5)),
    (lambda m: m.BatchNorm2d(3, affine=False), (6, 3, 4, 4)),
    (lambda m: m.BatchNorm2d(3, track_running_stats=False), (6, 3, 4, 4)),
    (lambda m: m.BatchNorm3d(2), (3, 2, 2, 3, 3)),
    (lambda m: m.LayerNorm((3, 4, 4)), (6, 3, 4, 4)),
    (lambda m: m.LayerNorm(8, bias=False), (5, 8)),
    (lambda m: m.LayerNorm(8, elementwise_affine=False), (5, 8)),
    (lambda m: m.InstanceNorm1d(3), (4, 3, 9)),
    (lambda m: m.InstanceNorm2d(3, affine=True, track_running_stats=True), (4, 3, 5, 5)),
    (lambda m: m.InstanceNorm2d(3, momentum=0.5, track_running_stats=True), (4, 3, 5, 5)),
    (lambda m: m.InstanceNorm1d(3, momentum=None, track_running_stats=True), (4, 3, 9)),
    (lambda m: m.InstanceNorm3d(2, affine=True, bias=False, track_running_stats=True), (3, 2, 3, 3, 3)),
    (lambda m: m.BatchNorm2d(3, bias=False), (6, 3, 4, 4)),
    (lambda m: m.GroupNorm(2, 6, bias=False), (3, 6, 4, 4)),
    (lambda m: m.GroupNorm(2, 6), (3, 6, 4, 4)),
    (lambda m: m.GroupNorm(3, 6, affine=False), (3, 6, 5)),
    (lambda m: m.LocalResponseNorm(5, alpha=1e-2, beta=0.75, k=2.0), (2, 8, 3, 3)),
]


@pytest.mark.parametrize("make,shape", PAIRS)
def test_module_matches_torch_in_training_and_evaluation_over_several_steps(make, shape):
    ours, ref = make(nnn).double(), make(torch.nn).double()
    assert sorted(ours.state_dict()) == sorted(ref.state_dict())
    with torch.no_grad():  # non-trivial affine parameters, identical in both
        for p_ours, p_ref in zip(ours.parameters(), ref.parameters()):
            p_ref.uniform_(0.5, 1.5)
            p_ours.copy_(p_ref)
    for step in range(4):
        x = (torch.randn(shape, dtype=torch.float64) * (step + 1) + step).requires_grad_()
        y_ours, y_ref = ours(x), ref(x)
        assert_close(y_ours, y_ref)
        grad = torch.randn_like(y_ref)
        g_ours = torch.autograd.grad(y_ours, [x, *ours.parameters()], grad)
        g_ref = torch.autograd.grad(y_ref, [x, *ref.parameters()], grad)
        for a, b in zip(g_ours, g_ref):
            assert_close(a, b)
    for key, value in ref.state_dict().items():
        if value.is_floating_point():
            assert_close(ours.state_dict()[key], value)
        else:  # num_batches_tracked
            assert torch.equal(ours.state_dict()[key], value), (key, ours.state_dict()[key], value)
    ours.eval(), ref.eval()
    x = torch.randn(shape, dtype=torch.float64)
    assert_close(ours(x), ref(x))


@pytest.mark.parametrize("make,shape", PAIRS)
def test_torch_state_dict_loads_into_normlib_module_and_back(make, shape):
    ref = make(torch.nn)
    with torch.no_grad():
        for p in ref.parameters():
            p.uniform_(0.5, 1.5)
    ref.train()
    ref(torch.randn(shape))
    ours = make(nnn)
    ours.load_state_dict(ref.state_dict())
    ours.eval(), ref.eval()
    x = torch.randn(shape)
    assert_close(ours(x), ref(x))
    back = make(torch.nn)
    back.load_state_dict(ours.state_dict())
    back.eval()
    assert_close(back(x), ref(x))


def test_batch_norm_momentum_none_is_a_cumulative_average():
    bn = nnn.BatchNorm1d(2, momentum=None).double()
    batches = [torch.randn(10, 2, dtype=torch.float64) + i for i in range(5)]
    for b in batches:
        bn(b)
    assert_close(bn.running_mean, torch.stack([b.mean(0) for b in batches]).mean(0))
    assert_close(bn.running_var, torch.stack([b.var(0) for b in batches]).mean(0))
    assert int(bn.num_batches_tracked) == 5


def test_batch_norm_in_eval_mode_treats_each_sample_independently():
    bn = nnn.BatchNorm2d(3)
    bn(torch.randn(8, 3, 4, 4))
    bn.eval()
    x = torch.randn(5, 3, 4, 4)
    alone = torch.cat([bn(x[i : i + 1]) for i in range(5)])
    assert_close(bn(x), alone)


def test_instance_norm_accepts_unbatched_input_like_torch():
    x = torch.randn(3, 5, 5)
    assert_close(nnn.InstanceNorm2d(3)(x), torch.nn.InstanceNorm2d(3)(x))


@pytest.mark.parametrize("dim", [0, 1, None])
def test_weight_norm_parametrization_matches_torch_keys_forward_and_gradients(dim):
    torch.manual_seed(1)
    ref = torch.nn.utils.parametrizations.weight_norm(torch.nn.Linear(5, 3).double(), dim=dim)
    torch.manual_seed(1)
    ours = nnn.weight_norm(torch.nn.Linear(5, 3).double(), dim=dim)
    assert sorted(ours.state_dict()) == sorted(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(7, 5, dtype=torch.float64)
    y_ours, y_ref = ours(x), ref(x)
    assert_close(y_ours, y_ref)
    y_ours.square().sum().backward()
    y_ref.square().sum().backward()
    for (n1, p1), (n2, p2) in zip(sorted(ours.named_parameters()), sorted(ref.named_parameters())):
        assert n1 == n2
        assert_close(p1.grad, p2.grad)


def test_weight_norm_on_conv_weight_keeps_one_norm_per_output_channel():
    conv = nnn.weight_norm(torch.nn.Conv2d(2, 4, 3).double())
    norms = torch.linalg.vector_norm(conv.weight, dim=(1, 2, 3))
    assert_close(norms, conv.parametrizations.weight.original0.flatten())
