r"""Hand-derived backward passes, the ones the book derives on the page.

Each function takes the upstream gradient and the forward inputs and returns the gradients
with respect to those inputs, computed by the closed-form expressions rather than by autograd;
the tests and the book check them against autograd.
"""
from __future__ import annotations

import torch
from torch import Tensor

from normlib.core import moments, reduce_dims

__all__ = ["batch_norm_backward", "weight_norm_backward"]


def batch_norm_backward(
    grad_output: Tensor, input: Tensor, weight: Tensor | None = None, eps: float = 1e-5
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Gradients of training-mode batch norm (Ioffe & Szegedy, 2015, section 3).

    With :math:`\hat x = (x - \mu)/\sqrt{\sigma^2 + \epsilon}`, :math:`y = \gamma \hat x + \beta`
    and :math:`m` values per channel (sums run over them):

    .. math::

        \frac{\partial L}{\partial \beta} = \sum_i \frac{\partial L}{\partial y_i}, \qquad
        \frac{\partial L}{\partial \gamma} = \sum_i \frac{\partial L}{\partial y_i} \hat x_i, \qquad
        \frac{\partial L}{\partial x_i} = \frac{\gamma}{m\sqrt{\sigma^2 + \epsilon}}
            \Big(m \frac{\partial L}{\partial y_i} - \frac{\partial L}{\partial \beta}
                 - \hat x_i \frac{\partial L}{\partial \gamma}\Big).

    Args:
        grad_output: :math:`\partial L / \partial y`, shape of ``input``.
        input: the forward input ``(N, C, *)``.
        weight: :math:`\gamma`, ``(C,)``, or ``None`` for 1.
        eps: the forward's :math:`\epsilon`.

    Returns:
        ``(grad_input, grad_weight, grad_bias)``; the last two have shape ``(C,)``.
    """
    dims = reduce_dims("batch", input.dim())
    m = input.numel() // input.shape[1]
    mean, var = moments(input, dims)
    inv_std = (var + eps).rsqrt()
    x_hat = (input - mean) * inv_std
    grad_bias = grad_output.sum(dim=dims, keepdim=True)
    grad_weight = (grad_output * x_hat).sum(dim=dims, keepdim=True)
    gamma = 1.0 if weight is None else weight.reshape(grad_bias.shape)
    grad_input = gamma * inv_std / m * (m * grad_output - grad_bias - x_hat * grad_weight)
    return grad_input, grad_weight.flatten(), grad_bias.flatten()


def weight_norm_backward(grad_w: Tensor, v: Tensor, g: Tensor, dim: int = 0) -> tuple[Tensor, Tensor]:
    r"""Gradients of :math:`w = g\,v/\lVert v\rVert` (Salimans & Kingma, 2016, eq. 3).

    .. math::

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
