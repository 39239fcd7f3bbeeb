"""The book's diagnostics: pictures that tell whether a network is healthy.

- :func:`diagnostics_panel` (Karpathy's makemore, part 3): activation and gradient histograms per
  layer and the update:data ratio of every weight matrix over training.
- :func:`signal_propagation` and :func:`signal_propagation_plot` (Brock, De & Smith 2021): the
  residual stream's per-block mean and variance at initialization.

Karpathy's panel.

:func:`diagnostics_panel` draws, for a model of ``Linear -> [norm] -> activation`` blocks, the
three pictures that tell a healthy network from a sick one: the distribution of every activation
layer's output, the distribution of the gradient arriving at that output, and the update:data
ratio of every weight matrix over training (how large a step is compared with the weights it
changes; Karpathy's rule of thumb is about ``1e-3``). The function needs nothing but PyTorch and
matplotlib; the snapshots it reads are collected with one line passed to
:func:`normlib.book.train.fit` as ``on_step``::

    snapshots = []
    fit(model, data, on_step=lambda m, step: snapshots.append(
        {k: v.detach().clone() for k, v in m.state_dict().items()}))

Signal propagation.

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
import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["diagnostics_panel", "signal_propagation", "signal_propagation_plot"]


def diagnostics_panel(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    snapshots: Sequence[Mapping[str, Tensor]] = (),
    title: str | None = None,
    bins: int = 60,
):
    """Activation and gradient histograms per layer, and the update:data ratio over training.

    One forward and backward pass (cross-entropy, training mode) of a copy of ``model`` on
    ``(x, y)`` gives the output of every ``nn.Sigmoid``, ``nn.Tanh`` or ``nn.ReLU`` layer and the
    gradient of the loss with respect to it; ``model`` itself, and its running statistics, are
    left untouched. A unit counts as *saturated* where the activation's slope is below a tenth of
    its maximum (sigmoid: ``a (1 - a) < 0.025``; tanh: ``1 - a² < 0.1``), and a ReLU unit where it
    is inactive (``a = 0``). ``snapshots`` are ``state_dict`` copies taken after successive
    training steps; for every weight with two or more dimensions the third panel draws
    ``log10(std(W_{t+1} - W_t) / std(W_t))`` against the step. The gradients are drawn as
    histograms of ``log10 |g|``, since their scales can differ by decades between layers.

    Returns ``(fig, stats)``: the matplotlib figure (three panels, 8.8 in wide) and a dict of
    lists, one entry per activation layer (``"mean"``, ``"std"``, ``"saturated"``: the share of
    saturated units, ``"grad_std"``) plus ``"update_ratio"``: ``{weight name: array of log10
    ratios}``.
    """
    import matplotlib.pyplot as plt

    kinds = (nn.Sigmoid, nn.Tanh, nn.ReLU)
    probe = copy.deepcopy(model).train()
    outputs: list[tuple[str, Tensor]] = []

    def keep(module, inputs, output):
        output.retain_grad()
        outputs.append((type(module).__name__, output))

    for module in probe.modules():
        if isinstance(module, kinds):
            module.register_forward_hook(keep)
    nn.functional.cross_entropy(probe(x), y).backward()

    def saturated(kind: str, a: Tensor) -> float:
        if kind == "Sigmoid":
            return (a * (1 - a) < 0.025).double().mean().item()
        if kind == "Tanh":
            return (1 - a**2 < 0.1).double().mean().item()
        return (a == 0).double().mean().item()  # ReLU: inactive

    stats: dict = {"mean": [], "std": [], "saturated": [], "grad_std": [], "update_ratio": {}}
    fig, axes = plt.subplots(1, 3, figsize=(8.8, 2.9))
    for layer, (kind, a) in enumerate(outputs, start=1):
        a_, g_ = a.detach(), a.grad.detach()
        stats["mean"].append(a_.mean().item())
        stats["std"].append(a_.std().item())
        stats["saturated"].append(saturated(kind, a_))
        stats["grad_std"].append(g_.std().item())
        values, edges = np.histogram(a_.flatten().cpu().numpy(), bins=bins, density=True)
        axes[0].plot((edges[1:] + edges[:-1]) / 2, values,
                     label=f"layer {layer}: sat. {100 * stats['saturated'][-1]:.0f} %")
        magnitude = np.log10(np.maximum(g_.abs().flatten().cpu().numpy(), 1e-300))  # layers differ by decades
        values, edges = np.histogram(magnitude, bins=bins, range=(magnitude.max() - 12, magnitude.max() + 0.5), density=True)
        axes[1].plot((edges[1:] + edges[:-1]) / 2, values, label=f"layer {layer}: std {stats['grad_std'][-1]:.0e}")
    kind_name = outputs[0][0].lower() if outputs else "activation"
    axes[0].set_xlabel(f"{kind_name} output")
    axes[0].set_ylabel("density")
    axes[0].set_title("activations per layer", fontsize=9)
    axes[1].set_xlabel(rf"$\log_{{10}}$ |gradient| at the {kind_name} output")
    axes[1].set_title("gradients per layer", fontsize=9)
    for ax in axes[:2]:
        ax.legend(fontsize=6)

    if len(snapshots) >= 2:
        names = [k for k, v in snapshots[0].items() if v.dim() >= 2]
        for number, name in enumerate(names, start=1):
            ratio = [
                math.log10(max((b[name] - a[name]).std().item(), 1e-300) / a[name].std().item())
                for a, b in zip(snapshots[:-1], snapshots[1:])
            ]
            stats["update_ratio"][name] = np.array(ratio)
            label = "classifier" if number == len(names) else f"weight {number}"
            axes[2].plot(np.arange(1, len(ratio) + 1), ratio, label=label)
        axes[2].axhline(-3, color="k", linestyle=":", linewidth=1)
        axes[2].legend(fontsize=6)
    axes[2].set_xlabel("training step")
    axes[2].set_ylabel(r"$\log_{10}$ update / data")
    axes[2].set_title("update:data ratio", fontsize=9)
    axes[2].xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig, stats

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
