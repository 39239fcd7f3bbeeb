"""The one setup call every notebook of the book makes, and the claim verdicts it prints.

Stored notebook outputs are compared by nbval on every CI run, so a notebook must print the
same text on every machine: :func:`setup` fixes the seeds, the threads, the print precision and
the plotting style. The environment variables that must be set *before* torch is imported
(``ATEN_CPU_CAPABILITY``, ``MKL_CBWR``, ``OMP_NUM_THREADS``) are exported by the Makefile for both
nbval and ``make lab``; :func:`setup` warns when they are missing.
"""
from __future__ import annotations

import os
import random
import warnings

import numpy as np
import torch

__all__ = ["setup", "verdict", "VERDICTS", "DETERMINISTIC_ENV"]

#: Exported by the Makefile before any kernel starts, so that float reductions take the same
#: code path (and give the same last bits) on every x86-64 machine.
DETERMINISTIC_ENV = {
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_CBWR": "COMPATIBLE",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "PYTHONHASHSEED": "0",
}

#: The three verdicts a claim cell may record (see the claims appendix of the book).
VERDICTS = ("holds", "holds approximately", "does not hold as written")


def setup(seed: int = 0) -> torch.Generator:
    """Seed everything, use one thread, fix print precision and the figure style.

    Returns a ``torch.Generator`` seeded with ``seed`` for code that wants its own stream.
    """
    missing = {k: v for k, v in DETERMINISTIC_ENV.items() if os.environ.get(k) != v}
    if missing:
        warnings.warn(
            "outputs may differ in the last digits from the stored ones: start Jupyter with "
            "`make lab` (or export " + " ".join(f"{k}={v}" for k, v in missing.items()) + ")",
            stacklevel=2,
        )
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.backends.mkldnn.enabled = False  # oneDNN picks kernels by CPU; the reference path does not
    torch.set_printoptions(precision=4, sci_mode=False)
    np.set_printoptions(precision=4, suppress=True)
    _style_figures()
    return torch.Generator().manual_seed(seed)


def _style_figures() -> None:
    import matplotlib as mpl

    mpl.rcParams.update(
        {
            "figure.figsize": (6.4, 3.6),
            "figure.dpi": 100,
            "savefig.dpi": 100,
            "figure.facecolor": "white",  # readable in the site's dark mode too
            "savefig.facecolor": "white",
            "font.size": 10,
            "axes.titlesize": 11,
            "axes.labelsize": 10,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "legend.frameon": False,
            "figure.constrained_layout.use": True,
        }
    )


def verdict(claim_id: str, status: str, evidence: str) -> None:
    """Print a claim's measured verdict in the one format the claims appendix reads.

    ``status`` is one of :data:`VERDICTS`; ``evidence`` says what was measured (with its bound)
    and, for ``"does not hold as written"``, the correct statement.

    >>> verdict("BN-1", "holds", "per-channel |mean| < 1e-7, |var - 1| < 1e-4")
    verdict BN-1: holds | per-channel |mean| < 1e-7, |var - 1| < 1e-4
    """
    if status not in VERDICTS:
        raise ValueError(f"status must be one of {VERDICTS}, got {status!r}")
    if "\n" in evidence:
        raise ValueError("evidence must be one line")
    print(f"verdict {claim_id}: {status} | {evidence}")
