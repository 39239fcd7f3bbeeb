"""TRF-2: does Post-LN need a learning-rate warm-up where Pre-LN does not?

Post-LN with and without a linear warm-up (the first 40 of 400 steps), and Pre-LN without one,
at four Adam learning rates from 1e-3 to 3e-2 (half-decades), three seeds each. Six layers
(Xiong et al. analyse 6-layer models; depth is what makes Post-LN's gradients near the output
large), width 64, 4 heads, context 64, batches of 16 windows, PyTorch's default initialization.
Post-LN with layer norm failed to train in no run of the earlier 100-step, width-32 experiment,
so the grid reaches a rate three times above the best Pre-LN rate of ``lm_norms``.
"""
from __future__ import annotations

from experiments.lm_train import RunConfig, run, smoke
from experiments.runner import Experiment

RATES = (1e-3, 3e-3, 1e-2, 3e-2)
VARIANTS = {"Post-LN": ("post", 0), "Post-LN warm-up": ("post", 40), "Pre-LN": ("pre", 0)}
CONFIGS = {f"{name} lr={lr:g}": RunConfig(placement, lr, warmup=warmup, n_layers=6)
           for name, (placement, warmup) in VARIANTS.items() for lr in RATES}
SMOKE = {label: smoke(c) for label, c in CONFIGS.items()}

EXPERIMENT = Experiment(name="lm_warmup", run=run, configs=CONFIGS, smoke=SMOKE, seeds=(0, 1, 2),
                        origin=__name__)
