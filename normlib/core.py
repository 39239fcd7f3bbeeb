r"""The framework behind batch, layer, instance, group and RMS normalization, top to bottom.

Every one of these methods computes, for each element :math:`x_i`, a mean and a variance over a
set :math:`S_k` of elements that share statistics with it, and then (equation :eq:`normlib-core`)

.. math::
    :label: normlib-core

    \mu_k = \frac{1}{|S_k|} \sum_{i \in S_k} x_i, \qquad
    \sigma_k^2 = \frac{1}{|S_k|} \sum_{i \in S_k} (x_i - \mu_k)^2, \qquad
    \hat x_i = \frac{x_i - \mu_k}{\sqrt{\sigma_k^2 + \epsilon}}, \qquad
    y_i = \gamma \hat x_i + \beta.

The methods differ only in :math:`S_k` (RMSNorm also drops :math:`\mu_k`, taking it to be 0).
For an input of shape ``(N, C, *spatial)``:

=============  ==================================  ===========================================
method         statistics shared over              one ``(mu, var)`` pair per
=============  ==================================  ===========================================
batch norm     ``N`` and every spatial axis        channel
layer norm     ``C`` and every spatial axis        sample
instance norm  every spatial axis                  (sample, channel)
group norm     ``C / G`` channels and spatial      (sample, group)
RMSNorm        ``C`` and every spatial axis        sample, with :math:`\mu_k = 0`
=============  ==================================  ===========================================

Read this module in order: :data:`REDUCTION_AXES` states the table in code; :func:`group_view`
and :func:`sample_view` put an input into the table's layout; :func:`reduce_dims` turns a row
into dimensions; :func:`moments` computes the statistics; :func:`formula` is the formula above,
op for op; :func:`normalize`, :func:`per_channel` and :func:`affine` are its two steps for the
callers that hold running statistics; :func:`update_running` keeps those; the input checks
come last. What the layers run is the speed path, :func:`normlib.fused.standardize`, which
computes the same values as :func:`formula` with one buffer and a closed-form backward.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

# ---------------------------------------------------------------------------------------------
# Which elements share statistics


#: For each method, the named axes it averages over. The axes are those of the method's layout:
#: ``(N, C, *spatial)``, or for group norm the ``(N, G, C/G, *spatial)`` of :func:`group_view`
#: (the channels of one group on an axis of their own). Layer norm and RMSNorm see their input
#: through :func:`sample_view`, with everything before ``normalized_shape`` as ``N``. RMSNorm
#: reduces what layer norm reduces but does not subtract the mean (``center=False`` below).
REDUCTION_AXES: dict[str, tuple[str, ...]] = {
    "batch": ("N", "spatial"),
    "layer": ("C", "spatial"),
    "instance": ("spatial",),
    "group": ("C/G", "spatial"),
    "rms": ("C", "spatial"),
}
_LAYOUTS = {"group": ("N", "G", "C/G", "spatial")}  # every other method: ("N", "C", "spatial")


def group_view(x: Tensor, num_groups: int) -> Tensor:
    """``x`` of shape ``(N, C, *spatial)`` viewed as ``(N, G, C // G, prod(spatial))``, group norm's layout.

    >>> group_view(torch.zeros(2, 6, 4, 4), 3).shape
    torch.Size([2, 3, 2, 16])
    """
    return x.reshape(x.shape[0], num_groups, x.shape[1] // num_groups, -1)


def sample_view(x: Tensor, normalized_ndim: int) -> Tensor:
    """``x`` viewed as ``(N, *normalized_shape)``, the last ``normalized_ndim`` dimensions kept and
    every leading one folded into ``N`` (layer norm's and RMSNorm's layout: ``C`` and spatial).

    >>> sample_view(torch.zeros(2, 7, 16), 1).shape
    torch.Size([14, 16])
    """
    leading = x.shape[: x.dim() - normalized_ndim]
    return x.reshape(math.prod(leading), *x.shape[x.dim() - normalized_ndim:])


def reduce_dims(method: str, ndim: int) -> tuple[int, ...]:
    """The dimensions of an ``ndim``-dimensional input, in ``method``'s layout, that it reduces.

    >>> reduce_dims("batch", 4), reduce_dims("layer", 4), reduce_dims("instance", 4)
    ((0, 2, 3), (1, 2, 3), (2, 3))
    >>> reduce_dims("group", 4)  # of the (N, G, C // G, H * W) group view
    (2, 3)
    """
    if method not in REDUCTION_AXES:
        raise ValueError(f"method must be one of {sorted(REDUCTION_AXES)}, got {method!r}")
    *fixed, _ = _LAYOUTS.get(method, ("N", "C", "spatial"))
    named = {axis: (i,) for i, axis in enumerate(fixed)}
    named["spatial"] = tuple(range(len(fixed), ndim))
    return tuple(sorted(d for axis in REDUCTION_AXES[method] for d in named[axis]))


def sum_over(t: Tensor, dims: Sequence[int]) -> Tensor:
    """``t`` summed over ``dims``, kept as size-1 dimensions; ``t`` itself when ``dims`` is empty
    (where ``torch.sum(dim=())`` would sum over everything).

    >>> sum_over(torch.ones(2, 3), (1,)).shape, sum_over(torch.ones(2, 3), ()).shape
    (torch.Size([2, 1]), torch.Size([2, 3]))
    """
    dims = tuple(dims)
    return t.sum(dim=dims, keepdim=True) if dims else t


# ---------------------------------------------------------------------------------------------
# The statistics and the formula


def moments(x: Tensor, dims: Sequence[int], center: bool = True) -> tuple[Tensor, Tensor]:
    r"""Mean and biased variance of ``x`` over ``dims`` (kept as size-1 dimensions).

    Two passes: first the mean, then the squared deviations from it. This is exact up to
    rounding whatever the offset of the data, unlike the one-pass formula ``E[x**2] - E[x]**2``,
    which cancels catastrophically when the mean is large against the spread (see the numerics
    chapter of the book). The second pass also takes the mean :math:`c` of the deviations, which
    would be 0 but for the first pass's rounding: it corrects the mean, and
    :math:`\sigma^2 = \overline{(x - \mu_0)^2} - c^2` is the variance of the corrected
    deviations (the corrected two-pass algorithm of Chan, Golub & LeVeque, 1983; at large offsets
    it is more accurate than the plain two passes, as the numerics chapter measures). Both sums of
    the second pass read the same deviations, so a compiler makes them one loop.

    With ``center=False`` (RMSNorm) the mean is taken to be 0: the "variance" is then the mean
    square :math:`\overline{x^2}` (of ``x * x``, also for complex ``x``, as PyTorch's ``rms_norm``).

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
    deviation = x - mean
    correction = deviation.mean(dim=dims, keepdim=True)  # the first pass's rounding, small
    var = (deviation.square().mean(dim=dims, keepdim=True) - correction.square()).clamp_min(0)
    return mean + correction, var  # the variance of deviation - correction


def formula(
    x: Tensor,
    dims: Sequence[int],
    eps: float,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    center: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""``(y, mean, var)`` by the formula, op for op: :func:`moments` over ``dims``,
    :math:`\hat x = (x - \mu)/\sqrt{\sigma^2+\epsilon}`, then :math:`y = \gamma \hat x + \beta`.

    ``weight`` (:math:`\gamma`) and ``bias`` (:math:`\beta`) are ``None`` or broadcast against
    ``x``. Autograd differentiates this through every intermediate; it is the reference that the
    speed path :func:`normlib.fused.standardize` must equal, and the forward that path hands to
    ``torch.compile`` (:class:`normlib.fused.TracedStandardize`).

    >>> x = torch.tensor([[1.0, 3.0], [5.0, 7.0]], dtype=torch.float64)
    >>> y, mean, var = formula(x, dims=(1,), eps=0.0)
    >>> [t.flatten().tolist() for t in (y, mean, var)]
    [[-1.0, 1.0, -1.0, 1.0], [2.0, 6.0], [1.0, 1.0]]
    """
    mean, var = moments(x, dims, center)
    y = (x - mean) * torch.rsqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y, mean, var


#: Input dtypes whose statistics and arithmetic run in float32, as in PyTorch's kernels; the
#: output is cast back to the input's dtype.
LOW_PRECISION = (torch.float16, torch.bfloat16)


def normalize(
    x: Tensor,
    dims: Sequence[int],
    eps: float,
    mean: Tensor | None = None,
    var: Tensor | None = None,
) -> Tensor:
    r""":math:`\hat x = (x - \mu) / \sqrt{\sigma^2 + \epsilon}` with statistics over ``dims``.

    When ``mean`` and ``var`` are given (running statistics in evaluation mode) they are used
    as they are, broadcast against ``x``; otherwise they are the :func:`moments` of ``x``.
    float16 and bfloat16 are computed in float32.

    >>> x = torch.tensor([[1.0, 3.0], [5.0, 7.0]], dtype=torch.float64)
    >>> normalize(x, dims=(1,), eps=1e-5)
    tensor([[-1.0000,  1.0000],
            [-1.0000,  1.0000]], dtype=torch.float64)
    """
    if x.dtype in LOW_PRECISION:
        return normalize(x.float(), dims, eps, *(None if t is None else t.float() for t in (mean, var))).to(x.dtype)
    if mean is None or var is None:
        mean, var = moments(x, dims)
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

    >>> affine(torch.ones(1, 2, 1), torch.tensor([2.0, 3.0]), torch.tensor([0.5, 0.0])).flatten()
    tensor([2.5000, 3.0000])
    """
    weight, bias = (per_channel(t, x_hat.dim(), channel_dim) for t in (weight, bias))
    y = x_hat
    if weight is not None:
        y = x_hat * weight
    if bias is not None:
        y = y + bias if y is x_hat else y.add_(bias)  # in place on our own buffer
    return y


def update_running(running: Tensor | None, batch_stat: Tensor, momentum: float) -> None:
    """PyTorch's running average, in place: ``running = (1 - momentum) * running + momentum * batch_stat``.

    ``running`` may be ``None`` (nothing to update); the batch statistic is detached and cast
    to the buffer's dtype.

    >>> running = torch.zeros(2)
    >>> update_running(running, torch.tensor([1.0, 2.0]), momentum=0.1)
    >>> running
    tensor([0.1000, 0.2000])
    """
    if running is not None:
        with torch.no_grad():
            running.mul_(1 - momentum).add_(batch_stat.detach().to(running.dtype), alpha=momentum)


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
    """``None`` or a 1-dimensional tensor of ``channels`` values."""
    if t is not None and (t.dim() != 1 or t.numel() != channels):
        raise ValueError(
            f"{name} must have one value per channel, shape ({channels},), got {tuple(t.shape)}"
        )


def check_normalized_shape(input: Tensor, normalized_shape: int | Sequence[int], *params: Tensor | None) -> int:
    """The number of trailing dimensions that ``normalized_shape`` names (layer norm, RMSNorm),
    after checking that they match ``input``'s and that each given parameter has that shape."""
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(normalized_shape)
    if k == 0 or input.dim() < k or tuple(input.shape[input.dim() - k:]) != normalized_shape:
        raise ValueError(
            f"normalized_shape {normalized_shape} must match the trailing dimensions of input, "
            f"got input shape {tuple(input.shape)}"
        )
    for t, name in zip(params, ("weight", "bias")):
        if t is not None and tuple(t.shape) != normalized_shape:
            raise ValueError(f"{name} must have shape {normalized_shape}, got {tuple(t.shape)}")
    return k
