"""One framework behind BN, LN, IN and GN, and properties that hold for every shape."""
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import normlib.functional as NF
from normlib.core import moments, reduce_dims
from conftest import assert_close


def test_group_norm_with_one_group_equals_layer_norm_with_per_channel_affine():
    x = torch.randn(3, 6, 4, 4, dtype=torch.float64)
    w, b = torch.rand(6, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    ln = NF.layer_norm(x, x.shape[1:]) * w[:, None, None] + b[:, None, None]
    assert_close(NF.group_norm(x, 1, w, b), ln)


def test_group_norm_with_one_group_per_channel_equals_instance_norm():
    x = torch.randn(3, 6, 4, 4, dtype=torch.float64)
    assert_close(NF.group_norm(x, 6), NF.instance_norm(x))


def test_instance_norm_equals_batch_norm_for_a_batch_of_one():
    x = torch.randn(1, 4, 5, 5, dtype=torch.float64)
    assert_close(NF.instance_norm(x), NF.batch_norm(x, None, None, training=True))


def test_reduction_axes_table_gives_the_documented_dimensions():
    assert reduce_dims("batch", 4) == (0, 2, 3)
    assert reduce_dims("layer", 4) == (1, 2, 3)
    assert reduce_dims("instance", 4) == (2, 3)
    assert reduce_dims("batch", 2) == (0,)


shapes = st.tuples(
    st.integers(2, 5), st.sampled_from([1, 2, 3, 4, 6]), st.integers(1, 4), st.integers(2, 4)
)


@settings(max_examples=40, deadline=None)
@given(shape=shapes, scale=st.floats(0.01, 100.0), offset=st.floats(-100.0, 100.0), seed=st.integers(0, 2**16))
def test_every_method_matches_torch_on_random_shapes_scales_and_offsets(shape, scale, offset, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * scale + offset
    F = torch.nn.functional
    c = shape[1]
    groups = [d for d in range(1, c + 1) if c % d == 0][-1 if seed % 2 else 0]
    assert_close(NF.batch_norm(x, None, None, training=True), F.batch_norm(x, None, None, training=True))
    assert_close(NF.layer_norm(x, x.shape[1:]), F.layer_norm(x, x.shape[1:]))
    assert_close(NF.instance_norm(x), F.instance_norm(x))
    assert_close(NF.group_norm(x, groups), F.group_norm(x, groups))
    assert_close(NF.local_response_norm(x, 3, alpha=1e-3), F.local_response_norm(x, 3, alpha=1e-3))


@settings(max_examples=30, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_batch_norm_output_has_zero_mean_and_unit_variance_per_channel(shape, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 5 + 2
    y = NF.batch_norm(x, None, None, training=True, eps=1e-12)
    mean, var = moments(y, reduce_dims("batch", y.dim()))
    assert mean.abs().max() < 1e-10
    assert (var - 1).abs().max() < 1e-8


def test_float32_statistics_stay_accurate_at_a_large_offset_where_the_one_pass_formula_fails():
    torch.manual_seed(0)
    x64 = torch.randn(64, 3, 16, 16, dtype=torch.float64) + 1e4  # mean 1e4, spread 1
    x32 = x64.float()
    dims = reduce_dims("batch", 4)
    exact = x32.double().var(dim=dims, unbiased=False)
    _, ours = moments(x32, dims)
    one_pass = (x32 * x32).mean(dim=dims) - x32.mean(dim=dims) ** 2
    ours_err = ((ours.flatten().double() - exact) / exact).abs().max().item()
    naive_err = ((one_pass.double() - exact) / exact).abs().max().item()
    assert ours_err < 1e-5, ours_err
    assert naive_err > 1e-2, naive_err
    y_ref = NF.batch_norm(x32.double(), None, None, training=True)
    ours_out = (NF.batch_norm(x32, None, None, training=True).double() - y_ref).abs().max()
    torch_out = (torch.nn.functional.batch_norm(x32, None, None, training=True).double() - y_ref).abs().max()
    assert ours_out <= 2 * torch_out, (ours_out, torch_out)  # float32 output as good as PyTorch's
