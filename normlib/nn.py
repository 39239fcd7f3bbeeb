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
from normlib.core import affine, check_eps, check_floating, moments, normalize, per_channel, reduce_dims, update_running
from normlib.distributed import all_reduce_sum, explained_failure, world_size

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


def _register_affine(module: nn.Module, learnable: bool, bias: bool, shape: tuple[int, ...], factory: dict) -> None:
    """``weight`` (ones) and, with ``bias``, ``bias`` (zeros) of ``shape`` as parameters when
    ``learnable``; otherwise both registered as ``None`` (so that the state_dict has PyTorch's keys)."""
    module.register_parameter("weight", nn.Parameter(torch.ones(shape, **factory)) if learnable else None)
    module.register_parameter("bias", nn.Parameter(torch.zeros(shape, **factory)) if learnable and bias else None)


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

    In symbols, equation :eq:`normlib-nn-batchnorm1d`:

    .. math:: y = \frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}} \gamma + \beta
        :label: normlib-nn-batchnorm1d

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

    In symbols, equation :eq:`normlib-nn-batchnorm2d`:

    .. math:: y = \frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}} \gamma + \beta
        :label: normlib-nn-batchnorm2d

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


class SyncBatchNorm(_BatchNorm):
    r"""Batch normalization with statistics over the batch of every process in the group.

    In symbols, equation :eq:`normlib-nn-syncbatchnorm`:

    .. math:: y = \frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}} \gamma + \beta
        :label: normlib-nn-syncbatchnorm

    with :math:`\mathrm{E}` and :math:`\mathrm{Var}` (biased; unbiased in ``running_var``) per
    channel over ``(N, *spatial)`` of the *concatenation* of all processes' inputs. Every
    process computes, per channel, the count :math:`n_p`, the mean :math:`\mu_p` and the sum of
    squared deviations :math:`M_p = n_p \sigma_p^2` of its slice (two passes, as
    :func:`normlib.core.moments`); the processes exchange these :math:`2C + 1` numbers in one
    all-reduce (:func:`normlib.distributed.all_reduce_sum`, whose backward all-reduces the
    gradients), and each combines them exactly (Chan, Golub & LeVeque's pairwise rule), equation :eq:`normlib-nn-syncbatchnorm-combined`:

    .. math::
        :label: normlib-nn-syncbatchnorm-combined

        n = \sum_p n_p, \qquad
        \mu = \frac{1}{n} \sum_p n_p \mu_p, \qquad
        \sigma^2 = \frac{1}{n} \sum_p \big( M_p + n_p (\mu_p - \mu)^2 \big).

    Runs on the ``gloo`` backend, so on CPU (PyTorch's ``torch.nn.SyncBatchNorm`` supports only
    GPUs); the book's ``normlib.book.distributed.launch`` starts local processes to try it. In
    evaluation mode, or when ``torch.distributed`` is not initialized or the group has one
    process, it is plain :class:`normlib.nn.BatchNorm2d` (any 2-D to 5-D input).

    Each process may have a different batch size. The first training step checks that every
    process has the same number of channels and raises ``ValueError`` on all of them if not.
    A collective that fails (another process died, or did not arrive within the process
    group's ``timeout``) raises ``RuntimeError`` saying so.

    Args:
        num_features, eps, momentum, affine, track_running_stats, bias: as :class:`normlib.nn.BatchNorm2d`.
        process_group: the group to synchronize over; ``None`` for the default (all processes).

    >>> SyncBatchNorm(3)(torch.randn(4, 3, 2, 2)).shape  # not initialized: plain batch norm
    torch.Size([4, 3, 2, 2])
    """

    _accepted_dims = (2, 3, 4, 5)

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        process_group=None,
        device=None,
        dtype=None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias)
        self.process_group = process_group
        self._channels_checked = False

    def forward(self, input: Tensor) -> Tensor:
        if not self.training or world_size(self.process_group) == 1:
            return super().forward(input)
        self._check_input(input)
        check_eps(self.eps)
        if not self._channels_checked:
            self._check_same_channels_everywhere()
        momentum = self._count_batch_and_get_momentum()
        mean, var, count = self._global_moments(input)
        if count <= 1:
            raise ValueError(f"SyncBatchNorm in training needs more than 1 value per channel over all processes, got {count}")
        if self.track_running_stats:
            update_running(self.running_mean, mean.flatten(), momentum)
            update_running(self.running_var, var.flatten() * count / (count - 1), momentum)
        x_hat = normalize(input, reduce_dims("batch", input.dim()), self.eps, mean, var)
        return affine(x_hat, self.weight, self.bias)

    def _global_moments(self, input: Tensor) -> tuple[Tensor, Tensor, int]:
        """Global per-channel mean and biased variance (shaped like ``input``'s), and the count."""
        dims = reduce_dims("batch", input.dim())
        n_p = input.numel() // input.shape[1]
        if n_p > 0:
            mean_p, var_p = moments(input, dims)  # (1, C, 1, ...) each, two-pass
            mean_p, m2_p = mean_p.flatten(), var_p.flatten() * n_p
        else:  # an empty slice contributes nothing (and its moments would be NaN)
            mean_p = m2_p = input.new_zeros(self.num_features) + 0 * input.sum()
        # Every process writes its (n_p, mu_p, M_p) into its own row; summing the rows over
        # processes gathers them all, and the sum's backward sends each row's gradient home.
        world, rank = world_size(self.process_group), torch.distributed.get_rank(self.process_group)
        row = torch.cat([mean_p.new_full((1,), float(n_p)), mean_p, m2_p])  # (2C + 1,)
        one_hot = torch.zeros(world, 1, dtype=row.dtype, device=row.device)
        one_hot[rank] = 1
        with explained_failure("batch statistics", world):
            table = all_reduce_sum(one_hot * row, self.process_group)  # (P, 2C + 1)
        c = self.num_features
        counts, means, m2s = table[:, :1], table[:, 1 : c + 1], table[:, c + 1 :]  # (P, 1), (P, C), (P, C)
        count = int(round(counts.sum().item()))
        mean = (counts * means).sum(dim=0) / count
        var = (m2s + counts * (means - mean) ** 2).sum(dim=0) / count
        return per_channel(mean, input.dim()), per_channel(var, input.dim()), count

    def _check_same_channels_everywhere(self) -> None:
        """One small all-reduce (max of C and of -C), before the first exchange of statistics."""
        c = torch.tensor([self.num_features, -self.num_features], dtype=torch.float64)
        with explained_failure("channel counts", world_size(self.process_group)):
            torch.distributed.all_reduce(c, op=torch.distributed.ReduceOp.MAX, group=self.process_group)
        largest, smallest = int(c[0]), -int(c[1])
        if largest != smallest:
            raise ValueError(
                f"SyncBatchNorm needs the same number of channels on every process: this one has "
                f"{self.num_features}, the group has between {smallest} and {largest}"
            )
        self._channels_checked = True

    @classmethod
    def convert_sync_batchnorm(cls, module: torch.nn.Module, process_group=None) -> torch.nn.Module:
        """Replace every batch-norm layer of ``module`` (normlib's or torch's) by a SyncBatchNorm
        with the same parameters and running statistics, like ``torch.nn.SyncBatchNorm``'s."""
        if isinstance(module, (_BatchNorm, torch.nn.modules.batchnorm._BatchNorm)) and not isinstance(module, cls):
            new = cls(module.num_features, module.eps, module.momentum, module.affine,
                      module.track_running_stats, process_group, bias=module.bias is not None)
            new.load_state_dict(module.state_dict())
            new.train(module.training)
            return new
        for name, child in module.named_children():
            module.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return module


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

    In symbols, equation :eq:`normlib-nn-instancenorm1d`:

    .. math:: y_{nc} = \frac{x_{nc} - \mathrm{E}[x_{nc}]}{\sqrt{\mathrm{Var}[x_{nc}] + \epsilon}} \gamma_c + \beta_c
        :label: normlib-nn-instancenorm1d

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

    In symbols, equation :eq:`normlib-nn-layernorm`:

    .. math:: y = \frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}} \odot \gamma + \beta
        :label: normlib-nn-layernorm

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

    In symbols, equation :eq:`normlib-nn-rmsnorm`:

    .. math:: y = \frac{x}{\sqrt{\overline{x^2} + \epsilon}} \odot \gamma
        :label: normlib-nn-rmsnorm

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

    In symbols, equation :eq:`normlib-nn-groupnorm`:

    .. math:: y = \frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}} \gamma_c + \beta_c
        :label: normlib-nn-groupnorm

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

    In symbols, equation :eq:`normlib-nn-localresponsenorm`:

    .. math:: b_c = a_c \left(k + \frac{\alpha}{n}\sum_{c'} a_{c'}^2\right)^{-\beta}
        :label: normlib-nn-localresponsenorm

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


# =============================================================================================
# Batch renormalization and weight standardization, beyond torch.nn's layers: the modules keep
# state and call normlib.functional.batch_renorm / weight_standardization.
# =============================================================================================

__all__ += ["BatchRenorm1d", "BatchRenorm2d", "WeightStandardization", "weight_standardization", "WSConv2d"]


class _BatchRenorm(_BatchNorm):
    r"""Batch renormalization (Ioffe, 2017); see :func:`normlib.functional.batch_renorm`.

    The parameters and buffers are batch norm's, with batch norm's names (``weight``, ``bias``,
    ``running_mean``, ``running_var``, ``num_batches_tracked``), so a state_dict of
    ``torch.nn.BatchNorm2d`` loads into :class:`BatchRenorm2d` and the other way round. In
    evaluation mode the layer is batch norm in evaluation mode.

    The warm-up (the paper trains with plain BN first, then relaxes the bounds on ``r`` and ``d``
    gradually) is the argument ``warmup = (start, end)``, counted in training batches
    (``num_batches_tracked``): before ``start`` the bounds are ``rmax = 1``, ``dmax = 0`` (batch
    norm); between ``start`` and ``end`` they grow linearly to ``rmax`` and ``dmax``; from
    ``end`` on they are ``rmax`` and ``dmax``. The default ``(0, 0)`` uses the full bounds from
    the first batch. (The paper trains its first steps with BN alone, then relaxes the bounds
    gradually to ``rmax = 3``, ``dmax = 5``.)
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        rmax: float = 3.0,
        dmax: float = 5.0,
        warmup: tuple[int, int] = (0, 0),
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, True, device, dtype)
        check_eps(eps)  # renormalization always uses batch statistics in training
        NF.check_renorm_bounds(rmax, dmax)
        start, end = warmup
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end):
            raise ValueError(f"warmup must be (start, end) with integers 0 <= start <= end, got {warmup!r}")
        self.rmax, self.dmax, self.warmup = float(rmax), float(dmax), (start, end)

    def bounds(self, step: int) -> tuple[float, float]:
        """``(rmax, dmax)`` for training batch number ``step`` (0 for the first), by the warm-up."""
        start, end = self.warmup
        if step < start:
            ramp = 0.0
        elif step >= end:
            ramp = 1.0
        else:
            ramp = (step - start) / (end - start)
        return 1.0 + (self.rmax - 1.0) * ramp, self.dmax * ramp

    def forward(self, input: Tensor) -> Tensor:
        self._check_input(input)
        step = int(self.num_batches_tracked)
        momentum = self._count_batch_and_get_momentum()
        rmax, dmax = self.bounds(step)
        return NF.batch_renorm(
            input, self.running_mean, self.running_var, self.weight, self.bias,
            self.training, momentum, self.eps, rmax, dmax,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"rmax={self.rmax}, dmax={self.dmax}, warmup={self.warmup}"
        )


class BatchRenorm1d(_BatchRenorm):
    r"""Batch renormalization of a ``(N, C)`` or ``(N, C, L)`` input (Ioffe, 2017), equation
    :eq:`normlib-nn-batchrenorm1d`:

    .. math:: y = \gamma \Big(\frac{x - \mu_B}{\sigma_B} r + d\Big) + \beta
        :label: normlib-nn-batchrenorm1d

    with ``r`` and ``d`` the clipped, stop-gradient corrections of
    :func:`normlib.functional.batch_renorm`; buffers, evaluation mode and warm-up as
    :class:`BatchRenorm2d`.

    >>> brn = BatchRenorm1d(4, rmax=3.0, dmax=5.0, warmup=(100, 500))
    >>> brn.bounds(0), brn.bounds(300), brn.bounds(1000)
    ((1.0, 0.0), (2.0, 2.5), (3.0, 5.0))
    """

    _accepted_dims = (2, 3)


class BatchRenorm2d(_BatchRenorm):
    r"""Batch renormalization of a ``(N, C, H, W)`` input (Ioffe, 2017), equation
    :eq:`normlib-nn-batchrenorm2d`:

    .. math:: y = \gamma \Big(\frac{x - \mu_B}{\sigma_B} r + d\Big) + \beta, \quad
        r = \operatorname{clip}_{[1/r_{\max}, r_{\max}]}\frac{\sigma_B}{\sigma}, \quad
        d = \operatorname{clip}_{[-d_{\max}, d_{\max}]}\frac{\mu_B - \mu}{\sigma}
        :label: normlib-nn-batchrenorm2d

    ``r`` and ``d`` are constants for the backward pass; :math:`\mu`, :math:`\sigma^2` are the
    running statistics. Statistics per channel over ``(N, H, W)`` as :class:`BatchNorm2d`.

    Args:
        num_features: ``C``.
        eps: added to the variances. Default ``1e-5``.
        momentum: running-average weight of the new batch (``None``: cumulative). Default ``0.1``.
        affine: learn ``weight`` and ``bias``. Default ``True``.
        rmax: bound of ``r``, at least 1. Default ``3.0``.
        dmax: bound of ``|d|``, at least 0. Default ``5.0``.
        warmup: ``(start, end)`` in training batches: plain BN before ``start``, bounds relaxed
            linearly to ``(rmax, dmax)`` until ``end``. Default ``(0, 0)`` (no warm-up).

    Shape: ``(N, C, H, W)``, output the same.

    >>> brn = BatchRenorm2d(3)
    >>> brn.load_state_dict(torch.nn.BatchNorm2d(3).state_dict())
    <All keys matched successfully>
    >>> brn(torch.randn(8, 3, 4, 4)).shape
    torch.Size([8, 3, 4, 4])
    """

    _accepted_dims = (4,)


class WeightStandardization(nn.Module):
    """The weight-standardization parametrization (Qiao et al., 2019): ``weight`` is computed as
    :func:`normlib.functional.weight_standardization` of the stored ``original`` weight.

    Used through :func:`weight_standardization`, or directly with
    ``torch.nn.utils.parametrize.register_parametrization(conv, "weight", WeightStandardization())``.
    """

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        check_eps(eps)
        self.eps = eps

    def forward(self, weight: Tensor) -> Tensor:
        return NF.weight_standardization(weight, self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"


def weight_standardization(module: nn.Module, name: str = "weight", eps: float = 1e-5) -> nn.Module:
    """Reparametrize ``module.<name>`` as its standardized form (each output filter mean 0, variance 1).

    PyTorch's idiom (``torch.nn.utils.parametrize``): the learnable tensor is
    ``parametrizations.weight.original``; ``module.weight`` is recomputed from it on every access.

    >>> conv = weight_standardization(torch.nn.Conv2d(3, 8, 3))
    >>> sorted(conv.state_dict())
    ['bias', 'parametrizations.weight.original']
    >>> bool(conv.weight.mean(dim=(1, 2, 3)).abs().max() < 1e-6)
    True
    """
    parametrize.register_parametrization(module, name, WeightStandardization(eps))
    return module


class WSConv2d(nn.Conv2d):
    r"""A ``Conv2d`` whose filters are standardized on every forward pass (Qiao et al., 2019),
    equation :eq:`normlib-nn-wsconv2d`:

    .. math:: y = \hat W * x + b, \qquad \hat W_i = \frac{W_i - \mu_i}{\sqrt{\sigma_i^2 + \epsilon}}
        :label: normlib-nn-wsconv2d

    with :math:`\mu_i`, :math:`\sigma_i^2` the mean and biased variance of filter :math:`i`'s
    ``in_channels / groups · kH · kW`` weights. Arguments are ``torch.nn.Conv2d``'s plus ``eps``;
    the state_dict keys are ``Conv2d``'s (``weight`` holds the raw, unstandardized weights), so
    a ``Conv2d``'s state_dict loads. The same layer as ``weight_standardization(nn.Conv2d(...))``.

    >>> conv = WSConv2d(3, 8, 3, padding=1)
    >>> conv(torch.randn(2, 3, 5, 5)).shape, sorted(conv.state_dict())
    (torch.Size([2, 8, 5, 5]), ['bias', 'weight'])
    """

    def __init__(self, *args, eps: float = 1e-5, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        check_eps(eps)
        self.eps = eps

    def forward(self, input: Tensor) -> Tensor:
        return self._conv_forward(input, NF.weight_standardization(self.weight, self.eps), self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", eps={self.eps}"
