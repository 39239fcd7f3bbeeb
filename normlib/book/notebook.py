"""The one setup call every notebook of the book makes, the verdict a claim cell records, and bounds.

Stored notebook outputs are compared by nbval on every CI run, under two rounding paths (PyTorch's
native vectorized kernels with two threads, and its scalar reference kernels with one), and a
reader re-runs them in their own Jupyter. So a notebook prints only what every correct
floating-point evaluation gives: rounding noise as the bound it is (:func:`bound`), results at
the precision the experiment supports. :func:`setup` fixes the seeds, the print precision and the
figure style; nothing here depends on environment variables set before the kernel starts.
"""
from __future__ import annotations

import html
import random

import numpy as np
import torch

__all__ = ["setup", "verdict", "bound", "VERDICTS"]

#: The four verdicts a claim cell may record (their meaning is on the book's claims appendix).
VERDICTS = ("holds", "holds approximately", "does not hold as written", "not shown at this scale")

_BOX_CLASS = {
    "holds": "verdict-holds",
    "holds approximately": "verdict-approx",
    "does not hold as written": "verdict-wrong",
    "not shown at this scale": "verdict-notshown",
}


def setup(seed: int = 0) -> torch.Generator:
    """Seed everything, fix print precision and the figure style.

    Returns a ``torch.Generator`` seeded with ``seed`` for code that wants its own stream.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
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


def bound(value: float, below: float) -> str:
    """Print a rounding-level quantity as the bound it is, after checking that it holds.

    ``value`` (an error, a deviation) depends on the last bits of floating point, which differ
    between CPUs, vector widths and thread counts; ``below`` does not. Raises ``AssertionError``
    when ``value`` is not below the bound, so the printed text is also a check.

    >>> bound(3.1e-16, 1e-12)
    '< 1e-12'
    >>> bound(4.2, 10)
    '< 10'
    >>> bound(0.5, 1e-12)
    Traceback (most recent call last):
    AssertionError: 0.5 is not below 1e-12
    """
    value = float(value)
    if not abs(value) < below:
        raise AssertionError(f"{value:.3g} is not below {below:.0e}")
    if 1 <= below < 1e4:
        return f"< {below:g}"
    return f"< {below:.0e}".replace("e-0", "e-").replace("e+0", "e")


def verdict(claim_id: str, status: str, evidence: str) -> None:
    """Record a claim's measured verdict: a box for the reader, one line for the claims appendix.

    ``status`` is one of :data:`VERDICTS`; ``evidence`` says what was measured (with its bound)
    and, for ``"does not hold as written"``, the correct statement; for ``"not shown at this
    scale"``, what the run showed. In a notebook the verdict shows as a box (HTML in Jupyter, a
    MyST admonition on the website); its plain-text form, the line the appendix reads, is::

        verdict BN-1: holds | per-channel |mean| < 1e-7, |var - 1| < 1e-4

    >>> verdict("BN-1", "holds", "per-channel |mean| < 1e-7, |var - 1| < 1e-4")
    verdict BN-1: holds | per-channel |mean| < 1e-7, |var - 1| < 1e-4
    """
    if status not in VERDICTS:
        raise ValueError(f"status must be one of {VERDICTS}, got {status!r}")
    if "\n" in evidence:
        raise ValueError("evidence must be one line")
    line = f"verdict {claim_id}: {status} | {evidence}"
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # plain Python: the line alone
        get_ipython = None
    if get_ipython is None or get_ipython() is None:
        print(line)
        return
    css = _BOX_CLASS[status]
    escaped = evidence.replace("\\", "\\\\").replace("`", "\\`").replace("*", "\\*").replace("_", "\\_")
    escaped = escaped.replace("<", "\\<").replace("|", "\\|").replace("$", "\\$")
    markdown = f":::{{admonition}} {claim_id}: {status}\n:class: verdict {css}\n{escaped}\n:::\n"
    box = (
        f'<div class="verdict {css}" style="border-left:4px solid #888;padding:0.3em 0.8em;margin:0.4em 0">'
        f"<strong>{html.escape(claim_id)}: {html.escape(status)}</strong><br>{html.escape(evidence)}</div>"
    )
    display({"text/plain": line, "text/markdown": markdown, "text/html": box}, raw=True)
