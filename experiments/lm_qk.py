"""TRF-6: qk-layernorm against attention-logit growth, over a learning-rate sweep.

The model of ``lm_norms`` (Pre-LN with layer norm, width 64, 4 layers, 4 heads of 16 features,
context 64, batches of 16 windows, Adam with a linear warm-up over the first 40 of 400 steps),
with and without a layer norm on each head's queries and keys, at six learning rates from 1e-3
to 3e-1 (half-decades), three seeds each. Every 25 steps the run records each attention layer's
largest logit and mean attention entropy on a fixed validation batch. A 400-step probe at 1e-1,
seed 0, showed the growth the claim describes (largest logit about 1e5, entropy 0 without the
norm; about 20 with it), and sized the run: about 35 s per run on one core.
"""
from __future__ import annotations

from experiments.lm_train import RunConfig, run, smoke
from experiments.runner import Experiment

RATES = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
CONFIGS = {f"{'qk-LN' if qk else 'plain'} lr={lr:g}": RunConfig("pre", lr, warmup=40, qk_norm=qk, record_every=25)
           for qk in (False, True) for lr in RATES}
SMOKE = {label: smoke(c) for label, c in CONFIGS.items()}

EXPERIMENT = Experiment(name="lm_qk", run=run, configs=CONFIGS, smoke=SMOKE, seeds=(0, 1, 2),
                        origin=__name__)
