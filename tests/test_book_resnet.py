"""The book's residual networks (normlib.book.resnet), the signal-propagation helper
(normlib.book.diagnostics) and the practice chapter's helpers (normlib.book.practice)."""
import math

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from normlib.book.diagnostics import signal_propagation, signal_propagation_plot
from normlib.book.practice import (GhostBatchNorm2d, few_class_batches, freeze_batch_norm, predict,
                                   reestimate_batch_norm)
from normlib.book.resnet import ResidualMLP, residual_mlp
from normlib.book.train import fit, mlp
from normlib.book.data import Split

X = torch.randn(256, 64, dtype=torch.float64)


def test_skipinit_and_fixup_blocks_are_the_identity_at_initialization():
    for kind in ("skipinit", "fixup"):
        model = residual_mlp(kind, depth=6)
        h = torch.randn(16, 32, dtype=torch.float64)
        for block in model.blocks:
            assert torch.equal(block(h), h)
    fixup = residual_mlp("fixup", depth=6)
    assert torch.count_nonzero(fixup.head.weight) == 0 and torch.count_nonzero(fixup.head.bias) == 0


def test_fixup_scales_the_first_branch_layer_by_depth_to_the_minus_one_half():
    # He's std sqrt(2 / fan_in), times Fixup's L^(-1/(2m-2)) with m = 2 layers per branch
    depth = 9
    fixup = residual_mlp("fixup", depth=depth)
    w = torch.cat([b.linear1.weight.flatten() for b in fixup.blocks])  # 9 * 32 * 32 draws
    expected = math.sqrt(2 / 32) * depth ** -0.5
    assert abs(w.std().item() / expected - 1) < 0.05
    he = torch.cat([b.linear1.weight.flatten() for b in residual_mlp("unnormalized", depth=depth).blocks])
    assert abs(he.std().item() / math.sqrt(2 / 32) - 1) < 0.05
    assert torch.count_nonzero(fixup.blocks[0].linear2.weight) == 0
    assert fixup.blocks[0].linear1.bias is None and fixup.blocks[0].biases.shape == (4,)
    assert fixup.blocks[0].scale.item() == 1.0


def test_stream_variance_doubles_without_normalization_and_grows_by_one_with_bn():
    depth = 10
    growth, increase = [], []
    for seed in range(4):
        un = signal_propagation(residual_mlp("unnormalized", depth=depth, seed=seed), X)
        bn = signal_propagation(residual_mlp("bn", depth=depth, seed=seed), X)
        ms_un, ms_bn = un["squared_mean"] + un["variance"], bn["squared_mean"] + bn["variance"]
        growth.append((ms_un[-1] / ms_un[0]) ** (1 / depth))
        increase.append((ms_bn[-1] - ms_bn[0]) / depth)
    assert 1.6 < sum(growth) / 4 < 2.4
    assert 0.8 < sum(increase) / 4 < 1.2


def test_signal_propagation_leaves_the_model_untouched_and_reports_every_block():
    model = residual_mlp("bn", depth=3).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stats = signal_propagation(model, X)
    assert not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])
    assert set(stats) == {"squared_mean", "variance", "branch_squared_mean", "branch_variance"}
    assert all(len(v) == 4 for v in stats.values()) and math.isnan(stats["branch_variance"][0])


def test_signal_propagation_plot_draws_three_panels_for_every_network():
    fig, stats = signal_propagation_plot({k: residual_mlp(k, depth=3) for k in ("bn", "unnormalized")}, X)
    assert len(fig.axes) == 3 and set(stats) == {"bn", "unnormalized"}
    assert len(fig.axes[1].get_lines()) == 2


@pytest.mark.parametrize("kwargs,match", [
    ({"norm": "ln"}, "norm must be one of"),
    ({"placement": "middle"}, "placement must be"),
    ({"fixup": True, "norm": "bn"}, "fixup is for"),
    ({"depth": 0}, "depth must be a positive integer"),
])
def test_bad_switches_raise_value_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ResidualMLP(**kwargs)
    with pytest.raises(ValueError, match="kind must be one of"):
        residual_mlp("resnet")


def test_gn_and_end_placement_build_and_run():
    for kind in ("gn", "bn-end", "plain", "plain-bn"):
        assert residual_mlp(kind, depth=2)(X[:4]).shape == (4, 10)


def test_few_class_batches_hold_few_classes_and_cover_every_class():
    y = torch.arange(10).repeat_interleave(20)
    batches = list(few_class_batches(y, 10, 2)(torch.Generator().manual_seed(1)))
    assert all(len(b) == 10 and y[b].unique().numel() <= 2 for b in batches)
    assert torch.cat(batches).unique().numel() == 200  # 20 per class, chunks of 5: nothing dropped here
    with pytest.raises(ValueError, match="must divide"):
        few_class_batches(y, 10, 3)


def test_frozen_batch_norm_keeps_its_statistics_while_the_rest_trains_and_adabn_replaces_them():
    torch.manual_seed(0)
    data = Split(X, torch.randint(0, 10, (256,)), X[:32], torch.randint(0, 10, (32,)))
    model = mlp(norm=lambda c: torch.nn.BatchNorm1d(c, dtype=torch.float64), dtype=torch.float64)
    stats = model[1].running_mean.clone()
    weight = model[0].weight.detach().clone()
    fit(model, data, epochs=1, batch_size=32, lr=0.1, train_mode=freeze_batch_norm)
    assert torch.equal(model[1].running_mean, stats) and not torch.equal(model[0].weight, weight)
    shifted = 3 * X + 2
    reestimate_batch_norm(model, shifted, batch_size=64)
    with torch.no_grad():
        torch.testing.assert_close(model[1].running_mean, model[0](shifted).mean(dim=0))
    assert model[1].momentum == 0.1


def test_predict_in_training_mode_restores_mode_and_running_statistics():
    model = mlp(norm=lambda c: torch.nn.BatchNorm1d(c, dtype=torch.float64), dtype=torch.float64).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_pred = predict(model, X, 8, training=True)
    assert train_pred.shape == (256,) and not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])
    assert torch.equal(predict(model, X, 1, training=False), predict(model, X, 256, training=False))


def test_ghost_batch_norm_normalizes_each_chunk_on_its_own():
    ghost = GhostBatchNorm2d(3, 4, dtype=torch.float64)
    x = torch.randn(8, 3, 2, 2, dtype=torch.float64) + torch.arange(8, dtype=torch.float64).reshape(8, 1, 1, 1)
    y = ghost(x)
    for chunk in y.split(4):
        assert chunk.mean(dim=(0, 2, 3)).abs().max() < 1e-12
    assert int(ghost.bn.num_batches_tracked) == 2
