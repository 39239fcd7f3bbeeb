r"""Trying :class:`normlib.nn.SyncBatchNorm` on one machine: a launcher and a worker for the tests and the book.

:func:`launch` starts ``P`` local processes joined on ``127.0.0.1`` (gloo) with a timeout;
:func:`compare_with_single_process` is a worker that checks normlib's synchronized batch norm
against PyTorch's own ``torch.nn.BatchNorm{1,2,3}d`` over the whole batch in one process.
"""
from __future__ import annotations

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

from normlib.nn import SyncBatchNorm

__all__ = ["launch", "compare_with_single_process"]


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
    context.set_forkserver_preload(["torch", "normlib.book.distributed"])
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
    """A worker for :func:`launch`: normlib's SyncBatchNorm on this process's slice against
    PyTorch's batch norm on the whole batch.

    Every process draws the same global batches (``sum(batch_sizes)`` samples of
    ``(C, *spatial) = shape``, float64) and upstream gradients, takes its slice, and runs
    ``steps`` training steps of :class:`normlib.nn.SyncBatchNorm` while it also runs
    ``torch.nn.BatchNorm1d``, ``2d`` or ``3d`` (by the input's dimensions) over the full batch. Returns the largest
    absolute difference of the output, the input gradient, the parameter gradients (summed
    over processes, as data-parallel training does) and the running statistics.
    """
    torch.manual_seed(seed)
    c = shape[0]
    sync = SyncBatchNorm(c, momentum=0.3, dtype=torch.float64)
    reference = {2: torch.nn.BatchNorm1d, 3: torch.nn.BatchNorm1d, 4: torch.nn.BatchNorm2d, 5: torch.nn.BatchNorm3d}[len(shape) + 1](
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
