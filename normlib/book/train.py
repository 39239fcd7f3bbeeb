"""One small, seeded training loop and the two model shapes that the book's experiments reuse.

Every experiment in the book trains with :func:`fit`, so that "with BN" and "without BN" differ
in the model only, never in the loop. Everything is seeded: the initialization by ``seed``
through :func:`torch.manual_seed`, the order of the mini-batches by a generator of its own.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from normlib.book.data import Split

__all__ = ["History", "mlp", "small_cnn", "fit", "evaluate"]

NormFactory = Callable[[int], nn.Module] | None


def mlp(
    in_features: int = 64,
    hidden: int = 64,
    out_features: int = 10,
    depth: int = 3,
    norm: NormFactory = None,
    activation: Callable[[], nn.Module] = nn.ReLU,
    init_scale: float | None = None,
    norm_after_activation: bool = False,
    dtype: torch.dtype | None = None,
) -> nn.Sequential:
    """``depth`` hidden layers of ``Linear -> [norm] -> activation``, then a linear classifier.

    ``norm_after_activation`` puts the normalization after the activation instead
    (``Linear -> activation -> norm``); ``dtype`` is the parameters' (``torch.float64`` for the
    experiments whose printed results must not depend on rounding).

    ``norm`` builds the normalization layer from the width (``normlib.nn.BatchNorm1d``, say);
    ``init_scale``, if given, draws every hidden weight from ``N(0, init_scale² / fan_in)``
    instead of PyTorch's default (the knob of the initialization-sensitivity experiments).
    """
    layers: list[nn.Module] = []
    width = in_features
    for _ in range(depth):
        linear = nn.Linear(width, hidden)
        if init_scale is not None:
            nn.init.normal_(linear.weight, std=init_scale / math.sqrt(width))
            nn.init.zeros_(linear.bias)
        normalization = [norm(hidden)] if norm else []
        if norm_after_activation:
            layers += [linear, activation()] + normalization
        else:
            layers += [linear] + normalization + [activation()]
        width = hidden
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers).to(dtype) if dtype is not None else nn.Sequential(*layers)


def small_cnn(norm: NormFactory = None, channels: int = 16, num_classes: int = 10) -> nn.Sequential:
    """A two-convolution network for ``(N, 1, 8, 8)`` digits: conv-[norm]-ReLU ×2, pool, linear."""

    def block(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1)] + ([norm(c_out)] if norm else []) + [nn.ReLU()]

    return nn.Sequential(
        *block(1, channels),
        nn.MaxPool2d(2),  # 8x8 -> 4x4
        *block(channels, 2 * channels),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * channels, num_classes),
    )


@dataclass
class History:
    """What :func:`fit` measured: one loss per step, and per epoch the train and test metrics."""

    step_loss: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)

    @property
    def diverged(self) -> bool:
        return any(not math.isfinite(v) for v in self.step_loss)


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` in evaluation mode (restores the mode)."""
    was_training = model.training
    model.eval()
    logits = model(x)
    model.train(was_training)
    loss = nn.functional.cross_entropy(logits, y).item()
    return loss, (logits.argmax(dim=1) == y).float().mean().item()


def fit(
    model: nn.Module,
    data: Split,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 0.1,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    seed: int = 0,
    on_step: Callable[[nn.Module, int], None] | None = None,
    batches: Callable[[torch.Generator], Iterable[Tensor]] | None = None,
    train_mode: Callable[[nn.Module], None] | None = None,
    evaluate_on: tuple[str, ...] = ("train", "test"),
) -> History:
    """Train ``model`` with mini-batch SGD and cross-entropy on ``data``.

    The model is first moved to the data's floating-point type (float64 for the book's digits,
    see :func:`normlib.book.data.digits`). The batches are a fresh seeded permutation each epoch;
    the last incomplete batch is dropped
    (a batch of one would break batch norm). ``on_step(model, step)`` is called after every
    update, for experiments that watch the model while it trains. Training stops early, with
    ``nan`` recorded, if the loss stops being finite.

    Two hooks for the experiments of the practice chapter: ``batches(generator)``, if given,
    yields one epoch's mini-batches as index tensors into the training set (batches that each
    hold few classes, say) instead of the seeded permutation; ``train_mode(model)``, if given, is
    called after ``model.train()`` at the start of every epoch (to keep BN layers in evaluation
    mode while fine-tuning, say).

    ``evaluate_on`` names the sets evaluated after every epoch (``("test",)``: the test metrics
    only, for experiments that read nothing else; training is the same either way, since
    evaluation changes no weight and no running statistic).
    """
    model.to(data.x_train.dtype)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    hist = History()
    n = len(data.y_train)
    step = 0
    for _ in range(epochs):
        model.train()
        if train_mode is not None:
            train_mode(model)
        if batches is None:
            order = torch.randperm(n, generator=gen)
            epoch = [order[start : start + batch_size] for start in range(0, n - batch_size + 1, batch_size)]
        else:
            epoch = batches(gen)
        for idx in epoch:
            loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            hist.step_loss.append(loss.item())
            step += 1
            if on_step is not None:
                on_step(model, step)
            if not math.isfinite(hist.step_loss[-1]):
                return hist
        for name, (x, y), (losses, accs) in (
            ("train", (data.x_train, data.y_train), (hist.train_loss, hist.train_acc)),
            ("test", (data.x_test, data.y_test), (hist.test_loss, hist.test_acc)),
        ):
            if name not in evaluate_on:
                continue
            loss_value, acc = evaluate(model, x, y)
            losses.append(loss_value)
            accs.append(acc)
    return hist
