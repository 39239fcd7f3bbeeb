"""Signal-propagation plots (Brock, De & Smith 2021): one helper for every residual network of the book.

For a batch pushed through a network at initialization, after every residual block ``l`` it
records, over the channels of the residual stream ``x_l`` (shape ``(N, C)`` or ``(N, C, *)``):

- ``squared_mean``: the average over channels of the squared channel mean (mean over the batch
  and positions), Brock et al.'s "average channel squared mean";
- ``variance``: the average over channels of the channel variance, their "average channel variance";
- ``branch_variance``: the same for what the block added to the stream, ``x_l - x_{l-1}`` (the
  residual branch's output, with any scalar multiplier), their "residual average channel variance";
  ``branch_squared_mean`` its average channel squared mean.

``squared_mean + variance`` is the stream's mean square per channel, averaged over channels.

Index 0 is the stream entering the first block. The network is any module whose ``blocks``
attribute lists its residual blocks, each returning the stream; the model is copied, so running
statistics are not touched, and it is run in training mode (batch statistics), as at the first step.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["signal_propagation", "signal_propagation_plot"]


def _channel_stats(x: Tensor) -> tuple[float, float]:
    dims = [0] + list(range(2, x.dim()))
    mean = x.mean(dim=dims)
    var = x.var(dim=dims, unbiased=False)
    return mean.square().mean().item(), var.mean().item()


@torch.no_grad()
def signal_propagation(model: nn.Module, x: Tensor) -> dict[str, np.ndarray]:
    """``{"squared_mean", "variance", "branch_squared_mean", "branch_variance"}``: one value per block
    (index 0: the stream entering the first block, where the branch values are ``nan``)."""
    model = copy.deepcopy(model).train()
    inputs, outputs = [], []

    def record(_module, args, out):  # returns None: the block's output is left as it is
        inputs.append(args[0])
        outputs.append(out)

    hooks = [block.register_forward_hook(record) for block in model.blocks]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    stream = [inputs[0]] + outputs
    sq_mean, var = zip(*(_channel_stats(s) for s in stream))
    branch = [(float("nan"), float("nan"))] + [_channel_stats(o - i) for i, o in zip(inputs, outputs)]
    branch_sq_mean, branch_var = zip(*branch)
    return {"squared_mean": np.array(sq_mean), "variance": np.array(var),
            "branch_squared_mean": np.array(branch_sq_mean), "branch_variance": np.array(branch_var)}


def signal_propagation_plot(models: Mapping[str, nn.Module], x: Tensor, axes=None, log: bool = True):
    """Draw the three curves of :func:`signal_propagation` for each named model, side by side.

    Returns ``(figure, {name: statistics})``. ``axes`` (three matplotlib axes) defaults to a new
    row of three; ``log`` puts the values on a logarithmic axis (the unnormalized stream grows
    like ``2^l``), where values below ``1e-12`` (zero up to float64 rounding: a branch that starts
    at zero, the mean of standardized data) are left out rather than drawn as rounding noise.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(6.4, 2.6), sharex=True)
    else:
        fig = axes[0].figure
    stats = {name: signal_propagation(model, x) for name, model in models.items()}
    titles = {"squared_mean": "avg. channel squared mean", "variance": "avg. channel variance",
              "branch_variance": "residual avg. channel var."}
    for ax, (key, title) in zip(axes, titles.items()):
        for name, s in stats.items():
            values = s[key]
            blocks = np.arange(len(values))
            keep = np.isfinite(values) & ((values > 1e-12) if log else True)
            ax.plot(blocks[keep], values[keep], marker=".", label=name)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("block")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if log:
            ax.set_yscale("log")
    axes[0].legend(fontsize=7)
    return fig, stats
