r"""Hand-derived backward passes, the ones the book derives on the page, as pure functions.

Each function takes the upstream gradient and the forward inputs and returns the gradients
with respect to those inputs, computed by the closed-form expressions rather than by autograd;
the tests and the book check them against autograd. :func:`standardize_backward` is the one
closed form for any reduction set :math:`S_k`; :func:`batch_norm_backward` is its case for batch
norm. The speed path (:mod:`normlib.fused`) runs the same closed form in place, and calls
:func:`standardize_backward` itself whenever autograd must be able to follow the backward.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from normlib.core import moments, per_channel, reduce_dims, sum_over

__all__ = ["standardize_backward", "batch_norm_backward", "weight_norm_backward"]


def standardize_backward(
    grad_output: Tensor,
    input: Tensor,
    dims: tuple[int, ...],
    eps: float,
    weight: Tensor | None = None,
    param_dims: tuple[int, ...] | None = None,
    center: bool = True,
    *,
    mean: Tensor | None = None,
    inv_std: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Gradients of :math:`y = \gamma \hat x + \beta`, :math:`\hat x` standardized over any set :math:`S_k`.

    With :math:`\hat x = (x - \mu)/\sqrt{\sigma^2 + \epsilon}` over ``dims`` (:math:`m` elements
    in each :math:`S_k`), :math:`g = \gamma\,\partial L/\partial y` and bars for averages over
    :math:`S_k`, equation :eq:`normlib-grad-standardize-backward`:

    .. math::
        :label: normlib-grad-standardize-backward

        \frac{\partial L}{\partial x_i} = \frac{1}{\sqrt{\sigma_k^2 + \epsilon}}
            \Big(g_i - \overline{g} - \hat x_i \, \overline{g \hat x}\Big), \qquad
        \frac{\partial L}{\partial \gamma} = \sum \frac{\partial L}{\partial y} \hat x, \qquad
        \frac{\partial L}{\partial \beta} = \sum \frac{\partial L}{\partial y},

    the parameter sums running over ``param_dims``, the dimensions along which ``weight`` and
    ``bias`` are constant (by default ``dims``). The three terms: the direct path through
    :math:`x_i`, the path through :math:`\mu_k` (which removes the mean of :math:`g`), and the
    path through :math:`\sigma_k` (which removes the component of :math:`g` along
    :math:`\hat x`). With ``center=False`` (RMSNorm, :math:`\mu = 0`) the middle term is absent.

    The four sums read the whole tensor once: :math:`\sum \partial L/\partial y\,(x - \mu)` and
    :math:`\sum \partial L/\partial y` are taken first over the dimensions that ``dims`` and
    ``param_dims`` share (for group norm: the positions of one channel in one sample), and each
    sum is finished from those small partial sums. Where one mean serves several partial sums
    (group norm), the first is formed as :math:`\sum \partial L/\partial y\,x - \mu \sum
    \partial L/\partial y`, as PyTorch's group-norm kernel does, so that a compiler reads ``x``
    for both in one loop (it keeps the other form in two); that loses about
    :math:`\log_{10}(|\mu|/\sigma)` digits of those sums when the mean is large against the
    spread. Out-of-place operations only, so autograd can differentiate it again, and
    ``torch.compile`` fuses it into two loops over the input.

    Args:
        grad_output: :math:`\partial L / \partial y`, shape of ``input``.
        input: the forward input.
        dims: the dimensions of :math:`S_k`.
        eps: the forward's :math:`\epsilon`.
        weight: :math:`\gamma` broadcast against ``input``, or ``None`` for 1.
        param_dims: where the parameters are constant; ``None`` for ``dims``.
        center: ``False`` for RMSNorm.
        mean: the forward's mean (kept as size-1 dimensions), with ``inv_std``, its
            :math:`1/\sqrt{\sigma^2+\epsilon}`; ``None`` to compute both from ``input`` (which
            autograd can then differentiate through).
        inv_std: see ``mean``.

    Returns:
        ``(grad_input, grad_weight, grad_bias)``, the last two summed over ``param_dims`` (kept
        as size-1 dimensions).
    """
    if mean is None or inv_std is None:
        mean, var = moments(input, dims, center)
        inv_std = torch.rsqrt(var + eps)
    param_dims = dims if param_dims is None else param_dims
    m = math.prod([input.shape[d] for d in dims])
    shared = tuple(d for d in dims if d in param_dims)  # summed once, for both kinds of sum
    params_only = tuple(d for d in param_dims if d not in shared)
    stats_only = tuple(d for d in dims if d not in shared)
    centered = input - mean
    sum_g = sum_over(grad_output, shared)  # partial sums of dL/dy
    if shared and stats_only:  # group norm: one mean for several partial sums (one per channel)
        # sum dL/dy x - mu sum dL/dy, as PyTorch's group-norm kernel: both sums in one loop over x
        sum_gc = sum_over(grad_output * input, shared) - mean * sum_g
    else:
        sum_gc = sum_over(grad_output * centered, shared)  # partial sums of dL/dy (x - mu)
    grad_weight = sum_over(sum_gc * inv_std, params_only)  # sum of dL/dy x_hat
    grad_bias = sum_over(sum_g, params_only)
    if weight is not None:  # g = weight * dL/dy; the partial sums are over dimensions where weight is constant
        sum_gc, sum_g = sum_gc * weight, sum_g * weight
    gx_bar = sum_over(sum_gc, stats_only) * inv_std / m  # mean of g x_hat over S_k
    g_bar = sum_over(sum_g, stats_only) / m if center else 0  # mean of g over S_k
    g = grad_output if weight is None else grad_output * weight
    grad_input = inv_std * (g - g_bar - centered * (inv_std * gx_bar))
    return grad_input, grad_weight, grad_bias


def batch_norm_backward(
    grad_output: Tensor, input: Tensor, weight: Tensor | None = None, eps: float = 1e-5
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Gradients of training-mode batch norm (Ioffe & Szegedy, 2015, section 3).

    With :math:`\hat x = (x - \mu)/\sqrt{\sigma^2 + \epsilon}`, :math:`y = \gamma \hat x + \beta`
    and :math:`m` values per channel (sums run over them), equation :eq:`normlib-grad-batch-norm-backward`:

    .. math::
        :label: normlib-grad-batch-norm-backward

        \frac{\partial L}{\partial \beta} = \sum_i \frac{\partial L}{\partial y_i}, \qquad
        \frac{\partial L}{\partial \gamma} = \sum_i \frac{\partial L}{\partial y_i} \hat x_i, \qquad
        \frac{\partial L}{\partial x_i} = \frac{\gamma}{m\sqrt{\sigma^2 + \epsilon}}
            \Big(m \frac{\partial L}{\partial y_i} - \frac{\partial L}{\partial \beta}
                 - \hat x_i \frac{\partial L}{\partial \gamma}\Big).

    This is :func:`standardize_backward` with :math:`S_k` the batch and spatial positions of
    one channel: multiply its bracket by :math:`m/m`.

    Args:
        grad_output: :math:`\partial L / \partial y`, shape of ``input``.
        input: the forward input ``(N, C, *)``.
        weight: :math:`\gamma`, ``(C,)``, or ``None`` for 1.
        eps: the forward's :math:`\epsilon`.

    Returns:
        ``(grad_input, grad_weight, grad_bias)``; the last two have shape ``(C,)``.
    """
    dims = reduce_dims("batch", input.dim())
    grad_input, grad_weight, grad_bias = standardize_backward(
        grad_output, input, dims, eps, per_channel(weight, input.dim()))
    return grad_input, grad_weight.flatten(), grad_bias.flatten()


def weight_norm_backward(grad_w: Tensor, v: Tensor, g: Tensor, dim: int = 0) -> tuple[Tensor, Tensor]:
    r"""Gradients of :math:`w = g\,v/\lVert v\rVert` (Salimans & Kingma, 2016, eq. 3).

    In symbols, equation :eq:`normlib-grad-weight-norm-backward`:

    .. math::
        :label: normlib-grad-weight-norm-backward

        \nabla_g L = \frac{\nabla_w L \cdot v}{\lVert v \rVert}, \qquad
        \nabla_v L = \frac{g}{\lVert v \rVert} \nabla_w L - \frac{g \, \nabla_g L}{\lVert v \rVert^2} v

    with one norm per index of ``dim``, as in :func:`normlib.functional.weight_norm`.

    Returns:
        ``(grad_v, grad_g)`` with the shapes of ``v`` and ``g``.
    """
    dim = dim % v.dim()
    others = [d for d in range(v.dim()) if d != dim]
    norm = torch.linalg.vector_norm(v, dim=others, keepdim=True)
    g_b = g.reshape(norm.shape)
    grad_g = (grad_w * v).sum(dim=others, keepdim=True) / norm
    grad_v = g_b / norm * grad_w - g_b * grad_g / norm.pow(2) * v
    return grad_v, grad_g.reshape(g.shape)
