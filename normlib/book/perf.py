"""The speed chapter's arithmetic, shared with ``benchmarks/bench.py``, which writes the results it reads."""
from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["geomean"]


def geomean(values: Iterable[float]) -> float:
    """Geometric mean of positive numbers: the average of ratios such as time / PyTorch's time.

    >>> geomean([2.0, 0.5, 1.0])
    1.0
    """
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values))


def cpu_name() -> str:
    """The CPU's model name as the kernel reports it (``platform.processor()`` where it does not)."""
    import platform
    from pathlib import Path

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
