r"""Normalization functions with the signatures and semantics of ``torch.nn.functional``.

Batch, layer, instance, group and RMS norm are each a few lines on :mod:`normlib.core`: they
view the input in their layout, take their reduction set :math:`S_k` from the table
(:func:`normlib.core.reduce_dims`) and call the speed path :func:`normlib.fused.standardize`
(with running statistics: :func:`normlib.core.normalize` and :func:`normlib.core.affine`).
Local response norm, weight norm and cosine norm are the other normalizations the book studies.

Conventions, all PyTorch's:

- the variance that normalizes is the *biased* one (divide by :math:`m`);
- the variance stored in ``running_var`` is the *unbiased* one (divide by :math:`m - 1`);
- running statistics are updated in place as
  ``running = (1 - momentum) * running + momentum * batch_statistic``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from normlib.core import (
    LOW_PRECISION,
    affine,
    check_eps,
    check_floating,
    check_normalized_shape,
    check_per_channel,
    group_view,
    normalize,
    per_channel,
    reduce_dims,
    sample_view,
    update_running,
)
from normlib.fused import standardize

__all__ = [
    "batch_norm",
    "layer_norm",
    "instance_norm",
    "group_norm",
    "rms_norm",
    "local_response_norm",
    "weight_norm",
    "cosine_norm",
]


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    r"""Batch normalization (Ioffe & Szegedy, 2015).

    In symbols, equation :eq:`normlib-functional-batch-norm`:

    .. math::
        :label: normlib-functional-batch-norm

        y = \frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}} \, \gamma + \beta

    In training, :math:`\mathrm{E}` and :math:`\mathrm{Var}` (biased) are taken per channel over
    the batch and every spatial position, i.e. over ``(N, *spatial)`` for an input
    ``(N, C, *spatial)``; ``running_mean`` and ``running_var`` (unbiased) are updated in place.
    In evaluation (``training=False``) the running statistics are used instead.

    Args:
        input: ``(N, C)`` or ``(N, C, *spatial)``.
        running_mean, running_var: ``(C,)`` buffers, or ``None`` (then batch statistics are
            used in evaluation too, as in PyTorch).
        weight, bias: ``(C,)`` scale :math:`\gamma` and shift :math:`\beta`, or ``None``.
        training: use batch statistics and update the running ones. Default ``False``.
        momentum: weight of the new batch statistic in the running average. Default ``0.1``.
        eps: added to the variance. Default ``1e-5``.

    Shape: input and output ``(N, C, *)``.

    >>> x = torch.randn(16, 3, 5, 5, dtype=torch.float64)
    >>> y = batch_norm(x, None, None, training=True)
    >>> torch.allclose(y, F.batch_norm(x, None, None, training=True), atol=1e-12)
    True
    """
    check_floating(input)
    if input.dim() == 1 and input.numel() == 0:  # PyTorch returns an empty (0,) input as it is
        return input.clone()
    if input.dim() < 2:
        raise ValueError(f"input must be (N, C) or (N, C, *spatial), got {input.dim()}-D shape {tuple(input.shape)}")
    channels = input.shape[1]
    for t, name in ((running_mean, "running_mean"), (running_var, "running_var"), (weight, "weight"), (bias, "bias")):
        check_per_channel(t, channels, name)
    m = math.prod(input.shape) // channels if channels else 0  # values per channel
    if training and input.shape[0] * math.prod(input.shape[2:]) == 1:
        raise ValueError(
            f"batch_norm in training needs more than 1 value per channel, got input of shape {tuple(input.shape)}"
        )
    check_eps(eps, training)
    if input.numel() == 0:  # an empty batch: an empty output, running statistics unchanged (PyTorch)
        return affine(input.clone(), weight, bias)
    dims = reduce_dims("batch", input.dim())
    if training or running_mean is None or running_var is None:
        y, mean, var = standardize(input, dims, eps, per_channel(weight, input.dim()), per_channel(bias, input.dim()))
        if training:
            update_running(running_mean, mean.flatten(), momentum)
            update_running(running_var, var.flatten() * m / (m - 1), momentum)
        return y
    mean, var = per_channel(running_mean, input.dim()), per_channel(running_var, input.dim())
    return affine(normalize(input, dims, eps, mean, var), weight, bias)


def layer_norm(
    input: Tensor,
    normalized_shape: Sequence[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    r"""Layer normalization (Ba, Kiros & Hinton, 2016).

    In symbols, equation :eq:`normlib-functional-layer-norm`:

    .. math::
        :label: normlib-functional-layer-norm

        y = \frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}} \odot \gamma + \beta

    The (biased) statistics are taken over the last ``len(normalized_shape)`` dimensions, which
    must equal ``normalized_shape``: for an ``(N, C, H, W)`` input and
    ``normalized_shape=(C, H, W)``, one mean and variance per sample. There is no running state,
    so training and evaluation agree. ``weight`` and ``bias`` have shape ``normalized_shape``
    (one value per normalized element, not per channel).

    Shape: input ``(*, *normalized_shape)``; output the same.

    >>> x = torch.randn(4, 10, dtype=torch.float64)
    >>> torch.allclose(layer_norm(x, (10,)), F.layer_norm(x, (10,)), atol=1e-12)
    True
    """
    check_floating(input)
    k = check_normalized_shape(input, normalized_shape, weight, bias)
    view = sample_view(input, k)  # (N, *normalized_shape)
    return standardize(view, reduce_dims("layer", view.dim()), eps, weight, bias)[0].reshape(input.shape)


def rms_norm(
    input: Tensor,
    normalized_shape: Sequence[int],
    weight: Tensor | None = None,
    eps: float | None = None,
) -> Tensor:
    r"""Root mean square layer normalization (Zhang & Sennrich, 2019).

    In symbols, equation :eq:`normlib-functional-rms-norm`:

    .. math::
        :label: normlib-functional-rms-norm

        y = \frac{x}{\sqrt{\overline{x^2} + \epsilon}} \odot \gamma

    Layer norm without the mean: the mean square :math:`\overline{x^2}` is taken over the last
    ``len(normalized_shape)`` dimensions (as :func:`layer_norm`'s variance) and nothing is
    subtracted, so the output is scaled but not centred; there is no bias. ``eps=None`` means the
    machine epsilon of the dtype the statistics are computed in (``torch.finfo(torch.float32).eps``
    for float16, bfloat16 and float32 input, as in PyTorch). Complex input is accepted, with
    PyTorch's :math:`\overline{x \cdot x}` (not :math:`|x|^2`).

    Args:
        input: ``(*, *normalized_shape)``.
        normalized_shape: the trailing shape to normalize over.
        weight: :math:`\gamma` of shape ``normalized_shape``, or ``None``.
        eps: added to the mean square; ``None`` for the machine epsilon. Default ``None``.

    Shape: input ``(*, *normalized_shape)``; output the same.

    >>> x = torch.randn(4, 10, dtype=torch.float64)
    >>> torch.allclose(rms_norm(x, (10,)), F.rms_norm(x, (10,)), atol=1e-12)
    True
    """
    check_floating(input, complex=True)
    k = check_normalized_shape(input, normalized_shape, weight)
    if eps is None:
        eps = torch.finfo(torch.float32 if input.dtype in LOW_PRECISION else input.dtype).eps
    view = sample_view(input, k)  # (N, *normalized_shape)
    return standardize(view, reduce_dims("rms", view.dim()), eps, weight, center=False)[0].reshape(input.shape)


def instance_norm(
    input: Tensor,
    running_mean: Tensor | None = None,
    running_var: Tensor | None = None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    r"""Instance normalization (Ulyanov, Vedaldi & Lempitsky, 2016).

    In symbols, equation :eq:`normlib-functional-instance-norm`:

    .. math::
        :label: normlib-functional-instance-norm

        y_{nc} = \frac{x_{nc} - \mathrm{E}[x_{nc}]}{\sqrt{\mathrm{Var}[x_{nc}] + \epsilon}} \gamma_c + \beta_c

    The (biased) statistics are taken per sample and per channel over the spatial dimensions.
    With ``use_input_stats`` the running statistics, if given, are updated in place with the
    average over the batch of the per-instance mean and unbiased variance (PyTorch's rule);
    without it the running statistics normalize.

    Shape: input ``(N, C, *spatial)`` with at least one spatial dimension; output the same.

    >>> x = torch.randn(2, 3, 8, dtype=torch.float64)
    >>> torch.allclose(instance_norm(x), F.instance_norm(x), atol=1e-12)
    True
    """
    check_floating(input)
    if input.dim() < 3:
        raise ValueError(f"input must be (N, C, *spatial) with a spatial dimension, got shape {tuple(input.shape)}")
    channels = input.shape[1]
    for t, name in ((running_mean, "running_mean"), (running_var, "running_var"), (weight, "weight"), (bias, "bias")):
        check_per_channel(t, channels, name)
    dims = reduce_dims("instance", input.dim())
    m = math.prod(input.shape[2:])  # values per (sample, channel)
    if use_input_stats and m == 1:
        raise ValueError(
            f"instance_norm needs more than 1 spatial element per channel, got input of shape {tuple(input.shape)}"
        )
    if input.numel() == 0:  # an empty batch or an empty image: an empty output (PyTorch)
        return affine(input.clone(), weight, bias)
    if use_input_stats:
        y, mean, var = standardize(input, dims, eps, per_channel(weight, input.dim()), per_channel(bias, input.dim()))
        update_running(running_mean, mean.mean(dim=0).flatten(), momentum)
        update_running(running_var, (var * m / (m - 1)).mean(dim=0).flatten(), momentum)
        return y
    if running_mean is None or running_var is None:
        raise ValueError("use_input_stats=False needs running_mean and running_var, got None")
    mean, var = per_channel(running_mean, input.dim()), per_channel(running_var, input.dim())
    return affine(normalize(input, dims, eps, mean, var), weight, bias)


def group_norm(
    input: Tensor,
    num_groups: int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    r"""Group normalization (Wu & He, 2018).

    In symbols, equation :eq:`normlib-functional-group-norm`:

    .. math::
        :label: normlib-functional-group-norm

        y = \frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}} \gamma_c + \beta_c

    The channels are split into ``num_groups`` groups of ``C // num_groups`` consecutive
    channels; the (biased) statistics are taken per sample and per group over the group's
    channels and every spatial position. ``num_groups=1`` gives layer norm with a per-channel
    affine, ``num_groups=C`` gives instance norm. The affine step is per channel.

    Shape: input ``(N, C, *)``; output the same.

    >>> x = torch.randn(2, 6, 4, 4, dtype=torch.float64)
    >>> torch.allclose(group_norm(x, 3), F.group_norm(x, 3), atol=1e-12)
    True
    """
    check_floating(input)
    if input.dim() < 2:
        raise ValueError(f"input must be (N, C, *), got shape {tuple(input.shape)}")
    channels = input.shape[1]
    if not isinstance(num_groups, int) or num_groups < 1 or channels % num_groups:
        raise ValueError(
            f"num_groups must be a positive divisor of the number of channels {channels}, got {num_groups}"
        )
    for t, name in ((weight, "weight"), (bias, "bias")):
        check_per_channel(t, channels, name)
    if input.shape[0] * channels // num_groups * math.prod(input.shape[2:]) == 1:  # PyTorch's check
        raise ValueError(f"group_norm needs more than 1 value per group, got input of shape {tuple(input.shape)}")
    if input.numel() == 0:  # an empty batch: an empty output (PyTorch)
        return affine(input.clone(), weight, bias)
    view = group_view(input, num_groups)  # (N, G, C // G, prod(spatial))
    weight, bias = (None if t is None else t.reshape(1, num_groups, -1, 1) for t in (weight, bias))
    return standardize(view, reduce_dims("group", view.dim()), eps, weight, bias)[0].reshape(input.shape)


def local_response_norm(
    input: Tensor,
    size: int,
    alpha: float = 1e-4,
    beta: float = 0.75,
    k: float = 1.0,
) -> Tensor:
    r"""Local response normalization across channels (Krizhevsky, Sutskever & Hinton, 2012).

    In symbols, equation :eq:`normlib-functional-local-response-norm`:

    .. math::
        :label: normlib-functional-local-response-norm

        b_c = a_c \left(k + \frac{\alpha}{n} \sum_{c' = c - \lfloor n/2 \rfloor}^{c + \lfloor (n-1)/2 \rfloor} a_{c'}^2\right)^{-\beta}

    at every sample and spatial position, with ``n = size`` and channels outside ``[0, C)``
    counting as zero. Note PyTorch's convention, followed here: :math:`\alpha` is divided by
    the window size ``n`` (always ``n``, even where the window is cut by the border), whereas
    AlexNet's paper writes :math:`\alpha` alone. No learnable parameters.

    Integer input is accepted as by PyTorch (the window's mean is then an integer division and
    the output floating-point).

    Shape: input ``(N, C, *)`` with at least 3 dimensions; output the same.

    >>> x = torch.randn(2, 7, 3, 3, dtype=torch.float64)
    >>> torch.allclose(local_response_norm(x, 5), F.local_response_norm(x, 5), atol=1e-12)
    True
    """
    if not isinstance(input, Tensor) or input.is_complex() or input.dtype == torch.bool:
        raise ValueError(f"input must be a real tensor, got {getattr(input, 'dtype', type(input).__name__)}")
    if input.dim() < 3:
        raise ValueError(f"input must be (N, C, *) with at least 3 dimensions, got shape {tuple(input.shape)}")
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    if input.numel() == 0:
        return input
    channels = input.shape[1]
    # zero channels beyond the border: size // 2 before channel 0, (size - 1) // 2 after the last
    padded = F.pad(input.pow(2), (0, 0) * (input.dim() - 2) + (size // 2, (size - 1) // 2))
    window_sum = padded.narrow(1, 0, channels)  # the window's sum is `size` shifted copies added up
    for shift in range(1, size):
        window_sum = window_sum + padded.narrow(1, shift, channels)
    if not input.is_floating_point():  # integers: PyTorch's average pooling divides in integers
        return input / (k + alpha * torch.div(window_sum, size, rounding_mode="trunc")).pow(beta)
    return input * (k + alpha / size * window_sum).pow(-beta)


def weight_norm(v: Tensor, g: Tensor, dim: int | None = 0) -> Tensor:
    r"""Weight normalization (Salimans & Kingma, 2016): :math:`w = g \, v / \lVert v \rVert`.

    The norm is taken over every dimension except ``dim`` (for a ``Linear`` weight
    ``(out, in)`` and ``dim=0``: one norm per output unit, so each row of ``w`` has norm ``g``);
    ``g`` has size ``v.shape[dim]`` at ``dim`` and 1 elsewhere, as in PyTorch's
    ``torch.nn.utils.parametrizations.weight_norm``. ``dim=None`` normalizes the whole tensor
    with a scalar ``g``.

    >>> v = torch.tensor([[3.0, 4.0], [6.0, 8.0]])
    >>> weight_norm(v, torch.tensor([[1.0], [2.0]]))
    tensor([[0.6000, 0.8000],
            [1.2000, 1.6000]])
    """
    check_floating(v, "v")
    check_floating(g, "g")
    if dim is None:
        return v * (g / v.norm())
    if not -v.dim() <= dim < v.dim():
        raise ValueError(f"dim must index a dimension of v (shape {tuple(v.shape)}), got {dim}")
    dim = dim % v.dim()
    others = [d for d in range(v.dim()) if d != dim]
    norm = torch.linalg.vector_norm(v, dim=others, keepdim=True) if others else v.abs()
    if g.numel() != v.shape[dim]:
        raise ValueError(f"g must have {v.shape[dim]} values (one per index of dim {dim}), got shape {tuple(g.shape)}")
    return v * (g.reshape(norm.shape) / norm)


def cosine_norm(input: Tensor, weight: Tensor, eps: float = 1e-8) -> Tensor:
    r"""Cosine normalization of a linear layer (Luo et al., 2018).

    In symbols, equation :eq:`normlib-functional-cosine-norm`:

    .. math::
        :label: normlib-functional-cosine-norm

        y_j = \frac{w_j \cdot x}{\max(\lVert w_j \rVert \, \lVert x \rVert, \epsilon)}

    the cosine of the angle between each input row and each weight row, in :math:`[-1, 1]`.

    Shape: input ``(N, in_features)``, weight ``(out_features, in_features)``,
    output ``(N, out_features)``.

    >>> cosine_norm(torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]]))
    tensor([[1.0000, 0.0000, 0.7071]])
    """
    check_floating(input)
    check_floating(weight, "weight")
    if not eps > 0:
        raise ValueError(f"eps must be positive (it bounds the denominator away from 0), got {eps}")
    if input.dim() != 2 or weight.dim() != 2 or input.shape[1] != weight.shape[1]:
        raise ValueError(
            f"cosine_norm expects input (N, in) and weight (out, in), got {tuple(input.shape)} and {tuple(weight.shape)}"
        )
    norms = input.norm(dim=1, keepdim=True) * weight.norm(dim=1)  # (N, out)
    return input @ weight.T / norms.clamp_min(eps)


# =============================================================================================
# Batch renormalization and weight standardization: normalizations beyond torch.nn's; like
# everything above, each is a few lines on normlib.core.
# =============================================================================================

__all__ += ["batch_renorm", "weight_standardization"]


def batch_renorm(
    input: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
    rmax: float = 3.0,
    dmax: float = 5.0,
) -> Tensor:
    r"""Batch renormalization (Ioffe, 2017), equation :eq:`normlib-functional-batch-renorm`:

    .. math::
        :label: normlib-functional-batch-renorm

        \hat x = \frac{x - \mu_B}{\sigma_B}\, r + d, \qquad
        r = \operatorname{sg}\Big(\operatorname{clip}_{[1/r_{\max},\, r_{\max}]}\frac{\sigma_B}{\sigma}\Big), \qquad
        d = \operatorname{sg}\Big(\operatorname{clip}_{[-d_{\max},\, d_{\max}]}\frac{\mu_B - \mu}{\sigma}\Big), \qquad
        y = \gamma \hat x + \beta

    with :math:`\mu_B`, :math:`\sigma_B = \sqrt{\mathrm{Var}_B[x] + \epsilon}` the batch statistics
    (biased variance, per channel over ``(N, *spatial)`` as in :func:`batch_norm`),
    :math:`\mu` = ``running_mean``, :math:`\sigma = \sqrt{\text{running\_var} + \epsilon}`, and
    :math:`\operatorname{sg}` a stop-gradient: ``r`` and ``d`` are treated as constants by the
    backward pass. Where the clips are inactive, :math:`\hat x = (x - \mu)/\sigma`: training uses
    the same transform as inference. ``rmax = 1``, ``dmax = 0`` give ``r = 1``, ``d = 0``, i.e.
    batch norm. The running statistics are updated in place exactly as :func:`batch_norm` does
    (PyTorch's momentum convention, unbiased ``running_var``), so they are BN's buffers; the
    paper's moving average of :math:`\sigma` itself is replaced by that of the variance.
    In evaluation (``training=False``) the output is :func:`batch_norm`'s in evaluation.

    Args:
        input: ``(N, C)`` or ``(N, C, *spatial)``.
        running_mean, running_var: ``(C,)`` buffers (required: ``r`` and ``d`` are computed from them).
        weight, bias: ``(C,)`` :math:`\gamma` and :math:`\beta`, or ``None``.
        training: renormalize with batch statistics and update the running ones. Default ``False``.
        momentum: weight of the new batch statistic in the running average. Default ``0.1``.
        eps: added to the variances. Default ``1e-5``.
        rmax: bound of ``r`` (at least 1). Default ``3.0``, the paper's final value.
        dmax: bound of ``|d|`` (at least 0). Default ``5.0``, the paper's final value.

    >>> x = torch.randn(16, 3, 4, 4, dtype=torch.float64)
    >>> rm, rv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    >>> y = batch_renorm(x, rm, rv, training=True, rmax=1.0, dmax=0.0)  # no correction: batch norm
    >>> torch.allclose(y, F.batch_norm(x, None, None, training=True), atol=1e-12)
    True
    """
    check_floating(input)
    check_eps(eps)
    check_renorm_bounds(rmax, dmax)
    if input.dim() < 2:
        raise ValueError(f"input must be (N, C) or (N, C, *spatial), got {input.dim()}-D shape {tuple(input.shape)}")
    if running_mean is None or running_var is None:
        raise ValueError("batch_renorm needs running_mean and running_var (r and d are computed from them), got None")
    channels = input.shape[1]
    for t, name in ((running_mean, "running_mean"), (running_var, "running_var"), (weight, "weight"), (bias, "bias")):
        check_per_channel(t, channels, name)
    dims = reduce_dims("batch", input.dim())
    mu, var = per_channel(running_mean, input.dim()), per_channel(running_var, input.dim())
    if not training:
        return affine(normalize(input, dims, eps, mu, var), weight, bias)
    m = input.numel() // channels
    if m <= 1:
        raise ValueError(
            f"batch_renorm in training needs more than 1 value per channel, got input of shape {tuple(input.shape)}"
        )
    x_hat_b, mean_b, var_b = standardize(input, dims, eps)  # (x - mu_B) / sigma_B, and the batch statistics
    with torch.no_grad():  # r and d are constants for the backward pass (stop-gradient)
        sigma_b, sigma = torch.sqrt(var_b + eps), torch.sqrt(var + eps)
        r = (sigma_b / sigma).clamp(1 / rmax, rmax)
        d = ((mean_b - mu) / sigma).clamp(-dmax, dmax)
    y = affine(x_hat_b * r + d, weight, bias)
    update_running(running_mean, mean_b.flatten(), momentum)
    update_running(running_var, var_b.flatten() * m / (m - 1), momentum)
    return y


def check_renorm_bounds(rmax: float, dmax: float) -> None:
    """Raise ``ValueError`` unless ``rmax >= 1`` and ``dmax >= 0`` (:func:`batch_renorm`'s clips)."""
    if not rmax >= 1:
        raise ValueError(f"rmax must be at least 1 (r is clipped to [1/rmax, rmax]), got {rmax}")
    if not dmax >= 0:
        raise ValueError(f"dmax must be non-negative (d is clipped to [-dmax, dmax]), got {dmax}")


def weight_standardization(weight: Tensor, eps: float = 1e-5) -> Tensor:
    r"""Weight standardization (Qiao et al., 2019): each output filter standardized over its fan-in.

    In symbols, equation :eq:`normlib-functional-weight-standardization`:

    .. math::
        :label: normlib-functional-weight-standardization

        \hat W_{i,j} = \frac{W_{i,j} - \mu_i}{\sqrt{\sigma_i^2 + \epsilon}}, \qquad
        \mu_i = \frac{1}{I}\sum_j W_{i,j}, \qquad \sigma_i^2 = \frac{1}{I}\sum_j (W_{i,j} - \mu_i)^2

    for a weight of shape ``(out, *fan_in)`` (a ``Linear`` weight ``(out, in)``, a ``Conv2d``
    weight ``(out, in / groups, kH, kW)``): row :math:`i` is output filter :math:`i`, and the
    :math:`I` = ``in / groups · kH · kW`` values of its fan-in share one mean and one (biased)
    variance. This is :func:`normlib.core.normalize` with the statistics over every dimension but
    the first, so gradients flow through :math:`\mu_i` and :math:`\sigma_i` (the paper's point).
    There is no affine step: a normalization layer (GN, BN) is expected to follow. The paper's
    equation puts :math:`\epsilon` under the square root, as here; its released code adds ``1e-5``
    to the unbiased standard deviation instead, which differs by far less than the weights' spread.

    >>> w = weight_standardization(torch.randn(8, 3, 3, 3, dtype=torch.float64))
    >>> w.mean(dim=(1, 2, 3)).abs().max() < 1e-12, (w.var(dim=(1, 2, 3), unbiased=False) - 1).abs().max() < 1e-3
    (tensor(True), tensor(True))
    """
    check_floating(weight, "weight")
    check_eps(eps)
    if weight.dim() < 2:
        raise ValueError(
            f"weight must be (out, *fan_in) with at least 2 dimensions, got {weight.dim()}-D shape {tuple(weight.shape)}"
        )
    if math.prod(weight.shape[1:]) <= 1:
        raise ValueError(f"weight standardization needs more than 1 value per filter, got shape {tuple(weight.shape)}")
    return normalize(weight, tuple(range(1, weight.dim())), eps)
