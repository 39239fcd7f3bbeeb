"""One training run of the book's character language model, for the transformer chapter's experiments.

:func:`run` trains :class:`normlib.book.transformer.TinyTransformer` on the pydoc text (the split
whose validation text matches the training text, ``pydoc_text(val_offset=1)``) with Adam and an
optional linear warm-up, in float32 with PyTorch's native kernels, and returns what the chapter
plots and judges: the final validation loss, whether the run failed (a non-finite loss or a final
loss above the uniform predictor's ln 103), the training loss averaged over windows of
:data:`CURVE_EVERY` steps, and, every ``record_every`` steps, each attention layer's largest logit
and mean attention entropy on a fixed validation batch.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from normlib.book.data import pydoc_text
from normlib.book.transformer import TinyTransformer, attention_stats, train_lm, xavier_init_

CURVE_EVERY = 5  # the stored training curve: the mean loss of every 5 steps


@dataclass(frozen=True)
class RunConfig:
    placement: str  # "pre" or "post"
    lr: float
    warmup: int = 0  # steps of linear warm-up
    qk_norm: bool = False
    norm: str = "ln"
    init: str = "default"  # or "xavier" (xavier_init_)
    steps: int = 400
    d_model: int = 64
    n_layers: int = 4
    n_heads: int = 4
    context: int = 64
    batch_size: int = 16
    record_every: int = 0  # attention statistics every this many steps (0: never)


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None  # JSON has no nan / inf


def run(config: RunConfig, seed: int, advance) -> dict:
    corpus = pydoc_text(val_offset=1)
    torch.manual_seed(seed)
    model = TinyTransformer(corpus.vocab_size, d_model=config.d_model, n_layers=config.n_layers,
                            n_heads=config.n_heads, context=config.context, placement=config.placement,
                            norm=config.norm, qk_norm=config.qk_norm, dtype=torch.float32)
    if config.init == "xavier":
        xavier_init_(model)
    probe, _ = corpus.batch("val", 16, config.context, torch.Generator().manual_seed(7))
    attention = []  # per record: [step, [largest logit per layer], [mean entropy per layer]]

    def on_step(m, step: int) -> None:
        advance(1)
        if config.record_every and (step + 1) % config.record_every == 0:
            stats = attention_stats(m, probe)
            attention.append([step + 1, [_finite(a) for a, _ in stats], [_finite(e) for _, e in stats]])

    start = time.perf_counter()
    hist = train_lm(model, corpus, steps=config.steps, batch_size=config.batch_size, lr=config.lr,
                    warmup=config.warmup, seed=seed, on_step=on_step)
    seconds = time.perf_counter() - start
    advance(config.steps - len(hist.step_loss))  # a run stopped early still fills the bar
    losses = hist.step_loss
    curve = [sum(losses[i:i + CURVE_EVERY]) / len(losses[i:i + CURVE_EVERY]) for i in range(0, len(losses), CURVE_EVERY)]
    return {
        "val_loss": _finite(hist.val_loss),
        "diverged": hist.diverged,
        "steps_done": len(losses),
        "curve": [_finite(v) for v in curve],
        "attention": attention,
        "seconds": round(seconds, 1),
    }


def smoke(config: RunConfig) -> RunConfig:
    """The same configuration at a size that runs in a second."""
    return RunConfig(**{**config.__dict__, "steps": 3, "d_model": 16, "n_layers": 1, "context": 16,
                        "batch_size": 4, "warmup": min(config.warmup, 2),
                        "record_every": 1 if config.record_every else 0})
