r"""The collectives that :class:`normlib.nn.SyncBatchNorm` uses, on ``torch.distributed``.

:func:`all_reduce_sum` is an all-reduce that autograd differentiates through: its backward
runs the same all-reduce on the gradients, so every process gets the gradient of the global
batch. :func:`explained_failure` turns a failed collective into an error that says what
probably happened. Both run on the ``gloo`` backend, so on CPUs.
"""
from __future__ import annotations

import contextlib

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["all_reduce_sum", "explained_failure", "world_size"]


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
def explained_failure(what: str, world: int):
    """Turn a failed collective (gloo's 'Connection closed by peer', 'Timed out') into a clear error."""
    try:
        yield
    except RuntimeError as error:
        raise RuntimeError(
            f"SyncBatchNorm: exchanging {what} with the other {world - 1} process(es) failed; one of "
            f"them has probably died or did not reach this layer within the process group's timeout. "
            f"({error})"
        ) from error




def world_size(group=None) -> int:
    """The number of processes in ``group`` (default: all), 1 when ``torch.distributed`` is not initialized."""
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    return dist.get_world_size(group)
