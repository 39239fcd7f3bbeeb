"""Helpers of the batch-norm-in-practice chapter: batches that are not i.i.d., frozen and
re-estimated BN statistics, and predictions made in the wrong mode.

Each works with :func:`normlib.book.train.fit` (``batches=``, ``train_mode=``) and with every
batch-norm layer of normlib and of PyTorch.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from normlib.book.data import Split
from normlib.core import per_channel, reduce_dims, update_running
from normlib.fused import standardize
from normlib.nn import BatchNorm2d

__all__ = [
    "as_float64", "few_class_batches", "is_batch_norm", "freeze_batch_norm", "reestimate_batch_norm", "predict",
    "stored_verdicts", "GhostBatchNorm2d",
]


def as_float64(split: Split) -> Split:
    """The same split with its images in float64 (labels unchanged)."""
    return Split(*(t.double() if t.is_floating_point() else t for t in split))


def few_class_batches(labels: Tensor, batch_size: int, classes_per_batch: int) -> Callable[[torch.Generator], Iterator[Tensor]]:
    """A ``batches`` argument for :func:`~normlib.book.train.fit`: every mini-batch holds
    ``batch_size // classes_per_batch`` samples of each of (at most) ``classes_per_batch`` classes.

    Each epoch, the samples of every class are shuffled and cut into chunks of that size (the
    remainder of each class is dropped); the chunks are shuffled and grouped ``classes_per_batch``
    at a time. So batches are far from i.i.d.: their statistics are those of a few classes.

    >>> y = torch.arange(10).repeat_interleave(8)
    >>> batches = list(few_class_batches(y, 8, 2)(torch.Generator().manual_seed(0)))
    >>> len(batches), max(y[b].unique().numel() for b in batches)
    (10, 2)
    """
    if batch_size % classes_per_batch:
        raise ValueError(f"classes_per_batch must divide batch_size {batch_size}, got {classes_per_batch}")
    chunk = batch_size // classes_per_batch

    def batches(gen: torch.Generator) -> Iterator[Tensor]:
        chunks = []
        for c in labels.unique().tolist():
            members = (labels == c).nonzero().flatten()
            members = members[torch.randperm(len(members), generator=gen)]
            chunks += [members[i : i + chunk] for i in range(0, len(members) - chunk + 1, chunk)]
        order = torch.randperm(len(chunks), generator=gen).tolist()
        for i in range(0, len(order) - classes_per_batch + 1, classes_per_batch):
            yield torch.cat([chunks[j] for j in order[i : i + classes_per_batch]])

    return batches


def is_batch_norm(module: nn.Module) -> bool:
    """A layer that normalizes with running statistics in evaluation mode: batch norm (and batch
    renorm) of normlib or PyTorch, recognized by its ``running_mean`` buffer."""
    return getattr(module, "track_running_stats", False) and getattr(module, "running_mean", None) is not None


def freeze_batch_norm(model: nn.Module) -> None:
    """Put every batch-norm layer in evaluation mode (running statistics normalize and stay fixed);
    as ``train_mode=`` of :func:`~normlib.book.train.fit` it keeps them frozen while the rest trains."""
    for m in model.modules():
        if is_batch_norm(m):
            m.eval()


@torch.no_grad()
def reestimate_batch_norm(model: nn.Module, x: Tensor, batch_size: int = 64) -> None:
    """AdaBN (Li et al. 2016): replace every BN layer's running statistics by those of ``x``.

    The statistics are reset and accumulated as a cumulative average (``momentum=None``) over
    forward passes of ``x`` in batches of ``batch_size``; nothing else of the model changes.
    """
    layers = [m for m in model.modules() if is_batch_norm(m)]
    was_training, momenta = model.training, [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for start in range(0, len(x) - batch_size + 1, batch_size):
        model(x[start : start + batch_size])
    for m, momentum in zip(layers, momenta):
        m.momentum = momentum
    model.train(was_training)


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int, training: bool) -> Tensor:
    """Predicted classes of ``x`` computed ``batch_size`` samples at a time, in training mode
    (batch statistics) or evaluation mode; the model's mode and running statistics are restored."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    was_training = model.training
    model.train(training)
    try:
        out = torch.cat([model(x[i : i + batch_size]).argmax(dim=1) for i in range(0, len(x), batch_size)])
    finally:
        model.load_state_dict(state)
        model.train(was_training)
    return out


def stored_verdicts(notebook) -> dict[str, tuple[str, str]]:
    """``{claim ID: (status, evidence)}`` from the stored outputs of a chapter's notebook: the lines
    ``verdict ID: status | evidence`` that :func:`normlib.book.notebook.verdict` printed (the same
    lines the claims appendix reads), so that a later chapter can cite a measurement without copying it."""
    import json
    import pathlib
    import re

    line = re.compile(r"^verdict ([A-Z]+-\d+): (.+?) \| (.*)$")
    found = {}
    for cell in json.loads(pathlib.Path(notebook).read_text(encoding="utf-8")).get("cells", []):
        for out in cell.get("outputs", []):
            text = out.get("text") or out.get("data", {}).get("text/plain", "")
            for row in ("".join(text) if isinstance(text, list) else text).splitlines():
                if m := line.match(row):
                    found[m.group(1)] = (m.group(2), m.group(3))
    return found


class GhostBatchNorm2d(torch.nn.Module):
    """A batch-norm layer whose training statistics come from consecutive chunks of ``ghost`` samples.

    Like batch norm on one device of several in data-parallel training: each chunk of the
    mini-batch is normalized with its own mean and variance (and updates the running statistics),
    while the gradient step still averages over the whole mini-batch. So the normalization batch
    can shrink without changing the optimization (chapter 3's reproduction of the GN paper).
    In evaluation mode it is the layer with its running statistics. ``norm`` is the layer
    (default ``normlib.nn.BatchNorm2d(num_features)``; any batch norm or batch renorm works).
    """

    def __init__(self, num_features: int, ghost: int, dtype=None, norm: nn.Module | None = None) -> None:
        super().__init__()
        self.ghost = ghost
        self.bn = norm if norm is not None else BatchNorm2d(num_features, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:  # x: (N, C, ...)
        if not self.training:
            return self.bn(x)
        if type(self.bn) is BatchNorm2d and len(x) % self.ghost == 0 and len(x) > self.ghost:
            return self._all_chunks_at_once(x)
        return torch.cat([self.bn(chunk) for chunk in x.split(self.ghost)])

    def _all_chunks_at_once(self, x: Tensor) -> Tensor:
        """What the loop over chunks computes, in one batch-norm call (the same numbers up to rounding):
        channel ``c`` of chunk ``j`` becomes channel ``j·C + c`` of one batch of ``ghost`` samples, so
        that batch norm's per-channel statistics are the per-chunk ones. The running statistics are
        then updated chunk by chunk, in order, as the loop would.

        >>> torch.manual_seed(0) and None
        >>> x = torch.randn(12, 3, 2, 2, dtype=torch.float64)
        >>> fast, loop = GhostBatchNorm2d(3, 4, dtype=torch.float64), GhostBatchNorm2d(3, 4, dtype=torch.float64)
        >>> y_loop = torch.cat([loop.bn(chunk) for chunk in x.split(4)])
        >>> bool((fast(x) - y_loop).abs().max() < 1e-12)
        True
        >>> all((a - b).abs().max() < 1e-12 for a, b in zip(fast.state_dict().values(), loop.state_dict().values()))
        True
        """
        bn, g = self.bn, self.ghost
        k, c, spatial = len(x) // g, x.shape[1], x.shape[2:]
        stacked = x.reshape(k, g, c, *spatial).transpose(0, 1).reshape(g, k * c, *spatial)  # (ghost, k·C, ...)
        weight, bias = (None if t is None else per_channel(t.repeat(k), stacked.dim()) for t in (bn.weight, bn.bias))
        y, means, variances = standardize(stacked, reduce_dims("batch", stacked.dim()), bn.eps, weight, bias)
        if bn.track_running_stats:
            m = stacked.numel() // stacked.shape[1]  # values per channel of one chunk
            for mean, var in zip(means.view(k, c), variances.view(k, c)):  # one update per chunk, in the loop's order
                momentum = bn._count_batch_and_get_momentum()
                update_running(bn.running_mean, mean, momentum)
                update_running(bn.running_var, var * m / (m - 1), momentum)  # unbiased, as batch norm keeps it
        return y.reshape(g, k, c, *spatial).transpose(0, 1).reshape(x.shape)
