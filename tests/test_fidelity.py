"""torch.nn 2.13's behaviour where normlib once differed (issue 12, section 2): each test failed
before its fix. Every behaviour was checked against torch itself, which each test also runs."""
import math

import pytest
import torch
import torch.nn.functional as F

import normlib.functional as NF
import normlib.nn as nnn
from conftest import assert_close

NORMS_WITH_BIAS_FLAG = [
    ("BatchNorm1d", (3,), (4, 3, 5)),
    ("BatchNorm2d", (3,), (4, 3, 2, 2)),
    ("BatchNorm3d", (3,), (4, 3, 2, 2, 2)),
    ("InstanceNorm1d", (3,), (4, 3, 5)),
    ("InstanceNorm2d", (3,), (4, 3, 2, 2)),
    ("InstanceNorm3d", (3,), (4, 3, 2, 2, 2)),
    ("GroupNorm", (1, 3), (4, 3, 5)),
    ("SyncBatchNorm", (3,), (4, 3, 2, 2)),
]


@pytest.mark.parametrize("name,args,shape", NORMS_WITH_BIAS_FLAG)
def test_keyword_only_bias_false_gives_torch_state_dict_which_loads(name, args, shape):
    kwargs = {"affine": True} if name.startswith("Instance") else {}
    ref = getattr(torch.nn, name)(*args, bias=False, **kwargs)
    ours = getattr(nnn, name)(*args, bias=False, **kwargs)
    assert ours.bias is None and ref.bias is None
    assert sorted(ours.state_dict()) == sorted(ref.state_dict())
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(shape)
    assert_close(ours(x), ref(x))
    assert repr(ours) == repr(ref)


@pytest.mark.parametrize("call", [
    lambda lib: lib.group_norm(torch.randn(0, 2), 1),
    lambda lib: lib.group_norm(torch.randn(0, 4, 3), 2, torch.ones(4), torch.zeros(4)),
    lambda lib: lib.group_norm(torch.randn(2, 4, 0), 2),
    lambda lib: lib.batch_norm(torch.randn(0), None, None, training=True),
    lambda lib: lib.batch_norm(torch.randn(0, 3, 4), None, None, training=True),
    lambda lib: lib.instance_norm(torch.randn(0, 3, 4)),
    lambda lib: lib.layer_norm(torch.randn(0, 3), (3,)),
    lambda lib: lib.local_response_norm(torch.randn(0, 3, 4), 2),
])
def test_empty_input_gives_empty_output_like_torch(call):
    assert call(NF).shape == call(F).shape


def test_group_norm_module_on_an_empty_batch():
    x = torch.randn(0, 2, 5)
    assert nnn.GroupNorm(1, 2)(x).shape == torch.nn.GroupNorm(1, 2)(x).shape == (0, 2, 5)


def test_batch_norm_training_on_an_empty_batch_returns_empty_and_counts_the_batch():
    ours, ref = nnn.BatchNorm1d(5), torch.nn.BatchNorm1d(5)
    for m in (ours, ref):
        m.running_mean.fill_(2.0)
    x = torch.randn(0, 5, 9)
    assert ours(x).shape == ref(x).shape == (0, 5, 9)
    for key, value in ref.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    assert int(ours.num_batches_tracked) == 1


@pytest.mark.parametrize("momentum", [0.1, None])
def test_instance_norm_never_counts_batches_and_momentum_none_keeps_running_stats(momentum):
    ours = nnn.InstanceNorm1d(3, momentum=momentum, track_running_stats=True)
    ref = torch.nn.InstanceNorm1d(3, momentum=momentum, track_running_stats=True)
    for step in range(3):
        x = torch.randn(4, 3, 7) * (step + 1) + step
        assert_close(ours(x), ref(x))
    for key, value in ref.state_dict().items():
        if value.is_floating_point():
            assert_close(ours.state_dict()[key], value)
        else:
            assert torch.equal(ours.state_dict()[key], value), key
    assert int(ours.num_batches_tracked) == 0
    if momentum is None:
        assert torch.equal(ours.running_mean, torch.zeros(3)) and torch.equal(ours.running_var, torch.ones(3))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_layer_norm_over_one_element_has_an_exactly_zero_input_gradient(dtype):
    x = torch.tensor([[0.3], [-1.7], [2.5]], dtype=dtype, requires_grad=True)
    w, b = torch.tensor([1.3], dtype=dtype), torch.tensor([0.2], dtype=dtype)
    y = NF.layer_norm(x, (1,), w, b)
    (gx,) = torch.autograd.grad(y, x, torch.tensor([[1.1], [-0.7], [0.9]], dtype=dtype))
    (gx_torch,) = torch.autograd.grad(F.layer_norm(x, (1,), w, b), x, torch.ones_like(x))
    assert torch.equal(gx, torch.zeros_like(x)) and torch.equal(gx_torch, torch.zeros_like(x))


LOW_PRECISION_METHODS = {
    "batch": lambda lib, x, w, b: lib.batch_norm(x, None, None, w, b, training=True),
    "layer": lambda lib, x, w, b: lib.layer_norm(x, x.shape[1:]),
    "instance": lambda lib, x, w, b: lib.instance_norm(x, weight=w, bias=b),
    "group": lambda lib, x, w, b: lib.group_norm(x, 4, w, b),
}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("method", LOW_PRECISION_METHODS)
def test_half_precision_accumulates_in_float32_so_errors_match_torch(dtype, method):
    """In float16/bfloat16 the statistics run in float32, as in PyTorch's kernels: normlib's output
    and gradient errors (against float64) are then within 1.5x of PyTorch's, not 2-15x larger."""
    f = LOW_PRECISION_METHODS[method]
    x = (torch.randn(8, 8, 6, 6, dtype=torch.float64) * 3 + 5).to(dtype)
    w, b = (torch.rand(8, dtype=torch.float64) + 0.5).to(dtype), torch.randn(8, dtype=torch.float64).to(dtype)
    g = torch.randn(x.shape, dtype=torch.float64).to(dtype)
    x64 = x.double().requires_grad_()
    y64 = f(NF, x64, w.double(), b.double())
    (gx64,) = torch.autograd.grad(y64, x64, g.double())
    errors = {}
    for name, lib in (("normlib", NF), ("torch", F)):
        xl = x.clone().requires_grad_()
        y = f(lib, xl, w, b)
        assert y.dtype == dtype
        (gx,) = torch.autograd.grad(y, xl, g)
        errors[name] = ((y.double() - y64).abs().max().item(), (gx.double() - gx64).abs().max().item())
    for ours, theirs in zip(errors["normlib"], errors["torch"]):
        assert ours <= 1.5 * theirs + 1e-3 * (dtype == torch.bfloat16), errors


def test_eps_zero_and_negative_are_accepted_where_torch_accepts_them():
    x = torch.randn(4, 3, 5, dtype=torch.float64)
    assert_close(NF.layer_norm(x, (5,), eps=0.0), F.layer_norm(x, (5,), eps=0.0))
    assert_close(NF.group_norm(x, 3, eps=0.0), F.group_norm(x, 3, eps=0.0))
    assert_close(NF.instance_norm(x, eps=0.0), F.instance_norm(x, eps=0.0))
    assert_close(NF.instance_norm(x, eps=-1e-9), F.instance_norm(x, eps=-1e-9))
    assert_close(nnn.LayerNorm(5, eps=0)(x), torch.nn.LayerNorm(5, eps=0).double()(x))
    assert_close(nnn.GroupNorm(3, 3, eps=0).double()(x), torch.nn.GroupNorm(3, 3, eps=0).double()(x))
    rm, rv = torch.zeros(3, dtype=torch.float64), torch.rand(3, dtype=torch.float64) + 0.5
    assert_close(NF.batch_norm(x, rm, rv, eps=0.0), F.batch_norm(x, rm, rv, eps=0.0))


def test_eval_only_batch_norm_with_eps_zero_builds_and_runs_and_trains_only_with_positive_eps():
    ours, ref = nnn.BatchNorm2d(3, eps=0), torch.nn.BatchNorm2d(3, eps=0)
    x = torch.randn(2, 3, 4, 4)
    assert_close(ours.eval()(x), ref.eval()(x))
    for m in (ours.train(), ref.train()):
        with pytest.raises(ValueError, match="eps must be positive during training"):
            m(x)


@pytest.mark.parametrize("call", [
    lambda lib, x: lib.batch_norm(x, None, None, training=True),
    lambda lib, x: lib.batch_norm(x, torch.zeros(4), torch.ones(4)),
    lambda lib, x: lib.layer_norm(x, (3,)),
    lambda lib, x: lib.instance_norm(x),
    lambda lib, x: lib.group_norm(x, 2),
    lambda lib, x: lib.local_response_norm(x, 2),
])
def test_complex_input_raises_as_in_torch(call):
    x = torch.randn(2, 4, 3, dtype=torch.complex64)
    with pytest.raises(NotImplementedError):
        call(F, x)
    with pytest.raises(ValueError, match="real"):
        call(NF, x)


def test_integer_input_to_local_response_norm_is_accepted_as_by_torch():
    x = torch.randint(0, 9, (2, 5, 3))
    y = NF.local_response_norm(x, 3, alpha=0.1)
    assert y.dtype == torch.float32
    assert_close(y, F.local_response_norm(x, 3, alpha=0.1))


def test_instance_norm_without_affine_only_warns_on_a_channel_mismatch_like_torch():
    x = torch.randn(2, 4, 5)
    with pytest.warns(UserWarning):
        ref = torch.nn.InstanceNorm1d(3)(x)
    with pytest.warns(UserWarning):
        assert_close(nnn.InstanceNorm1d(3)(x), ref)
