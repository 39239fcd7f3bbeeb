r"""The speed path: :func:`normlib.core.formula`'s values with one buffer and a closed-form backward.

Written op for op, the formula makes about nine passes over a tensor of the input's size forward,
and autograd keeps every intermediate and walks back through each. :class:`Standardize` computes
the same ``(y, mean, var)`` as :func:`normlib.core.formula` (its reference, which the tests hold
it to) in one buffer, and its backward is the closed form of :func:`normlib.grad.standardize_backward`
(equation :eq:`normlib-fused`),

.. math::
    :label: normlib-fused

    \frac{\partial L}{\partial x_i} = \frac{1}{\sqrt{\sigma_k^2 + \epsilon}}
    \Big(g_i - \overline{g} - \hat x_i \, \overline{g \hat x}\Big), \qquad
    g = \gamma \frac{\partial L}{\partial y},

run in place in one more buffer. That brings normlib's eager speed close to PyTorch's native
kernels (the book's performance chapter has the measurements). :func:`standardize` is what the
layers call: it picks this path, or under ``torch.compile`` :class:`TracedStandardize`, the
formula and the same closed form in out-of-place operations, which the compiler traces and
fuses (in-place steps on one buffer are what it cannot see through).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from normlib.core import LOW_PRECISION, formula, sum_over
from normlib.grad import standardize_backward

__all__ = ["Standardize", "TracedStandardize", "standardize"]


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
    square takes the variance's place. float16 and bfloat16 are computed in float32, as
    PyTorch's kernels accumulate, and ``y`` is cast back. The work is :class:`Standardize`'s;
    under ``torch.compile`` it is :class:`TracedStandardize`'s, and for complex input
    :func:`normlib.core.formula`'s.

    >>> x = torch.tensor([[1.0, 3.0], [5.0, 7.0]], dtype=torch.float64)
    >>> y, mean, var = standardize(x, dims=(1,), eps=0.0)
    >>> [t.flatten().round(decimals=12).tolist() for t in (y, mean, var)]
    [[-1.0, 1.0, -1.0, 1.0], [2.0, 6.0], [1.0, 1.0]]
    """
    dims = tuple(sorted(d % x.dim() for d in dims))
    if x.dtype in LOW_PRECISION:
        weight, bias = (None if t is None else t.float() for t in (weight, bias))
        y, mean, var = standardize(x.float(), dims, eps, weight, bias, center)
        return y.to(x.dtype), mean, var
    if x.is_complex():
        return formula(x, dims, eps, weight, bias, center)
    if torch.compiler.is_compiling():
        return TracedStandardize.apply(x, weight, bias, dims, eps, center)
    return Standardize.apply(x, weight, bias, dims, eps, center)


class Standardize(torch.autograd.Function):
    r"""``(y, mean, var)``: :math:`y = \gamma \hat x + \beta` with the statistics of ``x`` over ``dims``.

    ``weight`` (:math:`\gamma`) and ``bias`` (:math:`\beta`) are ``None`` or broadcast against ``x``
    (e.g. ``(1, C, 1, 1)`` for one value per channel); the dimensions where they have size 1 are
    the ones their gradients sum over. The values are :func:`normlib.core.formula`'s, computed
    with the fewest passes over memory that plain tensor operations allow:

    - forward: the mean, one buffer :math:`x - \mu_0`, the first pass's rounding
      :math:`c` (the mean of that buffer) and the mean square of it, so that
      :math:`\sigma^2 = \overline{(x - \mu_0)^2} - c^2` and :math:`\mu = \mu_0 + c` (the same
      two-pass statistics as :func:`normlib.core.moments`); then, in place on the buffer, subtract
      :math:`c`, scale by :math:`1/\sqrt{\sigma^2+\epsilon}`, by :math:`\gamma`, add :math:`\beta`.
      Where :math:`\gamma/\sqrt{\sigma^2+\epsilon}` is a small tensor (one value per set and
      channel: batch, instance, group norm), those four steps are one multiply and one add.
    - backward: the closed form above with :math:`g = \gamma\,\partial L/\partial y`,
      plus :math:`\partial L/\partial\gamma = \sum g_y \hat x` and :math:`\partial L/\partial\beta = \sum g_y`,
      in one new buffer, the result's: :math:`g_y \hat x` is formed there, summed, and the buffer
      is then refilled with :math:`x - \mu` and turned into :math:`\partial L/\partial x` in
      place; where :math:`\gamma/\sqrt{\sigma^2+\epsilon}` is small, as
      :math:`(x - \mu)\,a + g_y \gamma/\sqrt{\sigma^2+\epsilon} + b` with one :math:`a` and
      :math:`b` per set (six whole-tensor operations instead of eight). When the statistics do not
      reach across dimension 0 (layer, instance, group norm), this runs on blocks of rows
      (``BLOCK`` elements or more), so that the passes over a block find it in the cache; the
      parameters' gradients add up the blocks' shares.

    Only ``x``, ``weight``, ``mean`` and :math:`1/\sqrt{\sigma^2+\epsilon}` are kept for the backward.
    Gradients through the returned ``mean`` and ``var``, second derivatives (``create_graph=True``)
    and ``torch.func`` transforms (``grad``, ``jacrev``, ``vmap``) take
    :func:`normlib.grad.standardize_backward` instead, the same closed form in out-of-place
    operations, which autograd and ``torch.func`` can follow; :meth:`jvp` gives the forward-mode
    derivative (``jacfwd``, ``hessian``).
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
            if _small_scale(x, inv_std, weight):  # batch, instance, group norm: one pass for the four steps
                scale = inv_std if weight is None else inv_std * weight
                shift = -c * scale if bias is None else bias - c * scale
                return y.mul_(scale).add_(shift), mean, var  # ((y - c) inv_std) gamma + beta
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
        saved = _save_for_backward(ctx, inputs, output)
        ctx.save_for_forward(*saved)
        x, weight, _, _, inv_std = saved
        ctx.folded = ctx.center and _small_scale(x, inv_std, weight)  # the forward's choice, for the backward

    @staticmethod
    def backward(ctx, grad_y, grad_mean, grad_var):
        x, weight, bias, mean, inv_std = ctx.saved_tensors
        if grad_mean is not None or grad_var is not None or torch.is_grad_enabled() or grad_y is None:
            return _closed_form_backward(ctx, grad_y, grad_mean, grad_var, recompute=True)
        dims, m = ctx.dims, ctx.set_size
        if m == 1 and ctx.center:  # x_hat = 0 whatever x is: y = bias, an exactly zero input gradient
            grad_weight = torch.zeros_like(weight) if ctx.needs_input_grad[1] else None
            grad_bias = sum_over(grad_y, ctx.param_dims).reshape(bias.shape) if ctx.needs_input_grad[2] else None
            return torch.zeros_like(x), grad_weight, grad_bias, None, None, None
        grad_x = torch.empty_like(x)
        grad_weight = grad_bias = None
        rows_share_params = 0 in ctx.param_dims or weight is None and bias is None  # no parameter varies along dim 0
        for rows in _blocks(x, dims, rows_share_params):  # a few rows at a time, so that they stay in the cache
            partial_weight, partial_bias = Standardize._backward_rows(
                ctx, grad_y[rows], x[rows], weight, mean[rows], inv_std[rows], out=grad_x[rows])
            grad_weight, grad_bias = _plus(grad_weight, partial_weight), _plus(grad_bias, partial_bias)
        grad_weight = grad_weight.reshape(weight.shape) if ctx.needs_input_grad[1] else None
        grad_bias = grad_bias.reshape(bias.shape) if ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias, None, None, None

    @staticmethod
    def _backward_rows(ctx, grad_y, x, weight, mean, inv_std, out):
        r"""The closed form on some rows (along dimension 0, which is not one of the statistics'):
        writes their :math:`\partial L/\partial x` into ``out``, returns their share of the
        gradients of ``weight`` and ``bias`` (unshaped; ``None`` where not needed)."""
        dims, m = ctx.dims, ctx.set_size
        # The sums over S_k and over the parameters' dimensions share the dimensions in both; sum
        # over those once, then finish each sum over the dimensions that are only its own.
        in_both = tuple(d for d in dims if d in ctx.param_dims)
        params_only = tuple(d for d in ctx.param_dims if d not in in_both)
        stats_only = tuple(d for d in dims if d not in in_both)
        if ctx.folded:  # g_y * (x - mean) in the buffer; inv_std applied to its sums, which are small
            buffer = torch.sub(x, mean, out=out).mul_(grad_y)
            sum_gx = sum_over(buffer, in_both).mul_(inv_std)
        else:
            buffer = torch.sub(x, mean, out=out).mul_(inv_std).mul_(grad_y)  # g_y * x_hat: the one buffer
            sum_gx = sum_over(buffer, in_both)
        grad_weight = sum_over(sum_gx, params_only) if ctx.needs_input_grad[1] else None
        gx_bar = _sum_times(sum_gx, weight, stats_only) / m  # mean of g * x_hat, with g = weight * grad_y
        del sum_gx
        sum_g = sum_over(grad_y, in_both) if ctx.center or ctx.needs_input_grad[2] else None
        grad_bias = sum_over(sum_g, params_only) if ctx.needs_input_grad[2] else None
        g_bar = _sum_times(sum_g, weight, stats_only) / m if ctx.center else None  # RMSNorm has no g_bar
        if ctx.folded:  # the same, as (x - mean) * (-inv_std^2 gx_bar) + g_y * (inv_std gamma) - inv_std g_bar
            grad_x = torch.sub(x, mean, out=buffer).mul_(-inv_std * inv_std * gx_bar)
            grad_x = grad_x.addcmul_(grad_y, inv_std if weight is None else inv_std * weight)
            grad_x.sub_(inv_std * g_bar)
            return grad_weight, grad_bias
        # inv_std * (g - g_bar - x_hat * gx_bar), with x_hat = (x - mean) * inv_std, in the same buffer
        grad_x = torch.sub(x, mean, out=buffer).mul_(-gx_bar * inv_std)
        if g_bar is not None:
            grad_x = grad_x.sub_(g_bar)
        grad_x = grad_x.add_(grad_y) if weight is None else grad_x.addcmul_(grad_y, weight)
        grad_x.mul_(inv_std)
        return grad_weight, grad_bias

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


class TracedStandardize(torch.autograd.Function):
    r"""What ``torch.compile`` gets from :func:`standardize`: the values of :func:`normlib.core.formula`,
    and the closed form of :func:`normlib.grad.standardize_backward` as the backward.

    Both are out-of-place tensor operations, which the compiler traces and fuses: forward, two
    loops over the input for the statistics and one for the output; backward, one for the
    partial sums and one for :math:`\partial L/\partial x`. Left to differentiate the formula
    itself, autograd takes the sums over :math:`S_k` and over the parameters' dimensions apart,
    and the compiler makes a loop over the input for each. The backward uses the statistics the
    forward kept (a compiled graph has no second derivative in any case: PyTorch raises).
    """

    @staticmethod
    def forward(x, weight, bias, dims: tuple[int, ...], eps: float, center: bool):
        return formula(x, dims, eps, weight, bias, center)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _save_for_backward(ctx, inputs, output)

    @staticmethod
    def backward(ctx, grad_y, grad_mean, grad_var):
        return _closed_form_backward(ctx, grad_y, grad_mean, grad_var, recompute=False)


def _save_for_backward(ctx, inputs, output) -> tuple:
    """What both Functions' backwards need: ``(x, weight, bias, mean, inv_std)``, saved and
    returned; the statistics' dimensions, ``eps``, whether centred, :math:`|S_k|`, and the
    dimensions the parameters' gradients sum over. Unused outputs (mean, var) send None, not zeros."""
    x, weight, bias, dims, eps, center = inputs
    _, mean, var = output
    saved = (x, weight, bias, mean, torch.rsqrt(var + eps))
    ctx.save_for_backward(*saved)
    ctx.set_materialize_grads(False)
    ctx.dims, ctx.eps, ctx.center = dims, eps, center
    ctx.set_size = math.prod([x.shape[d] for d in dims])  # |S_k|, the elements sharing one mean
    params = weight if weight is not None else bias
    if params is None:  # no affine step: nothing to sum for it
        ctx.param_dims = dims
    else:  # the dimensions along which weight and bias are constant: their gradients sum over these
        shape = (1,) * (x.dim() - params.dim()) + tuple(params.shape)
        ctx.param_dims = tuple(d for d in range(x.dim()) if shape[d] == 1)
    return saved


def _closed_form_backward(ctx, grad_y, grad_mean, grad_var, recompute: bool):
    """:func:`normlib.grad.standardize_backward`, plus the gradients through the returned ``mean``
    and ``var``. With ``recompute`` the statistics are rebuilt from ``x``, so that autograd (second
    derivatives) and ``torch.func`` transforms can follow every step; else the kept ones are used."""
    x, weight, bias, mean, inv_std = ctx.saved_tensors
    m = ctx.set_size
    grad_x = grad_weight = grad_bias = None
    if grad_y is not None:
        stats = {} if recompute else {"mean": mean, "inv_std": inv_std}
        grad_x, grad_weight, grad_bias = standardize_backward(
            grad_y, x, ctx.dims, ctx.eps, weight, ctx.param_dims, ctx.center, **stats)
        grad_weight = grad_weight.reshape(weight.shape) if ctx.needs_input_grad[1] else None
        grad_bias = grad_bias.reshape(bias.shape) if ctx.needs_input_grad[2] else None
    if grad_mean is not None and ctx.center:  # d mean / d x_i = 1 / m
        grad_x = _plus(grad_x, (grad_mean / m).expand_as(x))
    if grad_var is not None:  # d var / d x_i = 2 (x_i - mean) / m
        grad_x = _plus(grad_x, 2 / m * grad_var * (x - mean))
    if grad_x is None:
        grad_x = torch.zeros_like(x)
    return grad_x, grad_weight, grad_bias, None, None, None


# ---------------------------------------------------------------------------------------------
# Sums that read a tensor once and write nothing of its size


def _plus(a: Tensor | None, b: Tensor) -> Tensor:
    return b if a is None else a + b


#: Elements per block of rows in the backward (at least): a few of these blocks (the input's, the
#: upstream gradient's, the result's) fit in the processor's cache, where the passes over them are cheap.
BLOCK = 1 << 20


def _blocks(x: Tensor, dims: tuple[int, ...], rows_share_params: bool) -> list[slice]:
    """Slices of dimension 0 with ``BLOCK`` elements or more each, when the statistics do not
    reach across dimension 0 and every row uses the same parameters (``rows_share_params``: layer,
    instance, group norm); else one slice for all of ``x``."""
    if 0 in dims or not rows_share_params:
        return [slice(None)]
    rows = max(1, -(-x.shape[0] // max(1, x.numel() // BLOCK)))  # ceil(N / blocks): BLOCK elements or more
    return [slice(start, start + rows) for start in range(0, max(x.shape[0], 1), rows)]


def _small_scale(x: Tensor, stats: Tensor, weight: Tensor | None) -> bool:
    """Whether ``inv_std * weight`` (one factor per set, ``stats``' shape, times one per parameter)
    is much smaller than ``x``: then the affine step folds into the normalization's, and the
    backward's into fewer passes. True for batch, instance and group norm; false for layer norm
    with its weight."""
    shape = stats.shape if weight is None else torch.broadcast_shapes(stats.shape, weight.shape)
    return math.prod(shape) * 4 <= x.numel()


def _trailing_split(dims: tuple[int, ...], ndim: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``dims`` split into the run that ends at the last dimension (contiguous in memory) and the rest."""
    inner = []
    while ndim - 1 - len(inner) in dims:
        inner.insert(0, ndim - 1 - len(inner))
    return tuple(inner), tuple(d for d in dims if d not in inner)


def _mean_square(y: Tensor, dims: tuple[int, ...]) -> Tensor:
    """Mean of ``y**2`` over ``dims`` without a buffer of ``y``'s size where that is possible.

    ``vector_norm`` reads ``y`` once over contiguous trailing dimensions; the norm is scaled
    before it is squared, so a large sum of squares cannot overflow.
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
        return sum_over(t, dims)
    inner, outer = _trailing_split(dims, t.dim())
    k = len(inner)
    if dims and not outer and weight.numel() == math.prod(t.shape[t.dim() - k:]) < t.numel():
        return (t.reshape(-1, weight.numel()) @ weight.reshape(-1)).reshape(t.shape[: t.dim() - k] + (1,) * k)
    return sum_over(t * weight, dims)
