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
dimensions that :func:`standardize` reduces over; ``normlib.functional`` uses nothing else.

The formula above, op for op, is :func:`composite`. What the layers run is :class:`Standardize`,
a ``torch.autograd.Function`` that computes the same values in one buffer of the input's size,
and whose backward is not left to autograd (which would keep every intermediate of the formula
and walk back through each) but is the compact closed form that :mod:`normlib.grad` derives,

.. math::

    \frac{\partial L}{\partial x_i} = \frac{1}{\sqrt{\sigma_k^2 + \epsilon}}
    \Big(g_i - \overline{g} - \hat x_i \, \overline{g \hat x}\Big), \qquad
    g = \gamma \frac{\partial L}{\partial y},

with the bars averages over :math:`S_k`. That is what brings normlib's eager speed close to
PyTorch's native kernels (the book's performance chapter has the measurements).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

#: Input dtypes whose statistics and arithmetic run in float32 (PyTorch's kernels accumulate so);
#: the output is cast back to the input's dtype.
LOW_PRECISION = (torch.float16, torch.bfloat16)

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

    For group norm the tensor is first viewed as ``(N, G, C // G, ...)``, with the channels of
    one group on an axis of their own, and every axis after ``G`` is reduced.

    >>> reduce_dims("batch", 4), reduce_dims("layer", 4), reduce_dims("instance", 4)
    ((0, 2, 3), (1, 2, 3), (2, 3))
    >>> reduce_dims("group", 4)  # of the (N, G, C // G, H * W) view
    (2, 3)
    """
    if method not in REDUCTION_AXES:
        raise ValueError(f"method must be one of {sorted(REDUCTION_AXES)}, got {method!r}")
    if method == "group":
        return tuple(range(2, ndim))
    spatial = tuple(range(2, ndim))
    named = {"N": (0,), "C": (1,), "spatial": spatial}
    return tuple(sorted(d for axis in REDUCTION_AXES[method] for d in named[axis]))


def moments(x: Tensor, dims: Sequence[int], center: bool = True) -> tuple[Tensor, Tensor]:
    """Mean and biased variance of ``x`` over ``dims`` (kept as size-1 dimensions).

    With ``center=False`` (RMSNorm) the mean is taken to be 0: the "variance" is then the mean
    square :math:`\overline{x^2}` (of ``x * x``, also for complex ``x``, as PyTorch's ``rms_norm``).

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
    if not center:
        mean_square = (x * x).mean(dim=dims, keepdim=True)
        return torch.zeros_like(mean_square), mean_square
    mean = x.mean(dim=dims, keepdim=True)
    mean = mean + (x - mean).mean(dim=dims, keepdim=True)  # correct the first pass's rounding
    var = (x - mean).pow(2).mean(dim=dims, keepdim=True)
    return mean, var


def _trailing_split(dims: tuple[int, ...], ndim: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``dims`` split into the run that ends at the last dimension (contiguous in memory) and the rest."""
    inner = []
    while ndim - 1 - len(inner) in dims:
        inner.insert(0, ndim - 1 - len(inner))
    return tuple(inner), tuple(d for d in dims if d not in inner)


def _sum(t: Tensor, dims: tuple[int, ...]) -> Tensor:
    """``t`` summed over ``dims`` (kept as size-1 dimensions); ``t`` itself when there are none."""
    return t.sum(dim=dims, keepdim=True) if dims else t


def _mean_square(y: Tensor, dims: tuple[int, ...]) -> Tensor:
    """Mean of ``y**2`` over ``dims`` without a buffer of ``y``'s size where that is possible.

    ``vector_norm`` reads ``y`` once over contiguous trailing dimensions; the norm is scaled
    before it is squared, so a float16 sum of squares cannot overflow.
    """
    inner, outer = _trailing_split(dims, y.dim())
    if not inner:
        return y.square().mean(dim=dims, keepdim=True)
    n = math.prod(y.shape[d] for d in inner)
    ms = torch.linalg.vector_norm(y, dim=inner, keepdim=True).mul_(n**-0.5).square()
    return ms.mean(dim=outer, keepdim=True) if outer else ms


def _sum_times(t: Tensor, weight: Tensor | None, dims: tuple[int, ...]) -> Tensor:
    """``(t * weight)`` summed over ``dims``; a matrix-vector product when ``weight`` spans exactly
    the trailing ``dims`` of ``t`` (layer norm), which reads ``t`` once and writes nothing of its size."""
    if weight is None:
        return _sum(t, dims)
    inner, outer = _trailing_split(dims, t.dim())
    k = len(inner)
    if dims and not outer and weight.numel() == math.prod(t.shape[t.dim() - k:]) < t.numel():
        return (t.reshape(-1, weight.numel()) @ weight.reshape(-1)).reshape(t.shape[: t.dim() - k] + (1,) * k)
    return _sum(t * weight, dims)


def composite(
    x: Tensor,
    dims: tuple[int, ...],
    eps: float,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    center: bool = True,
):
    r"""``(y, mean, var)`` by the formula, op for op: :func:`moments`, :math:`(x - \mu)/\sqrt{\sigma^2+\epsilon}`,
    then :math:`\gamma \hat x + \beta`. Autograd differentiates it through every intermediate.
    :class:`Standardize` computes the same values with fewer passes over memory.

    Under ``torch.compile`` the statistics are ``torch.var_mean``, which the compiler turns into
    one loop of Welford's update (as robust to a large mean as two passes); in eager mode that
    kernel is slow on a CPU for these layouts, so :func:`moments` is used there."""
    if torch.compiler.is_compiling() and center:
        var, mean = torch.var_mean(x, dim=dims, correction=0, keepdim=True)
    else:
        mean, var = moments(x, dims, center)
    y = (x - mean) * torch.rsqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y, mean, var


class Standardize(torch.autograd.Function):
    r"""``(y, mean, var)``: :math:`y = \gamma \hat x + \beta` with the statistics of ``x`` over ``dims``.

    ``weight`` (:math:`\gamma`) and ``bias`` (:math:`\beta`) are ``None`` or broadcast against ``x``
    (e.g. ``(1, C, 1, 1)`` for one value per channel); the dimensions where they have size 1 are
    the ones their gradients sum over. The values are :func:`composite`'s, computed with the
    fewest passes over memory that plain tensor operations allow:

    - forward: the mean, one buffer :math:`x - \mu_0`, the first pass's rounding
      :math:`c` (the mean of that buffer) and the mean square of it, so that
      :math:`\sigma^2 = \overline{(x - \mu_0)^2} - c^2` and :math:`\mu = \mu_0 + c` (the same
      two-pass statistics as :func:`moments`); then, in place on the buffer, subtract
      :math:`c`, scale by :math:`1/\sqrt{\sigma^2+\epsilon}`, by :math:`\gamma`, add :math:`\beta`.
    - backward: the closed form of the module docstring with :math:`g = \gamma\,\partial L/\partial y`,
      plus :math:`\partial L/\partial\gamma = \sum g_y \hat x` and :math:`\partial L/\partial\beta = \sum g_y`,
      in one new buffer: :math:`g_y \hat x` is formed there, summed, and the buffer is then
      refilled with :math:`x - \mu` and turned into :math:`\partial L/\partial x` in place.

    Only ``x``, ``weight``, ``mean`` and :math:`1/\sqrt{\sigma^2+\epsilon}` are kept for the backward.
    Gradients through the returned ``mean`` and ``var``, second derivatives (``create_graph=True``)
    and ``torch.func`` transforms (``grad``, ``jacrev``, ``vmap``) take the same closed form written
    in out-of-place operations, which autograd and ``torch.func`` can follow;
    :meth:`jvp` gives the forward-mode derivative (``jacfwd``, ``hessian``).
    """

    generate_vmap_rule = True  # torch.func.vmap runs forward and backward per sample

    @staticmethod
    def forward(x, weight, bias, dims: tuple[int, ...], eps: float, center: bool):
        if center:
            mean = x.mean(dim=dims, keepdim=True)
            y = x - mean  # the output's buffer
            c = y.mean(dim=dims, keepdim=True)  # the first pass's rounding, small
            var = _mean_square(y, dims).sub_(c * c).clamp_min_(0)
            mean = mean + c
            inv_std = torch.rsqrt(var + eps)
            y = y.sub_(c).mul_(inv_std)
        else:  # RMSNorm: no mean, the mean square in place of the variance
            var = _mean_square(x, dims)
            mean = torch.zeros_like(var)
            y = x * torch.rsqrt(var + eps)
        if weight is not None:
            y = y.mul_(weight)
        if bias is not None:
            y = y.add_(bias)
        return y, mean, var

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias, dims, eps, center = inputs
        _, mean, var = output
        saved = (x, weight, bias, mean, torch.rsqrt(var + eps))
        ctx.save_for_backward(*saved)
        ctx.save_for_forward(*saved)
        ctx.dims, ctx.eps, ctx.m = dims, eps, math.prod(x.shape[d] for d in dims)  # m = |S_k|
        ctx.center = center
        params = weight if weight is not None else bias
        if params is None:  # no affine step: nothing to sum for it
            ctx.param_dims = dims
        else:  # the dimensions along which weight and bias are constant: their gradients sum over these
            shape = (1,) * (x.dim() - params.dim()) + tuple(params.shape)
            ctx.param_dims = tuple(d for d in range(x.dim()) if shape[d] == 1)
        ctx.set_materialize_grads(False)  # unused outputs (mean, var) send None, not zeros

    @staticmethod
    def backward(ctx, grad_y, grad_mean, grad_var):
        x, weight, bias, mean, inv_std = ctx.saved_tensors
        if grad_mean is not None or grad_var is not None or torch.is_grad_enabled() or grad_y is None:
            return Standardize._differentiable_backward(ctx, grad_y, grad_mean, grad_var)
        dims, m = ctx.dims, ctx.m
        if m == 1 and ctx.center:  # x_hat = 0 whatever x is, so y = bias and the input gradient is exactly zero
            grad_x = torch.zeros_like(x)
            grad_weight = torch.zeros_like(weight) if ctx.needs_input_grad[1] else None
            grad_bias = _sum(grad_y, ctx.param_dims).reshape(bias.shape) if ctx.needs_input_grad[2] else None
            return grad_x, grad_weight, grad_bias, None, None, None
        shared = tuple(d for d in dims if d in ctx.param_dims)  # S_k and one parameter value in common
        over_params = tuple(d for d in ctx.param_dims if d not in shared)
        over_stats = tuple(d for d in dims if d not in shared)
        buffer = (x - mean).mul_(inv_std).mul_(grad_y)  # g_y * x_hat: the one new buffer
        sum_gx = _sum(buffer, shared)
        grad_weight = _sum(sum_gx, over_params).reshape(weight.shape) if ctx.needs_input_grad[1] else None
        gx_bar = _sum_times(sum_gx, weight, over_stats) / m  # mean of g * x_hat, with g = weight * grad_y
        sum_g = _sum(grad_y, shared) if ctx.center or ctx.needs_input_grad[2] else None
        grad_bias = _sum(sum_g, over_params).reshape(bias.shape) if ctx.needs_input_grad[2] else None
        del sum_gx
        # inv_std * (g - g_bar - x_hat * gx_bar), with x_hat = (x - mean) * inv_std, in the same buffer
        grad_x = torch.sub(x, mean, out=buffer).mul_(-gx_bar * inv_std)
        if ctx.center:  # RMSNorm has no mean, so no g_bar
            grad_x = grad_x.sub_(_sum_times(sum_g, weight, over_stats) / m)  # g_bar, the mean of g
        grad_x = grad_x.add_(grad_y) if weight is None else grad_x.addcmul_(grad_y, weight)
        return grad_x.mul_(inv_std), grad_weight, grad_bias, None, None, None

    @staticmethod
    def _differentiable_backward(ctx, grad_y, grad_mean, grad_var):
        """The same gradients in out-of-place operations, with the statistics rebuilt from ``x``, so
        that autograd (second derivatives) and ``torch.func`` transforms can follow every step."""
        x, weight, bias, _, _ = ctx.saved_tensors
        dims, m = ctx.dims, ctx.m
        mean, var = moments(x, dims, ctx.center)
        inv_std = torch.rsqrt(var + ctx.eps)
        x_hat = (x - mean) * inv_std
        grad_x = grad_weight = grad_bias = None
        if grad_y is not None:
            g = grad_y if weight is None else grad_y * weight
            g_bar = g.mean(dim=dims, keepdim=True) if ctx.center else 0
            gx_bar = (g * x_hat).mean(dim=dims, keepdim=True)
            grad_x = inv_std * (g - g_bar - x_hat * gx_bar)
            if ctx.needs_input_grad[1]:
                grad_weight = _sum(grad_y * x_hat, ctx.param_dims).reshape(weight.shape)
            if ctx.needs_input_grad[2]:
                grad_bias = _sum(grad_y, ctx.param_dims).reshape(bias.shape)
        for extra in (
            None if grad_mean is None or not ctx.center else (grad_mean / m).expand_as(x),  # d mean / d x_i = 1 / m
            None if grad_var is None else 2 / m * grad_var * (x - mean),  # d var / d x_i = 2 (x_i - mean) / m
        ):
            if extra is not None:
                grad_x = extra if grad_x is None else grad_x + extra
        if grad_x is None:
            grad_x = torch.zeros_like(x)
        return grad_x, grad_weight, grad_bias, None, None, None

    @staticmethod
    def jvp(ctx, x_t, weight_t, bias_t, _dims, _eps, _center):
        """Forward-mode derivative (``torch.func.jvp``, ``jacfwd``, ``hessian``): the tangents of
        ``mean``, ``var`` and ``y`` from the tangents of ``x``, ``weight`` and ``bias``."""
        x, weight, bias, mean, inv_std = ctx.saved_tensors
        dims = ctx.dims
        centered = x - mean
        x_hat = centered * inv_std
        x_t = torch.zeros_like(x) if x_t is None else x_t
        mean_t = x_t.mean(dim=dims, keepdim=True) if ctx.center else torch.zeros_like(mean)
        var_t = 2 * (centered * x_t).mean(dim=dims, keepdim=True)
        x_hat_t = inv_std * (x_t - mean_t) - x_hat * (0.5 * inv_std**2 * var_t)
        y_t = x_hat_t if weight is None else x_hat_t * weight
        if weight_t is not None:
            y_t = y_t + x_hat * weight_t
        if bias_t is not None:
            y_t = y_t + bias_t
        return y_t, mean_t, var_t


def standardize(
    x: Tensor,
    dims: Sequence[int],
    eps: float,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    center: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    r""":math:`\gamma \hat x + \beta` with the batch statistics of ``x`` over ``dims``, and those statistics.

    Returns ``(y, mean, var)`` (``mean`` and the biased ``var`` as size-1 dimensions), so a
    caller that keeps running statistics (batch norm, instance norm) gets them without a second
    pass. ``weight`` and ``bias`` are ``None`` (then ``y`` is :math:`\hat x`) or broadcast
    against ``x``. With ``center=False`` (RMSNorm) the mean is not subtracted and the mean
    square takes the variance's place. The work is :class:`Standardize`'s (the closed-form backward); under
    ``torch.compile`` it is :func:`composite`, whose graph the compiler fuses itself.

    >>> x = torch.tensor([[1.0, 3.0], [5.0, 7.0]], dtype=torch.float64)
    >>> y, mean, var = standardize(x, dims=(1,), eps=0.0)
    >>> [t.flatten().round(decimals=12).tolist() for t in (y, mean, var)]
    [[-1.0, 1.0, -1.0, 1.0], [2.0, 6.0], [1.0, 1.0]]
    """
    dims = tuple(sorted(d % x.dim() for d in dims))
    if x.dtype in LOW_PRECISION:  # accumulate in float32, as PyTorch's kernels do
        weight, bias = (None if t is None else t.float() for t in (weight, bias))
        y, mean, var = standardize(x.float(), dims, eps, weight, bias, center)
        return y.to(x.dtype), mean, var
    if torch.compiler.is_compiling() or x.is_complex():
        return composite(x, dims, eps, weight, bias, center)
    return Standardize.apply(x, weight, bias, dims, eps, center)


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
    if x.dtype in LOW_PRECISION:  # in float32, as PyTorch's kernels do
        return ((x.float() - mean) * torch.rsqrt(var.float() + eps)).to(x.dtype)
    return (x - mean) * torch.rsqrt(var + eps)


def per_channel(t: Tensor | None, ndim: int, channel_dim: int = 1) -> Tensor | None:
    """A 1-dimensional per-channel tensor (a parameter or a running statistic) shaped to broadcast
    against an ``ndim``-dimensional input whose channels are on ``channel_dim``; ``None`` stays ``None``.

    >>> per_channel(torch.zeros(3), ndim=4).shape
    torch.Size([1, 3, 1, 1])
    """
    if t is None:
        return None
    shape = [1] * ndim
    shape[channel_dim] = -1
    return t.reshape(shape)


def affine(x_hat: Tensor, weight: Tensor | None, bias: Tensor | None, channel_dim: int = 1) -> Tensor:
    r""":math:`y = \gamma \hat x + \beta` with one :math:`(\gamma, \beta)` per channel.

    ``weight`` and ``bias`` are 1-dimensional (one value per index of ``channel_dim``) and are
    broadcast over every other dimension. Either may be ``None`` (no scale, no shift).
    """
    weight, bias = (per_channel(t, x_hat.dim(), channel_dim) for t in (weight, bias))
    y = x_hat
    if weight is not None:
        y = x_hat * weight
    if bias is not None:
        y = y + bias if y is x_hat else y.add_(bias)  # in place on our own buffer
    return y


# ---------------------------------------------------------------------------------------------
# Input checks shared by the functional and module forms. Each raises ValueError naming the
# argument, what was expected, and what was given.


def check_floating(input: Tensor, name: str = "input", complex: bool = False) -> None:
    """A real floating-point tensor (or, with ``complex=True``, a complex one too), as PyTorch's
    kernels require: they raise on integer and complex input where plain formulas would not."""
    if not isinstance(input, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(input).__name__}")
    if not (input.is_floating_point() or (complex and input.is_complex())):
        kind = "floating-point or complex" if complex else "real floating-point"
        raise ValueError(f"{name} must be a {kind} tensor, got dtype {input.dtype}")


def check_eps(eps: float, training: bool = True) -> None:
    """PyTorch's rule for batch norm, checked at forward time: ``eps > 0`` in training (the batch
    variance may be 0) and ``eps >= 0`` with running statistics."""
    if training and not eps > 0:
        raise ValueError(f"batch_norm eps must be positive during training, but got {eps}")
    if not eps >= 0:
        raise ValueError(f"batch_norm eps must be non-negative, but got {eps}")


def check_per_channel(t: Tensor | None, channels: int, name: str) -> None:
    if t is not None and (t.dim() != 1 or t.numel() != channels):
        raise ValueError(
            f"{name} must have one value per channel, shape ({channels},), got {tuple(t.shape)}"
        )
