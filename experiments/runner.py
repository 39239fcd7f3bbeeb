"""The book's experiment runner: runs of minutes, stored with their provenance.

An :class:`Experiment` is a function of a configuration and a seed. The runner calls it once per
(configuration, seed), writes each result into ``book/results/NAME.json`` as soon as it finishes
(so an interrupted run resumes where it stopped), and records where the numbers came from: a hash
of the experiment's source — its module and every ``experiments`` or ``normlib.book`` module it
imports, followed transitively — and of each configuration, the commit, the machine, the versions,
the date and the wall time. A chapter reads the file, prints and asserts it; ``tests/test_experiments.py``
fails when a stored file no longer matches the code that would produce it.
"""
from __future__ import annotations

import ast
import dataclasses
import datetime
import hashlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "book" / "results"
#: The packages whose modules count as an experiment's source (the library itself is tested
#: against PyTorch on its own, so a change there does not by itself invalidate stored results).
TRACKED = ("experiments", "normlib.book")
#: The runner and the registry record results but compute none, so they do not count.
UNTRACKED = frozenset({"experiments", "experiments.runner", "experiments.__main__"})


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One experiment: ``run(config, seed, advance)`` returns a JSON-able dict for one run.

    ``configs`` maps a label to a frozen dataclass (the grid the experiment sweeps); ``smoke`` maps
    the same labels to tiny configurations that run in seconds. ``advance(n)`` reports ``n`` more
    steps done; a configuration's ``steps`` attribute, if it has one, sizes the progress bar.
    ``origin`` is the module that defines the experiment, when ``run`` comes from another one
    (several experiments may share one training function); the source hash starts there.
    """

    name: str
    run: Callable[[Any, int, Callable[[int], None]], dict]
    configs: Mapping[str, Any]
    smoke: Mapping[str, Any]
    seeds: tuple[int, ...] = (0, 1, 2)
    origin: str | None = None

    def __post_init__(self) -> None:
        if set(self.smoke) != set(self.configs):
            raise ValueError(f"{self.name}: smoke configs must have the labels of configs")

    @property
    def module(self) -> str:
        return self.origin or self.run.__module__


def _module_file(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):  # ``from package.module import name``: not a module
        return None
    return Path(spec.origin) if spec is not None and spec.origin and spec.origin.endswith(".py") else None


def _imports(path: Path, package: str) -> set[str]:
    """The tracked modules that the source at ``path`` imports (absolute or relative)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for name in names:
            if any(name == t or name.startswith(t + ".") for t in TRACKED) and _module_file(name):
                found.add(name)
    return found


def source_modules(module: str) -> dict[str, Path]:
    """``module`` and every tracked module it imports, transitively, with their files."""
    todo, seen = [module], {}
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if name in seen or path is None or (name in UNTRACKED and name != module):
            continue
        seen[name] = path
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        todo.extend(_imports(path, package))
    return dict(sorted(seen.items()))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _code(source: str) -> str:
    """The code of a module as its syntax tree, without comments and docstrings: editing those
    (a doctest, a sentence) changes no result, so it does not make stored results stale."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body \
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False)


def source_hash(module: str, files: Mapping[str, Path] | None = None) -> str:
    """One hash over the code of ``module`` and of what it imports (names and syntax trees)."""
    files = source_modules(module) if files is None else files
    h = hashlib.sha256()
    for name, path in sorted(files.items()):
        h.update(name.encode() + b"\0" + _code(path.read_text(encoding="utf-8")).encode() + b"\0")
    return h.hexdigest()[:16]


def config_hash(config: Any) -> str:
    return _sha(json.dumps(_plain(config), sort_keys=True).encode())


def _plain(config: Any) -> Any:
    if dataclasses.is_dataclass(config):
        return {"type": type(config).__name__, **dataclasses.asdict(config)}
    return config


def machine() -> dict:
    from normlib.book.perf import cpu_name

    return {"cpu": cpu_name(), "cores": os.cpu_count(), "system": platform.platform()}


def _commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def expected(exp: Experiment, smoke: bool = False) -> dict:
    """The provenance keys a stored file must match: source hash and one hash per configuration."""
    configs = exp.smoke if smoke else exp.configs
    return {"source_hash": source_hash(exp.module), "config_hash": {k: config_hash(c) for k, c in configs.items()}}


def problems(exp: Experiment, stored: dict | None) -> list[str]:
    """Why a stored result does not belong to the current code (empty when it does)."""
    if stored is None:
        return [f"{exp.name}: no stored results (run `python -m experiments run {exp.name}`)"]
    want, prov = expected(exp), stored.get("provenance", {})
    found = []
    if prov.get("source_hash") != want["source_hash"]:
        found.append(f"{exp.name}: stored results come from other source code "
                     f"(hash {prov.get('source_hash')} != {want['source_hash']}); re-run the experiment")
    for label, h in want["config_hash"].items():
        if prov.get("config_hash", {}).get(label) != h:
            found.append(f"{exp.name}: configuration {label!r} changed or was never run")
        missing = [s for s in exp.seeds if str(s) not in stored.get("runs", {}).get(label, {})]
        if missing:
            found.append(f"{exp.name}: {label!r} lacks seeds {missing}")
    return found


def load(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def _one(args: tuple) -> tuple[str, int, dict, float]:
    """One run, in a worker process: one thread, its steps reported through the queue."""
    module, name, label, config, seed, queue, threads = args
    import importlib

    import torch

    torch.set_num_threads(threads)
    mod = importlib.import_module(module)
    exp = next(e for e in getattr(mod, "EXPERIMENTS", None) or [mod.EXPERIMENT] if e.name == name)
    advance = (lambda n=1: queue.put(n)) if queue is not None else (lambda n=1: None)
    start = time.perf_counter()
    result = exp.run(config, seed, advance)
    return label, seed, result, time.perf_counter() - start


def run(exp: Experiment, seeds: tuple[int, ...] | None = None, smoke: bool = False, out: Path | None = None,
        jobs: int = 1, threads: int = 1, progress: bool = True) -> dict:
    """Run every (configuration, seed) of ``exp`` not yet stored, writing each result as it finishes.

    Stored runs are kept only when the source and that configuration are unchanged (resuming);
    otherwise the file starts afresh. ``smoke`` runs the tiny configurations and writes under
    ``out`` (never into the book's results unless ``out`` says so).
    """
    seeds = tuple(exp.seeds if seeds is None else seeds)
    configs = exp.smoke if smoke else exp.configs
    path = (out or RESULTS) / f"{exp.name}.json"
    want = expected(exp, smoke)
    stored = load(path)
    if stored is None or stored.get("provenance", {}).get("source_hash") != want["source_hash"] \
            or stored.get("smoke", False) != smoke:
        stored = {"name": exp.name, "smoke": smoke, "runs": {}, "configs": {}, "provenance": {}}
    for label, h in want["config_hash"].items():
        if stored["provenance"].get("config_hash", {}).get(label) != h:
            stored["runs"].pop(label, None)
    stored["configs"] = {k: _plain(c) for k, c in configs.items()}
    prov = stored["provenance"]
    prov.update(want)
    prov.update(commit=_commit(), machine=machine(), python=platform.python_version(),
                modules=sorted(source_modules(exp.module)), jobs=jobs, threads=threads)
    import torch

    prov["torch"] = torch.__version__
    prov.setdefault("started", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    prov.setdefault("run_seconds", 0.0)
    todo = [(label, c, s) for label, c in configs.items() for s in seeds if str(s) not in stored["runs"].get(label, {})]
    total = sum(getattr(c, "steps", 1) for _, c, _ in todo)
    bar = _bar(total, exp.name, progress)
    began = time.perf_counter()

    def record(label: str, seed: int, result: dict, seconds: float) -> None:
        stored["runs"].setdefault(label, {})[str(seed)] = result
        prov["run_seconds"] = round(prov["run_seconds"] + seconds, 1)
        prov["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        prov["wall_seconds"] = round(prov.get("wall_seconds", 0.0) + time.perf_counter() - record.t, 1)
        record.t = time.perf_counter()
        _write(path, stored)

    record.t = began
    if jobs <= 1:
        import torch as _torch

        _torch.set_num_threads(threads)
        for label, config, seed in todo:
            start = time.perf_counter()
            result = exp.run(config, seed, bar.update)
            record(label, seed, result, time.perf_counter() - start)
    else:
        import multiprocessing
        import threading

        ctx = multiprocessing.get_context("spawn")
        with ctx.Manager() as manager, ctx.Pool(jobs) as pool:
            queue = manager.Queue()
            done = threading.Event()

            def drain() -> None:
                while not done.is_set() or not queue.empty():
                    try:
                        bar.update(queue.get(timeout=0.2))
                    except Exception:  # queue.Empty
                        pass

            reader = threading.Thread(target=drain, daemon=True)
            reader.start()
            args = [(exp.module, exp.name, label, config, seed, queue, threads) for label, config, seed in todo]
            for label, seed, result, seconds in pool.imap_unordered(_one, args):
                record(label, seed, result, seconds)
            done.set()
            reader.join()
    bar.close()
    _write(path, stored)
    return stored


def _bar(total: int, name: str, show: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is pinned in requirements.txt; a bare install still runs
        show = False
    if not show:
        class _Null:
            def update(self, n: int = 1) -> None: ...
            def close(self) -> None: ...
        return _Null()
    return tqdm(total=total, desc=name, unit="step", smoothing=0.05, file=sys.stderr)
