"""Bad input gets a ValueError that names the argument, what was expected and what came."""
import pytest
import torch

import normlib.functional as NF
import normlib.nn as nnn


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: nnn.BatchNorm2d(3)(torch.randn(4, 3, 5)), r"4-D input, got 3-D"),
        (lambda: nnn.BatchNorm1d(3)(torch.randn(4, 3, 5, 5)), r"2-D or 3-D input, got 4-D"),
        (lambda: nnn.InstanceNorm2d(3)(torch.randn(3, 5)), r"3-D or 4-D input, got 2-D"),
        (lambda: nnn.BatchNorm2d(3)(torch.randn(4, 5, 2, 2)), r"expects 3 channels.*\(4, 5, 2, 2\)"),
        (lambda: nnn.InstanceNorm1d(3, affine=True)(torch.randn(2, 4, 5)), r"expects 3 channels"),
        (lambda: nnn.GroupNorm(2, 6)(torch.randn(2, 4, 3)), r"expects 6 channels"),
        (lambda: nnn.GroupNorm(4, 6), r"num_groups must be a positive divisor of num_channels=6, got 4"),
        (lambda: NF.group_norm(torch.randn(2, 6, 3), 4), r"num_groups must be a positive divisor .* 6, got 4"),
        (lambda: nnn.BatchNorm1d(3)(torch.randn(1, 3)), r"more than 1 value per channel.*\(1, 3\)"),
        (lambda: NF.batch_norm(torch.randn(1, 3, 1, 1), None, None, training=True), r"more than 1 value per channel"),
        (lambda: NF.layer_norm(torch.randn(2, 3, 4), (3, 5)), r"normalized_shape \(3, 5\) must match .* \(2, 3, 4\)"),
        (lambda: nnn.LayerNorm(5)(torch.randn(2, 4)), r"normalized_shape \(5,\) must match"),
        (lambda: nnn.BatchNorm2d(3, eps=0)(torch.randn(2, 3, 2, 2)), r"eps must be positive during training, but got 0"),
        (lambda: nnn.BatchNorm2d(3, eps=-1).eval()(torch.randn(2, 3, 2, 2)), r"eps must be non-negative, but got -1"),
        (lambda: nnn.BatchNorm1d(3)(torch.ones(4, 3, dtype=torch.long)), r"floating-point tensor, got dtype torch.int64"),
        (lambda: NF.layer_norm(torch.ones(2, 3, dtype=torch.int32), (3,)), r"floating-point.*torch.int32"),
        (lambda: NF.local_response_norm(torch.ones(2, 3, 4, dtype=torch.complex64), 2), r"real tensor"),
        (lambda: NF.batch_norm(torch.ones(4, 3, dtype=torch.complex64), None, None, training=True), r"real floating-point tensor, got dtype torch.complex64"),
        (lambda: NF.local_response_norm(torch.randn(2, 3), 2), r"at least 3 dimensions, got shape \(2, 3\)"),
        (lambda: NF.batch_norm(torch.randn(4, 3), None, None, torch.ones(4), training=True), r"weight must have one value per channel, shape \(3,\), got \(4,\)"),
        (lambda: NF.weight_norm(torch.randn(3, 4), torch.ones(4)), r"g must have 3 values"),
        (lambda: NF.cosine_norm(torch.randn(2, 3), torch.randn(4, 5)), r"input \(N, in\) and weight \(out, in\)"),
    ],
)
def test_bad_input_raises_a_clear_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    "ours,theirs,shape",
    [
        (lambda: nnn.BatchNorm2d(3), lambda: torch.nn.BatchNorm2d(3), (4, 3, 5)),
        (lambda: nnn.BatchNorm1d(3), lambda: torch.nn.BatchNorm1d(3), (1, 3)),
        (lambda: nnn.GroupNorm(2, 6), lambda: torch.nn.GroupNorm(2, 6), (2, 4, 3)),
        (lambda: nnn.LayerNorm(5), lambda: torch.nn.LayerNorm(5), (2, 4)),
    ],
)
def test_normlib_raises_where_torch_raises(ours, theirs, shape):
    x = torch.randn(shape)
    with pytest.raises((ValueError, RuntimeError)):
        theirs()(x)
    with pytest.raises(ValueError):
        ours()(x)
