"""The experiment runner: stored results match the code that made them, and every experiment runs.

``book/results/NAME.json`` holds the results a chapter prints. The staleness test fails as soon as
an experiment's source (its module and every ``experiments`` / ``normlib.book`` module it imports)
or one of its configurations differs from what produced the stored file; the smoke test runs every
experiment at its tiny configuration, so that every code path runs on every push.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import textwrap

import pytest

from experiments import registry, runner

EXPERIMENTS = registry()


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_stored_results_match_the_current_code(name):
    exp = EXPERIMENTS[name]
    found = runner.problems(exp, runner.load(runner.RESULTS / f"{name}.json"))
    assert not found, "\n".join(found)


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_experiment_runs_at_its_smoke_size(name, tmp_path):
    exp = EXPERIMENTS[name]
    stored = runner.run(exp, seeds=exp.seeds[:1], smoke=True, out=tmp_path, progress=False)
    assert set(stored["runs"]) == set(exp.smoke)
    assert json.loads(json.dumps(stored)) == stored  # JSON-able all the way down


def test_every_stored_result_belongs_to_an_experiment():
    stray = sorted(p.stem for p in runner.RESULTS.glob("*.json") if p.stem not in EXPERIMENTS)
    assert not stray, f"results without an experiment (remove them or register it): {stray}"


DEMO = '''
from dataclasses import dataclass
from experiments.runner import Experiment
import {helper} as helper

@dataclass(frozen=True)
class Config:
    steps: int = 3
    scale: float = 2.0

def run(config, seed, advance):
    total = 0.0
    for step in range(config.steps):
        total += helper.value(seed) * config.scale
        advance(1)
    return {{"total": total}}

EXPERIMENT = Experiment("demo", run, {{"a": Config(), "b": Config(scale=3.0)}},
                        {{"a": Config(steps=1), "b": Config(steps=1)}}, seeds=(0, 1))
'''


@pytest.fixture
def demo(tmp_path, monkeypatch):
    """A copy of a small experiment as package ``experiments_demo``, tracked like ``experiments``."""
    pkg = tmp_path / "experiments_demo"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "helper.py").write_text("def value(seed):\n    return seed + 1.0\n")
    (pkg / "demo.py").write_text(DEMO.format(helper="experiments_demo.helper"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(runner, "TRACKED", runner.TRACKED + ("experiments_demo",))
    sys.modules.pop("experiments_demo.demo", None)
    import importlib

    module = importlib.import_module("experiments_demo.demo")
    yield pkg, module
    for name in ("experiments_demo.demo", "experiments_demo.helper", "experiments_demo"):
        sys.modules.pop(name, None)


def test_the_source_hash_follows_imports(demo):
    pkg, module = demo
    assert sorted(runner.source_modules("experiments_demo.demo")) == [
        "experiments_demo.demo", "experiments_demo.helper"]


def test_a_run_is_stored_and_then_current(demo, tmp_path):
    pkg, module = demo
    out = tmp_path / "results"
    stored = runner.run(module.EXPERIMENT, out=out, progress=False)
    assert stored["runs"]["a"]["1"] == {"total": 2.0 * 3 * 2.0}
    assert runner.problems(module.EXPERIMENT, runner.load(out / "demo.json")) == []
    assert stored["provenance"]["torch"] and stored["provenance"]["machine"]["cores"]


def test_an_edited_helper_makes_stored_results_stale(demo, tmp_path):
    pkg, module = demo
    out = tmp_path / "results"
    runner.run(module.EXPERIMENT, out=out, progress=False)
    (pkg / "helper.py").write_text("def value(seed):\n    return seed + 2.0\n")
    found = runner.problems(module.EXPERIMENT, runner.load(out / "demo.json"))
    assert len(found) == 1 and "other source code" in found[0]


def test_a_changed_configuration_or_missing_seed_is_stale(demo, tmp_path):
    pkg, module = demo
    out = tmp_path / "results"
    runner.run(module.EXPERIMENT, out=out, progress=False)
    changed = dataclasses.replace(module.EXPERIMENT, configs={**module.EXPERIMENT.configs,
                                                              "b": module.Config(scale=4.0)})
    assert [p for p in runner.problems(changed, runner.load(out / "demo.json")) if "'b' changed" in p]
    more = dataclasses.replace(module.EXPERIMENT, seeds=(0, 1, 2))
    assert [p for p in runner.problems(more, runner.load(out / "demo.json")) if "lacks seeds [2]" in p]


def test_an_interrupted_run_resumes_where_it_stopped(demo, tmp_path):
    pkg, module = demo
    out = tmp_path / "results"
    calls = []
    original = module.EXPERIMENT.run

    def counting(config, seed, advance):
        calls.append((config.scale, seed))
        return original(config, seed, advance)

    exp = dataclasses.replace(module.EXPERIMENT, run=counting)
    exp = dataclasses.replace(exp, seeds=(0,))
    runner.run(exp, out=out, progress=False)
    assert len(calls) == 2
    exp = dataclasses.replace(exp, seeds=(0, 1))
    runner.run(exp, out=out, progress=False)
    assert len(calls) == 4 and sorted(calls[2:]) == [(2.0, 1), (3.0, 1)]  # only the new seed ran


def test_runs_side_by_side_store_the_same_results(demo, tmp_path):
    pkg, module = demo
    one = runner.run(module.EXPERIMENT, out=tmp_path / "one", progress=False)
    two = runner.run(module.EXPERIMENT, out=tmp_path / "two", jobs=2, progress=False)
    assert one["runs"] == two["runs"]


def test_a_docstring_or_comment_edit_keeps_stored_results_current(demo, tmp_path):
    pkg, module = demo
    out = tmp_path / "results"
    runner.run(module.EXPERIMENT, out=out, progress=False)
    (pkg / "helper.py").write_text('def value(seed):\n    """One more than the seed."""  \n    return seed + 1.0  # as before\n')
    assert runner.problems(module.EXPERIMENT, runner.load(out / "demo.json")) == []
