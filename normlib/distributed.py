r"""Synchronized batch normalization on ``torch.distributed``, and a launcher to try it on one machine.

When a batch is split across :math:`P` processes, plain batch norm normalizes each process's
slice with that slice's statistics. :class:`SyncBatchNorm` takes them over the *global* batch:
every process computes, per channel, the count :math:`n_p`, the mean :math:`\mu_p` and the sum
of squared deviations :math:`M_p = n_p \sigma_p^2` of its slice (two passes, as
:func:`normlib.core.moments`), the processes exchange these :math:`2C + 1` numbers, and each
combines them exactly (Chan, Golub & LeVeque's pairwise rule):

.. math::

    n = \sum_p n_p, \qquad
    \mu = \frac{1}{n} \sum_p n_p \mu_p, \qquad
    \sigma^2 = \frac{1}{n} \sum_p \big( M_p + n_p (\mu_p - \mu)^2 \big).

The exchange is an all-reduce through an autograd function (:func:`all_reduce_sum`), so the
backward pass runs the same all-reduce on the gradients and every process gets the gradient of
the global batch: one all-reduce forward and one backward per layer and step.

Runs on the ``gloo`` backend, so on CPU (PyTorch's ``torch.nn.SyncBatchNorm`` supports only
GPUs). :func:`launch` starts ``P`` local processes joined on ``127.0.0.1`` with a timeout, for
the tests and the book.
"""
from __future__ import annotations

import contextlib
import datetime
import multiprocessing
import os
import queue as queue_module
import socket
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from normlib import functional as NF
from normlib.core import affine, check_eps, moments, normalize, per_channel, reduce_dims
from normlib.nn import BatchNorm1d, BatchNorm2d, BatchNorm3d, _BatchNorm

__all__ = ["SyncBatchNorm", "all_reduce_sum", "launch", "compare_with_single_process"]


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; its gradient is the sum over processes of the gradients."""

    @staticmethod
    def forward(ctx, tensor: Tensor, group) -> Tensor:
        ctx.group = group
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, op=dist.ReduceOp.SUM, group=group)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        return _AllReduceSum.apply(grad, ctx.group), None


def all_reduce_sum(tensor: Tensor, group=None) -> Tensor:
    """``torch.distributed.all_reduce`` (sum) that autograd can differentiate through.

    The same as ``torch.distributed.nn.functional.all_reduce``, which PyTorch 2.13 deprecates.
    """
    return _AllReduceSum.apply(tensor, group)


@contextlib.contextmanager
def _explained_failure(what: str, world: int):
    """Turn a failed collective (gloo's 'Connection closed by peer', 'Timed out') into a clear error."""
    try:
        yield
    except RuntimeError as error:
        raise RuntimeError(
            f"SyncBatchNorm: exchanging {what} with the other {world - 1} process(es) failed; one of "
            f"them has probably died or did not reach this layer within the process group's timeout. "
            f"({error})"
        ) from error


class SyncBatchNorm(_BatchNorm):
    r"""Batch normalization with statistics over the batch of every process in the group.

    .. math:: y = \frac{x - \mathrm{E}[x]}{\sqrt{\mathrm{Var}[x] + \epsilon}} \gamma + \beta

    with :math:`\mathrm{E}` and :math:`\mathrm{Var}` (biased; unbiased in ``running_var``) per
    channel over ``(N, *spatial)`` of the *concatenation* of all processes' inputs. In
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

    def _world_size(self) -> int:
        if not (dist.is_available() and dist.is_initialized()):
            return 1
        return dist.get_world_size(self.process_group)

    def forward(self, input: Tensor) -> Tensor:
        if not self.training or self._world_size() == 1:
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
            NF._update_running(self.running_mean, mean.flatten(), momentum)
            NF._update_running(self.running_var, var.flatten() * count / (count - 1), momentum)
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
        world, rank = self._world_size(), dist.get_rank(self.process_group)
        row = torch.cat([mean_p.new_full((1,), float(n_p)), mean_p, m2_p])  # (2C + 1,)
        one_hot = torch.zeros(world, 1, dtype=row.dtype, device=row.device)
        one_hot[rank] = 1
        with _explained_failure("batch statistics", world):
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
        with _explained_failure("channel counts", self._world_size()):
            dist.all_reduce(c, op=dist.ReduceOp.MAX, group=self.process_group)
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


# ---------------------------------------------------------------------------------------------
# Running P processes on one machine.


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank, world_size, port, timeout, worker, args, results) -> None:
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"  # loopback only
    torch.set_num_threads(1)
    try:
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://127.0.0.1:{port}",
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=timeout),
        )
        value = worker(rank, world_size, *args)
        results.put((rank, True, value))
    except BaseException as error:  # report every failure to the parent, then exit
        results.put((rank, False, f"{type(error).__name__}: {error}"))
        if not isinstance(error, Exception):
            traceback.print_exc()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def launch(worker: Callable[..., Any], world_size: int, *args: Any, timeout: float = 30.0) -> list[Any]:
    """Run ``worker(rank, world_size, *args)`` in ``world_size`` new processes; return the results by rank.

    The processes join a ``gloo`` process group on ``127.0.0.1`` (a free port) whose collectives
    time out after ``timeout`` seconds. ``worker`` must be importable (defined in a module, not
    in a notebook) and its result picklable. If any process raises, dies, or the whole run
    exceeds ``2 * timeout + 30`` seconds, every process is stopped and ``RuntimeError`` lists
    what each one reported.
    """
    # A fork server imports torch once and forks each process from that clean state: faster
    # than "spawn" (a new interpreter per process), safer than "fork" (a copy of a parent whose
    # thread pools may already run).
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch", "normlib.distributed"])
    results = context.Queue()
    port = _free_port()
    processes = [
        context.Process(target=_entry, args=(rank, world_size, port, timeout, worker, args, results), daemon=True)
        for rank in range(world_size)
    ]
    for p in processes:
        p.start()
    reports: dict[int, tuple[bool, Any]] = {}
    deadline = time.monotonic() + 2 * timeout + 30
    while len(reports) < world_size and time.monotonic() < deadline:
        try:
            rank, ok, value = results.get(timeout=0.2)
            reports[rank] = (ok, value)
        except queue_module.Empty:
            # A process that is gone without a report died; its peers will report an error
            # within `timeout`, so keep waiting for them, but not for the dead.
            for rank, p in enumerate(processes):
                if rank not in reports and not p.is_alive() and results.empty():
                    time.sleep(0.5)  # its report may still be in the pipe
                    if results.empty():
                        reports[rank] = (False, f"process exited with code {p.exitcode} without a result")
    for p in processes:
        p.join(timeout=5)
        if p.is_alive():
            p.terminate()
            p.join()
    failed = {rank: value for rank, (ok, value) in reports.items() if not ok}
    missing = [rank for rank in range(world_size) if rank not in reports]
    if failed or missing:
        lines = [f"  process {rank}: {message}" for rank, message in sorted(failed.items())]
        lines += [f"  process {rank}: no answer within {2 * timeout + 30:.0f} s" for rank in missing]
        raise RuntimeError(f"{len(failed) + len(missing)} of {world_size} processes failed:\n" + "\n".join(lines))
    return [reports[rank][1] for rank in range(world_size)]


def compare_with_single_process(
    rank: int, world_size: int, batch_sizes: list[int], shape: tuple[int, ...] = (4, 3, 3), steps: int = 3, seed: int = 0
) -> dict[str, float]:
    """A worker for :func:`launch`: SyncBatchNorm on this process's slice against BN on the whole batch.

    Every process draws the same global batches (``sum(batch_sizes)`` samples of
    ``(C, *spatial) = shape``, float64) and upstream gradients, takes its slice, and runs
    ``steps`` training steps of :class:`SyncBatchNorm` while it also runs
    :class:`normlib.nn.BatchNorm2d`-style batch norm over the full batch. Returns the largest
    absolute difference of the output, the input gradient, the parameter gradients (summed
    over processes, as data-parallel training does) and the running statistics.
    """
    torch.manual_seed(seed)
    c = shape[0]
    sync = SyncBatchNorm(c, momentum=0.3, dtype=torch.float64)
    reference = {2: BatchNorm1d, 3: BatchNorm1d, 4: BatchNorm2d, 5: BatchNorm3d}[len(shape) + 1](
        c, momentum=0.3, dtype=torch.float64
    )
    with torch.no_grad():
        for m in (sync, reference):
            m.weight.copy_(torch.linspace(0.5, 1.5, c, dtype=torch.float64))
            m.bias.copy_(torch.linspace(-1.0, 1.0, c, dtype=torch.float64))
    start = sum(batch_sizes[:rank])
    rows = slice(start, start + batch_sizes[rank])
    worst = {"output": 0.0, "input grad": 0.0, "weight grad": 0.0, "bias grad": 0.0, "running stats": 0.0}
    for step in range(steps):
        x = torch.randn(sum(batch_sizes), *shape, dtype=torch.float64) * (step + 1) + 3.0
        grad_y = torch.randn_like(x)
        x_local = x[rows].clone().requires_grad_()
        x_full = x.clone().requires_grad_()
        y_local, y_full = sync(x_local), reference(x_full)
        y_local.backward(grad_y[rows])
        y_full.backward(grad_y)
        param_grads = torch.cat([sync.weight.grad, sync.bias.grad])
        dist.all_reduce(param_grads)  # data parallel: sum the parameter gradients over processes
        for key, ours, theirs in (
            ("output", y_local, y_full[rows]),
            ("input grad", x_local.grad, x_full.grad[rows]),
            ("weight grad", param_grads[:c], reference.weight.grad),
            ("bias grad", param_grads[c:], reference.bias.grad),
            ("running stats", torch.cat([sync.running_mean, sync.running_var]),
             torch.cat([reference.running_mean, reference.running_var])),
        ):
            if ours.numel():  # an empty slice has no output to compare
                worst[key] = max(worst[key], (ours - theirs).abs().max().item())
        for m in (sync, reference):
            m.weight.grad = m.bias.grad = None
    return worst
