"""Chapter 10's language models at a size where they learn more than a bigram table.

Pre-LN decoder-only transformer (:class:`normlib.book.transformer.TinyTransformer`), width 64,
4 layers, 4 heads, context 64, batches of 16 windows, Adam with a linear warm-up over the first
tenth of the steps, float32 and PyTorch's native kernels, on the pydoc text split so that the
validation topics have the training text's statistics (``pydoc_text(val_offset=1)``).

The grid: no normalization, layer norm and RMSNorm at three learning rates an order of magnitude
apart (where does the model without a norm fail while the normalized ones still train?), and batch
norm and DyT at the middle rate. Each run stores its final validation loss and the same loss on
the training text (8 fixed batches of 32 windows each), whether it failed (a non-finite loss or a
final loss above the uniform predictor's ln 103), the training loss averaged over windows of
``CURVE_EVERY`` steps, and its wall time.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from experiments.runner import Experiment
from normlib.book.data import pydoc_text
from normlib.book.transformer import TinyTransformer, evaluate_lm, train_lm

CURVE_EVERY = 10  # the stored training curve: the mean loss of every 10 steps


@dataclass(frozen=True)
class LMConfig:
    norm: str  # a value of normlib.book.transformer.NORMS
    lr: float
    steps: int = 400
    d_model: int = 64
    n_layers: int = 4
    n_heads: int = 4
    context: int = 64
    batch_size: int = 16
    placement: str = "pre"
    val_offset: int = 1  # pydoc_text's split whose validation text matches the training text

    @property
    def warmup(self) -> int:
        return self.steps // 10


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None  # JSON has no nan / inf


def run(config: LMConfig, seed: int, advance) -> dict:
    corpus = pydoc_text(val_offset=config.val_offset)
    torch.manual_seed(seed)
    model = TinyTransformer(corpus.vocab_size, d_model=config.d_model, n_layers=config.n_layers,
                            n_heads=config.n_heads, context=config.context, placement=config.placement,
                            norm=config.norm, dtype=torch.float32)
    start = time.perf_counter()
    hist = train_lm(model, corpus, steps=config.steps, batch_size=config.batch_size, lr=config.lr,
                    warmup=config.warmup, seed=seed, on_step=lambda m, step: advance(1))
    seconds = time.perf_counter() - start
    advance(config.steps - len(hist.step_loss))  # a run stopped early still fills the bar
    losses = hist.step_loss
    curve = [sum(losses[i:i + CURVE_EVERY]) / len(losses[i:i + CURVE_EVERY]) for i in range(0, len(losses), CURVE_EVERY)]
    train_eval = evaluate_lm(model, corpus, split="train") if math.isfinite(hist.val_loss) else math.nan
    return {
        "val_loss": _finite(hist.val_loss),
        "train_eval_loss": _finite(train_eval),
        "diverged": hist.diverged,
        "steps_done": len(losses),
        "curve": [_finite(v) for v in curve],
        "seconds": round(seconds, 1),
    }


RATES = (3e-3, 1e-2, 3e-2)
NAMES = {"none": "none", "ln": "LN", "rms": "RMSNorm", "bn": "BN", "dyt": "DyT"}
_grid = [(norm, lr) for norm in ("none", "ln", "rms") for lr in RATES] + [("bn", 3e-3), ("dyt", 3e-3)]
CONFIGS = {f"{NAMES[norm]} lr={lr:g}": LMConfig(norm, lr) for norm, lr in _grid}
SMOKE = {label: LMConfig(c.norm, c.lr, steps=3, d_model=16, n_layers=1, context=16, batch_size=4)
         for label, c in CONFIGS.items()}

EXPERIMENT = Experiment(name="lm_norms", run=run, configs=CONFIGS, smoke=SMOKE, seeds=(0, 1, 2))
