r"""The unified framework behind batch, layer, instance and group normalization.

Every one of these methods computes, for each element :math:`x_i`, a mean and a variance over a
set :math:`S_k` of elements that share statistics with it, and then

.. math::

    \mu_k = \frac{1}{|S_k|} \sum_{i \in S_k} x_i, \qquad
    \sigma_k^2 = \frac{1}{|S_k|} \sum_{i \in S_k} (x_i - \mu_k)^2, \qquad
    \hat x_i = \frac{x_i - \mu_k}{\sqrt{\sigma_k^2 + \epsilon}}, \qquad
    y_i = \gamma \hat x_i + \beta.

The methods differ only in :math:`S_k`. For an input of shape ``(N, C, *spatial)``:

=============  ==================================  ===========================================
method         statistics shared over              one ``(mu, var)`` pair per
=============  ==================================  ===========================================
batch norm     ``N`` and every spatial axis        channel
layer norm     ``C`` and every spatial axis        sample
instance norm  every spatial axis                  (sample, channel)
group norm     ``C / G`` channels and spatial      (sample, group)
=============  ==================================  ===========================================

:data:`REDUCTION_AXES` states this table in code, and :func:`reduce_dims` turns it into the
dimensions that :func:`normalize` reduces over; ``normlib.functional`` uses nothing else.

The forward pass is the formula above, op for op. The backward pass is not left to autograd
(which would keep every intermediate of the formula and walk back through each): it is the
compact closed form that :mod:`normlib.grad` derives,

.. math::

    \frac{\partial L}{\partial x_i} = \frac{1}{\sqrt{\sigma_k^2 + \epsilon}}
    \Big(g_i - \overline{g} - \hat x_i \, \overline{g \hat x}\Big), \qquad
    g = \frac{\partial L}{\partial \hat x},

with the bars averages over :math:`S_k`, wrapped in a ``torch.autograd.Function``
(:class:`Standardize`). It is what makes normlib's eager backward about as fast as PyTorch's.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

#: Which named axes of an ``(N, C, *spatial)`` input each method averages over. ``"G"`` means
#: "the channels of one group", which group norm gets by reshaping ``C`` into ``(G, C // G)``.
REDUCTION_AXES: dict[str, tuple[str, ...]] = {
    "batch": ("N", "spatial"),
    "layer": ("C", "spatial"),
    "instance": ("spatial",),
    "group": ("G", "spatial"),
}


def reduce_dims(method: str, ndim: int) -> tuple[int, ...]:
    """The dimensions of an ``ndim``-dimensional ``(N, C, *spatial)`` tensor that ``method`` reduces.

    For group norm the tensor is first viewed as ``(N, G, C // G * prod(spatial))``, so the
    answer is given for that 3-dimensional view.

    >>> reduce_dims("batch", 4), reduce_dims("layer", 4), reduce_dims("instance", 4)
    ((0, 2, 3), (1, 2, 3), (2, 3))
    >>> reduce_dims("group", 3)
    (2,)
    """
    if method not in REDUCTION_AXES:
        raise ValueError(f"method must be one of {sorted(REDUCTION_AXES)}, got {method!r}")
    if method == "group":
        return (2,)
    spatial = tuple(range(2, ndim))
    named = {"N": (0,), "C": (1,), "spatial": spatial}
    return tuple(sorted(d for axis in REDUCTION_AXES[method] for d in named[axis]))


def moments(x: Tensor, dims: Sequence[int]) -> tuple[Tensor, Tensor]:
    """Mean and biased variance of ``x`` over ``dims`` (kept as size-1 dimensions).

    Two passes: first the mean, then the mean of the squared deviations from it. This is exact
    up to rounding whatever the offset of the data, unlike the one-pass formula
    ``E[x**2] - E[x]**2``, which cancels catastrophically when the mean is large against the
    spread (see the numerics chapter of the book). The mean itself gets one correction: the
    average of the deviations from the first estimate, which are small and so summed with
    little rounding, is added back (in float32 at an offset of 1e4 this halves the error).

    >>> x = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    >>> mean, var = moments(x, dims=(1,))
    >>> mean.item(), var.item()
    (2.5, 1.25)
    """
    dims = tuple(dims)
    mean = x.mean(dim=dims, keepdim=True)
    mean = mean + (x - mean).mean(dim=dims, keepdim=True)  # correct the first pass's rounding
    var = (x - mean).pow(2).mean(dim=dims, keepdim=True)
    return mean, var


class Standardize(torch.autograd.Function):
    r"""``x_hat, mean, var`` of ``x`` over ``dims``, with the compact backward of the module docstring.

    Forward: :func:`moments`, then :math:`(x - \mu) / \sqrt{\sigma^2 + \epsilon}`, exactly the
    composite formula. Backward: the closed form for :math:`\hat x`, plus the (rarely used)
    gradients through the returned ``mean`` (:math:`1/m`) and ``var``
    (:math:`2 (x_i - \mu) / m`). Only ``x``, ``mean`` and :math:`1/\sqrt{\sigma^2+\epsilon}` are
    kept for the backward, against five intermediates of the size of ``x`` for autograd.

    A second derivative (``create_graph=True``, e.g. ``gradgradcheck``) works too: then the
    backward recomputes the statistics from ``x`` with ordinary differentiable operations, so
    autograd can differentiate the closed form itself.
    """

    @staticmethod
    def forward(ctx, x: Tensor, dims: tuple[int, ...], eps: float) -> tuple[Tensor, Tensor, Tensor]:
        # moments(x, dims) and (x - mean) * inv_std, op for op, in two buffers of x's size
        # instead of five (on a CPU every fresh large buffer costs page faults)
        mean = x.mean(dim=dims, keepdim=True)
        deviations = x - mean
        mean = mean + deviations.mean(dim=dims, keepdim=True)  # correct the first pass's rounding
        torch.sub(x, mean, out=deviations)
        x_hat = torch.pow(deviations, 2)
        var = x_hat.mean(dim=dims, keepdim=True)
        inv_std = torch.rsqrt(var + eps)
        torch.mul(deviations, inv_std, out=x_hat)
        ctx.save_for_backward(x, mean, inv_std)
        ctx.dims, ctx.eps = dims, eps
        ctx.set_materialize_grads(False)  # unused outputs (mean, var) send None, not zeros
        return x_hat, mean, var

    @staticmethod
    def backward(ctx, grad_x_hat: Tensor | None, grad_mean: Tensor | None, grad_var: Tensor | None):
        x, mean, inv_std = ctx.saved_tensors
        dims = ctx.dims
        m = x.numel() // mean.numel()  # |S_k|
        create_graph = torch.is_grad_enabled()  # a second derivative will be taken
        if create_graph:  # rebuild the statistics from x with differentiable operations
            mean, var = moments(x, dims)
            inv_std = torch.rsqrt(var + ctx.eps)
        # without a graph to keep, each full-size result overwrites its own temporary
        x_hat = (x - mean) * inv_std if create_graph else (x - mean).mul_(inv_std)
        grad = None
        if grad_x_hat is not None:
            g_bar = grad_x_hat.mean(dim=dims, keepdim=True)
            gx_bar = (grad_x_hat * x_hat).mean(dim=dims, keepdim=True)
            # inv_std * (g - g_bar - x_hat * gx_bar)
            grad = x_hat * (-gx_bar * inv_std) if create_graph else x_hat.mul_(-gx_bar * inv_std)
            grad = grad.add_(-g_bar * inv_std).addcmul_(grad_x_hat, inv_std)
        if grad_mean is not None:
            grad = (grad_mean / m).expand_as(x) if grad is None else grad + grad_mean / m
        if grad_var is not None:
            grad_from_var = 2 / m * grad_var * (x - mean)
            grad = grad_from_var if grad is None else grad + grad_from_var
        return grad, None, None


def standardize(x: Tensor, dims: Sequence[int], eps: float) -> tuple[Tensor, Tensor, Tensor]:
    r""":math:`\hat x` with the batch statistics of ``x`` over ``dims``, and those statistics.

    Returns ``(x_hat, mean, var)`` (``mean`` and the biased ``var`` as size-1 dimensions), so a
    caller that keeps running statistics (batch norm, instance norm) gets them without a second
    pass. The backward is :class:`Standardize`'s closed form.

    >>> x = torch.tensor([[1.0, 3.0], [5.0, 7.0]], dtype=torch.float64)
    >>> x_hat, mean, var = standardize(x, dims=(1,), eps=0.0)
    >>> x_hat, mean.flatten(), var.flatten()
    (tensor([[-1.,  1.],
            [-1.,  1.]], dtype=torch.float64), tensor([2., 6.], dtype=torch.float64), tensor([1., 1.], dtype=torch.float64))
    """
    dims = tuple(d % x.dim() for d in dims)
    if x.is_complex():  # the closed form is for real inputs; let autograd handle the rest
        mean, var = moments(x, dims)
        return (x - mean) * torch.rsqrt(var + eps), mean, var
    return Standardize.apply(x, dims, eps)


def normalize(
    x: Tensor,
    dims: Sequence[int],
    eps: float,
    mean: Tensor | None = None,
    var: Tensor | None = None,
) -> Tensor:
    r""":math:`\hat x = (x - \mu) / \sqrt{\sigma^2 + \epsilon}` with statistics over ``dims``.

    When ``mean`` and ``var`` are given (running statistics in evaluation mode) they are used
    as they are, broadcast against ``x``; otherwise they are the :func:`moments` of ``x``
    (through :func:`standardize`, whose backward is the closed form).

    >>> x = torch.tensor([[1.0, 3.0], [5.0, 7.0]], dtype=torch.float64)
    >>> normalize(x, dims=(1,), eps=1e-5)
    tensor([[-1.0000,  1.0000],
            [-1.0000,  1.0000]], dtype=torch.float64)
    """
    if mean is None or var is None:
        return standardize(x, dims, eps)[0]
    return (x - mean) * torch.rsqrt(var + eps)


def affine(x_hat: Tensor, weight: Tensor | None, bias: Tensor | None, channel_dim: int = 1) -> Tensor:
    r""":math:`y = \gamma \hat x + \beta` with one :math:`(\gamma, \beta)` per channel.

    ``weight`` and ``bias`` are 1-dimensional (one value per index of ``channel_dim``) and are
    broadcast over every other dimension. Either may be ``None`` (no scale, no shift).
    """
    shape = [1] * x_hat.dim()
    shape[channel_dim] = -1
    y = x_hat
    if weight is not None:
        y = x_hat * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape) if y is x_hat else y.add_(bias.reshape(shape))  # in place on our own buffer
    return y


# ---------------------------------------------------------------------------------------------
# Input checks shared by the functional and module forms. Each raises ValueError naming the
# argument, what was expected, and what was given.


def check_floating(input: Tensor, name: str = "input") -> None:
    if not isinstance(input, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(input).__name__}")
    if not (input.is_floating_point() or input.is_complex()):
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {input.dtype}")


def check_eps(eps: float) -> None:
    if not eps > 0:
        raise ValueError(f"eps must be positive (it keeps 1/sqrt(var + eps) finite), got {eps}")


def check_per_channel(t: Tensor | None, channels: int, name: str) -> None:
    if t is not None and (t.dim() != 1 or t.numel() != channels):
        raise ValueError(
            f"{name} must have one value per channel, shape ({channels},), got {tuple(t.shape)}"
        )
