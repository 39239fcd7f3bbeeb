"""Modules with ``torch.nn``'s names, constructor arguments, parameters, buffers and state_dict keys.

The mathematics lives in :mod:`normlib.functional`; a module here only keeps state (the
learnable ``weight`` and ``bias``, the ``running_mean``/``running_var``/``num_batches_tracked``
buffers) and decides, from ``self.training``, which statistics to use. A state_dict saved from
``torch.nn.BatchNorm2d`` loads into ``normlib.nn.BatchNorm2d`` and the other way round.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from normlib import functional as NF
from normlib.core import check_floating

__all__ = [
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "LayerNorm",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "InstanceNorm3d",
    "GroupNorm",
    "RMSNorm",
    "LocalResponseNorm",
    "WeightNorm",
    "weight_norm",
    "SyncBatchNorm",
]


class _NormBase(nn.Module):
    """Parameters and running-statistics buffers shared by batch and instance norm."""

    _accepted_dims: tuple[int, ...] = ()

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device=None,
        dtype=None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be a positive integer, got {num_features!r}")
        factory = {"device": device, "dtype": dtype}
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        _register_affine(self, affine, bias, (num_features,), factory)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def _check_input(self, input: Tensor, channel_dim: int = 1) -> None:
        """A floating-point input with an accepted number of dimensions and ``num_features`` channels."""
        check_floating(input)
        if input.dim() not in self._accepted_dims:
            raise ValueError(
                f"{type(self).__name__} expects a {' or '.join(f'{d}-D' for d in self._accepted_dims)} input, "
                f"got {input.dim()}-D shape {tuple(input.shape)}"
            )
        if input.shape[channel_dim] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}({self.num_features}) expects {self.num_features} channels "
                f"(dimension {channel_dim}), got input of shape {tuple(input.shape)}"
            )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}"
        )


def _register_affine(module: nn.Module, affine: bool, bias: bool, shape: tuple[int, ...], factory: dict) -> None:
    """``weight`` (ones) and, with ``bias``, ``bias`` (zeros) of ``shape`` as parameters when
    ``affine``; otherwise both registered as ``None`` (so that the state_dict has PyTorch's keys)."""
    module.register_parameter("weight", nn.Parameter(torch.ones(shape, **factory)) if affine else None)
    module.register_parameter("bias", nn.Parameter(torch.zeros(shape, **factory)) if affine and bias else None)


class _BatchNorm(_NormBase):
    r"""Batch normalization over ``(N, *spatial)`` for each channel; see :func:`normlib.functional.batch_norm`.

    In training mode the batch statistics normalize and the running statistics are updated
    (``momentum=None``: cumulative average over all batches seen). In evaluation mode the
    running statistics normalize, so a single sample can be evaluated and its output does not
    depend on the rest of the batch. With ``track_running_stats=False`` batch statistics are
    used in both modes.
    """

    def _count_batch_and_get_momentum(self) -> float:
        """PyTorch's rule: in training with running statistics, add 1 to ``num_batches_tracked``;
        the momentum is then the fixed one or, with ``momentum=None``, 1 / (batches counted), a
        cumulative average."""
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                return 1.0 / float(self.num_batches_tracked)
        return 0.0 if self.momentum is None else self.momentum

    def forward(self, input: Tensor) -> Tensor:
        self._check_input(input)
        momentum = self._count_batch_and_get_momentum()
        use_batch_stats = self.training or self.running_mean is None
        return NF.batch_norm(
            input,
            self.running_mean if not self.training or self.track_running_stats else None,
            self.running_var if not self.training or self.track_running_stats else None,
            self.weight,
            self.bias,
            use_batch_stats,
            momentum,
            self.eps,
        )


class BatchNorm1d(_BatchNorm):
    r"""Batch normalization of a ``(N, C)`` or ``(N, C, L)`` input (Ioffe & Szegedy, 2015).

    .. math:: y = \frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}} \gamma + \beta

    Statistics per channel over ``N`` (and ``L``); biased variance to normalize, unbiased in
    ``running_var``.

    Args:
        num_features: ``C``.
        eps: added to the variance. Default ``1e-5``.
        momentum: running-average weight of the new batch; ``None`` for a cumulative average.
            Default ``0.1``.
        affine: learn ``weight`` (:math:`\gamma`) and ``bias`` (:math:`\beta`). Default ``True``.
        track_running_stats: keep running statistics for evaluation. Default ``True``.
        bias: (keyword only) learn ``bias`` too, when ``affine``. Default ``True``.

    Shape: ``(N, C)`` or ``(N, C, L)``, output the same.

    >>> bn = BatchNorm1d(4)
    >>> y = bn(torch.randn(32, 4))
    >>> sorted(bn.state_dict())
    ['bias', 'num_batches_tracked', 'running_mean', 'running_var', 'weight']
    """

    _accepted_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    r"""Batch normalization of a ``(N, C, H, W)`` input (Ioffe & Szegedy, 2015).

    .. math:: y = \frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}} \gamma + \beta

    Statistics per channel over ``(N, H, W)``: ``N·H·W`` values per channel, one
    :math:`(\gamma, \beta)` pair per channel (``2C`` parameters). Arguments as
    :class:`BatchNorm1d`.

    Shape: ``(N, C, H, W)``, output the same.

    >>> bn = BatchNorm2d(3)
    >>> bn(torch.randn(8, 3, 4, 4)).shape
    torch.Size([8, 3, 4, 4])
    """

    _accepted_dims = (4,)


class BatchNorm3d(_BatchNorm):
    """Batch normalization of a ``(N, C, D, H, W)`` input; arguments as :class:`BatchNorm1d`."""

    _accepted_dims = (5,)


class _InstanceNorm(_NormBase):
    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
        device=None,
        dtype=None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias)

    def forward(self, input: Tensor) -> Tensor:
        unbatched = input.dim() == min(self._accepted_dims)
        channel_dim = 0 if unbatched else 1
        if self.affine or input.dim() not in self._accepted_dims:
            self._check_input(input, channel_dim)
        elif input.shape[channel_dim] != self.num_features:  # PyTorch only warns: num_features is unused
            warnings.warn(
                f"{type(self).__name__}({self.num_features}) got {input.shape[channel_dim]} channels; "
                "num_features is not used because affine=False",
                stacklevel=2,
            )
        if unbatched:
            input = input.unsqueeze(0)
        # PyTorch's instance norm never counts batches, and with momentum=None keeps its running
        # statistics as they are (a momentum of 0), where batch norm would average cumulatively.
        momentum = 0.0 if self.momentum is None else self.momentum
        out = NF.instance_norm(
            input,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            self.training or not self.track_running_stats,
            momentum,
            self.eps,
        )
        return out.squeeze(0) if unbatched else out


class InstanceNorm1d(_InstanceNorm):
    r"""Instance normalization of a ``(N, C, L)`` or unbatched ``(C, L)`` input (Ulyanov et al., 2016).

    .. math:: y_{nc} = \frac{x_{nc} - \mathrm{E}[x_{nc}]}{\sqrt{\mathrm{Var}[x_{nc}] + \epsilon}} \gamma_c + \beta_c

    Statistics per (sample, channel) over ``L``, biased variance. PyTorch's defaults:
    ``affine=False``, ``track_running_stats=False``.

    >>> InstanceNorm1d(3)(torch.randn(2, 3, 10)).shape
    torch.Size([2, 3, 10])
    """

    _accepted_dims = (2, 3)


class InstanceNorm2d(_InstanceNorm):
    r"""Instance normalization of a ``(N, C, H, W)`` or unbatched ``(C, H, W)`` input (Ulyanov et al., 2016).

    Statistics per (sample, channel) over ``(H, W)``, biased variance. Arguments as
    :class:`InstanceNorm1d`.

    >>> InstanceNorm2d(3, affine=True)(torch.randn(2, 3, 4, 4)).shape
    torch.Size([2, 3, 4, 4])
    """

    _accepted_dims = (3, 4)


class InstanceNorm3d(_InstanceNorm):
    r"""Instance normalization of a ``(N, C, D, H, W)`` or unbatched ``(C, D, H, W)`` input (Ulyanov et al., 2016).

    Statistics per (sample, channel) over ``(D, H, W)``, biased variance. Arguments as
    :class:`InstanceNorm1d`.

    >>> InstanceNorm3d(2)(torch.randn(2, 2, 3, 4, 4)).shape
    torch.Size([2, 2, 3, 4, 4])
    """

    _accepted_dims = (4, 5)


class LayerNorm(nn.Module):
    r"""Layer normalization over the trailing ``normalized_shape`` dimensions (Ba, Kiros & Hinton, 2016).

    .. math:: y = \frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}} \odot \gamma + \beta

    Args:
        normalized_shape: the trailing shape to normalize over, e.g. ``(C, H, W)`` or ``d_model``.
        eps: added to the variance. Default ``1e-5``.
        elementwise_affine: learn ``weight`` and ``bias`` of shape ``normalized_shape``. Default ``True``.
        bias: learn ``bias`` too (only with ``elementwise_affine``). Default ``True``.

    >>> ln = LayerNorm(8)
    >>> ln(torch.randn(4, 8)).shape, sorted(ln.state_dict())
    (torch.Size([4, 8]), ['bias', 'weight'])
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        _register_affine(self, elementwise_affine, bias, self.normalized_shape, {"device": device, "dtype": dtype})

    def forward(self, input: Tensor) -> Tensor:
        return NF.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
            f"bias={self.bias is not None}"
        )


class RMSNorm(nn.Module):
    r"""Root mean square layer normalization over the trailing ``normalized_shape`` dimensions
    (Zhang & Sennrich, 2019).

    .. math:: y = \frac{x}{\sqrt{\overline{x^2} + \epsilon}} \odot \gamma

    :class:`LayerNorm` without the mean: see :func:`normlib.functional.rms_norm`.

    Args:
        normalized_shape: the trailing shape to normalize over, e.g. ``d_model``.
        eps: added to the mean square; ``None`` for the machine epsilon of the computation
            (``torch.finfo(torch.float32).eps`` for float16/bfloat16/float32). Default ``None``.
        elementwise_affine: learn ``weight`` (ones) of shape ``normalized_shape``. Default ``True``.

    >>> rms = RMSNorm(8)
    >>> rms(torch.randn(4, 8)).shape, sorted(rms.state_dict())
    (torch.Size([4, 8]), ['weight'])
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float | None = None,
        elementwise_affine: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        _register_affine(self, elementwise_affine, False, self.normalized_shape, {"device": device, "dtype": dtype})

    def reset_parameters(self) -> None:
        if self.weight is not None:
            torch.nn.init.ones_(self.weight)

    def forward(self, input: Tensor) -> Tensor:
        return NF.rms_norm(input, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GroupNorm(nn.Module):
    r"""Group normalization (Wu & He, 2018).

    .. math:: y = \frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}} \gamma_c + \beta_c

    Statistics per sample and group over the group's ``C / G`` channels and every spatial
    position (biased variance); per-channel affine, ``2C`` parameters.

    Args:
        num_groups: ``G``, must divide ``num_channels``.
        num_channels: ``C``.
        eps: added to the variance. Default ``1e-5``.
        affine: learn per-channel ``weight`` and ``bias``. Default ``True``.
        bias: (keyword only) learn ``bias`` too, when ``affine``. Default ``True``.

    >>> GroupNorm(2, 6)(torch.randn(3, 6, 4, 4)).shape
    torch.Size([3, 6, 4, 4])
    """

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        device=None,
        dtype=None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(num_channels, int) or num_channels < 1:
            raise ValueError(f"num_channels must be a positive integer, got {num_channels!r}")
        if not isinstance(num_groups, int) or num_groups < 1 or num_channels % num_groups:
            raise ValueError(f"num_groups must be a positive divisor of num_channels={num_channels}, got {num_groups!r}")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        _register_affine(self, affine, bias, (num_channels,), {"device": device, "dtype": dtype})

    def forward(self, input: Tensor) -> Tensor:
        if input.dim() >= 2 and input.shape[1] != self.num_channels:
            raise ValueError(
                f"GroupNorm expects {self.num_channels} channels (dimension 1), got input of shape {tuple(input.shape)}"
            )
        return NF.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, bias={self.bias is not None}"


class LocalResponseNorm(nn.Module):
    r"""Local response normalization across neighbouring channels (Krizhevsky et al., 2012).

    .. math:: b_c = a_c \left(k + \frac{\alpha}{n}\sum_{c'} a_{c'}^2\right)^{-\beta}

    over the ``n = size`` channels around ``c``. No learnable parameters. See
    :func:`normlib.functional.local_response_norm` for the window and the :math:`\alpha/n`
    convention.

    >>> LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)(torch.randn(1, 8, 3, 3)).shape
    torch.Size([1, 8, 3, 3])
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> None:
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, input: Tensor) -> Tensor:
        return NF.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class WeightNorm(nn.Module):
    """The weight-norm parametrization ``w = g v / ||v||``: ``original0`` is ``g``, ``original1`` is ``v``.

    Used through :func:`weight_norm`, like ``torch.nn.utils.parametrizations.weight_norm``.
    """

    def __init__(self, dim: int | None = 0) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, weight_g: Tensor, weight_v: Tensor) -> Tensor:
        return NF.weight_norm(weight_v, weight_g, self.dim)

    def right_inverse(self, weight: Tensor) -> tuple[Tensor, Tensor]:
        if self.dim is None:
            return weight.norm(), weight
        others = [d for d in range(weight.dim()) if d != self.dim % weight.dim()]
        return torch.linalg.vector_norm(weight, dim=others, keepdim=True), weight


def weight_norm(module: nn.Module, name: str = "weight", dim: int | None = 0) -> nn.Module:
    """Reparametrize ``module.<name>`` as ``g v / ||v||``, like ``torch.nn.utils.parametrizations.weight_norm``.

    The state_dict keys are PyTorch's: ``parametrizations.weight.original0`` (``g``) and
    ``parametrizations.weight.original1`` (``v``).

    >>> layer = weight_norm(torch.nn.Linear(3, 2))
    >>> sorted(layer.state_dict())
    ['bias', 'parametrizations.weight.original0', 'parametrizations.weight.original1']
    >>> torch.allclose(layer.weight.norm(dim=1), layer.parametrizations.weight.original0.flatten())
    True
    """
    parametrize.register_parametrization(module, name, WeightNorm(dim), unsafe=True)
    return module


# Batch norm over the batches of all processes (torch.distributed); it lives in normlib.distributed
# and builds on _BatchNorm above, so it is imported last.
from normlib.distributed import SyncBatchNorm  # noqa: E402
