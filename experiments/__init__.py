"""The book's experiments: runs of minutes whose results the chapters read from ``book/results/``.

``python -m experiments list`` names them, ``python -m experiments run NAME`` runs one (``make
experiments`` runs them all), ``python -m experiments check`` says which stored results no longer
match their code. Each module listed in :data:`MODULES` defines ``EXPERIMENT`` (an
:class:`experiments.runner.Experiment`) or a list ``EXPERIMENTS``.
"""
from __future__ import annotations

import importlib

from experiments.runner import Experiment

#: The modules that define experiments, in the order ``make experiments`` runs them.
MODULES: tuple[str, ...] = (
    "experiments.lm_norms",
    "experiments.lm_qk",
    "experiments.lm_warmup",
)


def registry() -> dict[str, Experiment]:
    """Every experiment by name."""
    found: dict[str, Experiment] = {}
    for name in MODULES:
        module = importlib.import_module(name)
        for exp in getattr(module, "EXPERIMENTS", None) or [module.EXPERIMENT]:
            if exp.name in found:
                raise ValueError(f"two experiments are named {exp.name!r}")
            found[exp.name] = exp
    return found
