"""Every claim cell asserts something about a measurement, not only about the verdict it chose.

The rule of ``../shared/claims.md``: the assert tests the measured quantity against a criterion fixed
before the run, so that another outcome of the run would fail it. An assert that restates the chosen
status (``assert (status == "holds") == cond``), or checks that earlier verdicts exist, is no check.

A claim cell is a code cell whose first line is ``# claim: ID[, ID...]``. The test parses it with
``ast`` and looks at the test expression of each ``assert``. The rule, in four lines:

1. *Status names* are the names the cell assigns from an expression containing one of the four
   status strings (``status = "holds" if ... else ...``), the names passed as ``verdict``'s status
   argument, and the names assigned from ``stored_verdicts(...)`` (earlier verdicts).
2. Taint spreads forward: a name assigned from an expression that reads a status name is one too
   (``missing = [i for i in ids if i not in earlier]``).
3. *Constant names* are ALL_CAPS names and names the cell assigns only from literals.
4. An assert is *about a measurement* if its test reads no status name and reads at least one name
   that is neither a constant nor a builtin. A cell fails if none of its asserts is.

What the rule catches: asserts that restate the status (``(status == "holds") == cond``,
``status != "..." or cond``, ``status in (...)``), asserts on earlier verdicts, asserts on literals
only, and claim cells without an assert. What it cannot catch: an assert that reads a measured name
against a criterion too weak to fail (a sanity check such as ``not h.diverged`` or ``0 < r < 1.5``
on a quantity that is always in range), and an assert on a name computed in an earlier cell from a
status (taint is followed within the cell only). Those remain the referee's job.
"""
from __future__ import annotations

import ast
import builtins
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
STATUSES = ("holds", "holds approximately", "does not hold as written", "not shown at this scale")
BUILTINS = frozenset(dir(builtins))


def _loads(node):
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _stores(target):
    return {n.id for n in ast.walk(target) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def _has_status_string(node):
    return any(isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.startswith(STATUSES)
               for n in ast.walk(node))


def _calls(node, name):
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name
               for n in ast.walk(node))


def _is_literal(node):
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return False
    return True


def _assignments(tree):
    """(targets, value) for every assignment, in source order."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            out += [(t, node.value) for t in node.targets]
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)) and node.value is not None:
            out.append((node.target, node.value))
        elif isinstance(node, ast.NamedExpr):
            out.append((node.target, node.value))
    return sorted(out, key=lambda tv: (tv[1].lineno, tv[1].col_offset))


def status_names(tree):
    """The names of rule 1 and 2: statuses, earlier verdicts, and what is computed from them."""
    tainted = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "verdict":
            args = list(node.args[1:2]) + [k.value for k in node.keywords if k.arg == "status"]
            for a in args:
                if isinstance(a, ast.Name):
                    tainted.add(a.id)
    assignments = _assignments(tree)
    changed = True
    while changed:  # to a fixed point, so that taint reaches names assigned before their source
        changed = False
        for target, value in assignments:
            if (_has_status_string(value) or _calls(value, "stored_verdicts") or _loads(value) & tainted):
                new = _stores(target) - tainted
                if new:
                    tainted |= new
                    changed = True
    return tainted


def constant_names(tree):
    """The names of rule 3: ALL_CAPS, or assigned only from literals in this cell."""
    literal, other = set(), set()
    for target, value in _assignments(tree):
        (literal if _is_literal(value) else other).update(_stores(target))
    for node in ast.walk(tree):  # loop variables, and containers filled later (err[k] = ..., x.append)
        if isinstance(node, (ast.For, ast.comprehension)):
            other |= _stores(node.target)
        elif isinstance(node, (ast.Subscript, ast.Attribute)) and isinstance(node.value, ast.Name):
            if not isinstance(node.ctx, ast.Load) or isinstance(node, ast.Attribute):
                other.add(node.value.id)
    return (literal - other) | {n for n in _loads(tree) if n.isupper()}


def measured_asserts(source):
    """The asserts of a cell that are about a measurement (rule 4), as source text."""
    tree = ast.parse(source)
    status, constant = status_names(tree), constant_names(tree)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            names = _loads(node.test)
            if not names & status and names - status - constant - BUILTINS:
                out.append(ast.unparse(node.test))
    return out


def claim_cells(path):
    for index, cell in enumerate(json.loads(path.read_text())["cells"]):
        source = "".join(cell["source"])
        first = source.split("\n", 1)[0]
        if cell["cell_type"] == "code" and first.startswith("# claim:"):
            yield index, first[len("# claim:"):].strip(), source


def failing_cells(path):
    """Cells with asserts none of which is measured, and claims none of whose cells has one.

    A claim may spread over several cells (one trains and plots, the next asserts); a cell without
    any assert fails only if no other cell of its claim has a measured assert.
    """
    failing, measured, silent = [], set(), {}
    for index, ids, source in claim_cells(path):
        tree = ast.parse(source)
        has_assert = any(isinstance(n, ast.Assert) for n in ast.walk(tree))
        if measured_asserts(source):
            measured.update(i.strip() for i in ids.split(","))
        elif has_assert:
            failing.append(f"{path.name} cell {index} ({ids})")
        else:
            silent[index] = ids
    failing += [f"{path.name} cell {index} ({ids}): no assert, nor in another cell of its claim"
                for index, ids in silent.items() if not {i.strip() for i in ids.split(",")} & measured]
    return failing


# --- the rule on synthetic cells --------------------------------------------------------------

GOOD = """# claim: X-1
gap = measure()
status = "holds" if gap < 0.01 else "does not hold as written"
assert gap < 0.01 or status != "holds"
assert gap < 0.05  # fixed before the run
verdict("X-1", status, f"gap {gap}")
"""


@pytest.mark.parametrize("source", [
    # restating the status
    'gap = measure()\nstatus = "holds" if gap < 0.01 else "not shown at this scale"\n'
    'assert (status == "holds") == (gap < 0.01)\nverdict("X-1", status, "")',
    'gap = measure()\nstatus = "holds" if gap < 0.01 else "not shown at this scale"\n'
    'assert status == "holds" or not gap < 0.01\nverdict("X-1", status, "")',
    'gap = measure()\nstatus = pick(gap)\nassert status in ("holds", "holds approximately")\n'
    'verdict("X-1", status, "")',
    # a status chosen from a derived name: taint follows the assignment
    'gap = measure()\ns = "holds" if gap < 0.01 else "not shown at this scale"\nok = s == "holds"\n'
    'assert ok == (gap < 0.01)\nverdict("X-1", s, "")',
    # earlier verdicts exist
    'earlier = stored_verdicts("02.ipynb")\nmissing = [i for i in ("BN-1",) if i not in earlier]\n'
    'assert not missing\nverdict("X-1", "holds", "")',
    # literals and constants only
    'LIMIT = 3\nn = 2\nassert n < LIMIT\nverdict("X-1", "holds", "")',
])
def test_rule_rejects_asserts_that_cannot_fail(source):
    assert measured_asserts("# claim: X-1\n" + source) == []


def test_a_claim_without_any_measured_assert_fails(tmp_path):
    cells = [{"cell_type": "code", "source": "# claim: X-1\ngap = measure()\n", "metadata": {}},
             {"cell_type": "code", "source": "# claim: X-2\nv = measure()\nassert v < 1\n", "metadata": {}},
             {"cell_type": "code", "source": "# claim: X-2\nplot(v)\n", "metadata": {}}]
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": cells}))
    assert failing_cells(path) == ["nb.ipynb cell 0 (X-1): no assert, nor in another cell of its claim"]


def test_a_container_filled_later_is_measured():
    assert measured_asserts("# claim: X-1\nerr = {}\nerr['a'] = measure()\nassert err['a'] < 1\n")


def test_rule_accepts_an_assert_on_the_measurement():
    assert measured_asserts(GOOD) == ["gap < 0.05"]


def test_rule_cannot_catch_a_sanity_check():
    """Documented limit: a measured name under a criterion that cannot fail still passes."""
    cell = "# claim: X-1\nruns = train()\nassert not any(h.diverged for h in runs)\nverdict('X-1', 'holds', '')"
    assert measured_asserts(cell) == ["not any((h.diverged for h in runs))"]


def test_claim_cells_are_found():
    assert sum(1 for path in NOTEBOOKS for _ in claim_cells(path)) > 50


# --- the book ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_claim_cell_asserts_a_measurement(path):
    failing = failing_cells(path)
    assert not failing, "no assert reads a measured quantity in: " + "; ".join(failing)
