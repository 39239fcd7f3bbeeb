"""Read the experiment runner's stored results (``book/results/NAME.json``) in a chapter.

The runs behind these numbers take minutes, so ``make experiments`` runs them once and stores
them with their provenance; a chapter prints and asserts what is stored. The numbers are data: a
page shows the same digits on every machine. ``tests/test_experiments.py`` fails when a stored
file no longer matches the code that produced it.
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path

#: Where the runner writes, beside the chapters.
RESULTS = Path(__file__).resolve().parents[2] / "book" / "results"


def load(name: str, directory: Path | None = None) -> dict:
    """The stored results of experiment ``name``: ``{"runs": {label: {seed: result}}, "configs", "provenance"}``."""
    path = (directory or RESULTS) / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `make experiments` (or `python -m experiments run {name}`)")
    return json.loads(path.read_text(encoding="utf-8"))


def provenance(results: dict) -> str:
    """One sentence on where stored results come from.

    >>> provenance({"name": "demo", "runs": {"a": {"0": {}, "1": {}}}, "provenance": {
    ...     "machine": {"cpu": "Some CPU", "cores": 2}, "finished": "2026-12-07T06:00:00+00:00",
    ...     "run_seconds": 125.0, "torch": "2.13.0", "commit": "0123456789abcdef"}})
    '`demo`: 2 runs, 2 min of computing, on Some CPU (2 cores), torch 2.13.0, 2026-12-07, commit 0123456'
    """
    prov = results["provenance"]
    runs = sum(len(v) for v in results["runs"].values())
    day = datetime.datetime.fromisoformat(prov["finished"]).date().isoformat()
    minutes = prov["run_seconds"] / 60
    spent = f"{minutes:.0f} min" if minutes >= 1.5 else f"{prov['run_seconds']:.0f} s"
    return (f"`{results['name']}`: {runs} runs, {spent} of computing, on {prov['machine']['cpu']} "
            f"({prov['machine']['cores']} cores), torch {prov['torch']}, {day}, commit {prov['commit'][:7]}")


def seeds(results: dict, label: str, key: str) -> list:
    """One stored quantity ``key`` of every seed of configuration ``label``, in seed order.

    >>> seeds({"runs": {"ln": {"1": {"loss": 2.0}, "0": {"loss": 1.5}}}}, "ln", "loss")
    [1.5, 2.0]
    """
    runs = results["runs"][label]
    return [runs[s][key] for s in sorted(runs, key=int)]


def span(values, fmt: str = ".2f") -> str:
    """The range of ``values`` (one per seed) as ``"min-max"``, each formatted with ``fmt``.

    >>> span([2.03, 2.018, 2.053])
    '2.02-2.05'
    >>> span([580.0, 1753.5], ".2g")
    '5.8e+02-1.8e+03'
    """
    return f"{min(values):{fmt}}-{max(values):{fmt}}"
