"""The claims ledger and its appendix: every claim of the ledger is checked by a notebook cell.

Run by ``make test-content`` (the last step of ``make test``). While chapters are being written the
last test fails and lists what is missing; the site itself still builds (the appendix page shows
those claims as "not checked yet").
"""
from __future__ import annotations

import json
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED_LEDGER = ROOT.parent / "shared" / "claims.md"
SHARED_MODERN = ROOT.parent / "shared" / "claims-modern.md"

sys.path.insert(0, str(ROOT / "tools"))
import claims_appendix  # noqa: E402  (tools/ is not a package)

LEDGER = """# A ledger

## Chapter: batch things
| ID | from | claim |
|---|---|---|
| BN-1 | 001 | Means are zero. |
| BN-2 | 002, a paper | Variances are one. |
| BN-3 | 001 | Nobody checks this one. |
"""


def _code(source, stdout="", tags=()):
    outputs = [{"output_type": "stream", "name": "stdout", "text": stdout}] if stdout else []
    return {"cell_type": "code", "source": source, "metadata": {"tags": list(tags)}, "outputs": outputs,
            "execution_count": 1}


def _markdown(source):
    return {"cell_type": "markdown", "source": source, "metadata": {}}


def _book(tmp_path, cells):
    book = tmp_path / "book"
    book.mkdir()
    (book / "claims_ledger.md").write_text(LEDGER, encoding="utf-8")
    nb = {"cells": [_markdown("# Batch things\n")] + cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (book / "02_bn.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    return claims_appendix.collect(book, book / "claims_ledger.md")


def test_the_ledger_copy_in_the_repository_equals_the_shared_ledger():
    """The book's ledger is the shared ``claims.md`` verbatim, then, chapter by chapter as they land,
    sections of ``claims-modern.md`` (its ``## Chapter:`` headings and rows, word for word)."""
    if not SHARED_LEDGER.exists():
        pytest.skip(f"{SHARED_LEDGER} is not beside this clone; nothing to compare the copy with")
    copy = (ROOT / "book" / "claims_ledger.md").read_text(encoding="utf-8")
    first = SHARED_LEDGER.read_text(encoding="utf-8")
    assert copy.startswith(first), (
        f"book/claims_ledger.md does not start with {SHARED_LEDGER} verbatim: copy it again "
        f"and re-append the sections of {SHARED_MODERN.name} whose chapters have landed"
    )
    rest = [line for line in copy[len(first):].splitlines() if line.strip()]
    modern = SHARED_MODERN.read_text(encoding="utf-8").splitlines() if SHARED_MODERN.exists() else []
    foreign = [line for line in rest if line not in modern or not (line.startswith("## Chapter:") or line.startswith("|"))]
    assert not foreign, f"lines of book/claims_ledger.md that are not rows or headings of {SHARED_MODERN.name}: {foreign}"
    ids = [m.group(1) for line in rest if (m := claims_appendix.ROW.match(line))]
    assert len(ids) == len(set(ids)), f"a claim appears twice in book/claims_ledger.md: {ids}"


def test_a_claim_cell_with_target_assert_and_verdict_line_is_checked(tmp_path):
    ledger = _book(tmp_path, [
        _markdown("Means first.\n\n(claim-bn-1)=\n(claim-bn-2)="),
        _code("# claim: BN-1, BN-2\nassert True\n",
              "mean 0.0\nverdict BN-1: holds | |mean| < 1e-7\n"
              "verdict BN-2: does not hold as written | variance 0.99: the unbiased one is 1\n"),
    ])
    assert [c.id for c in ledger.claims] == ["BN-1", "BN-2", "BN-3"]
    assert ledger.claims[1].source == "002, a paper" and ledger.claims[1].section == "batch things"
    assert ledger.is_checked("BN-1") and ledger.is_checked("BN-2")
    assert ledger.checks["BN-1"].status == "holds" and ledger.checks["BN-1"].evidence == "|mean| < 1e-7"
    assert ledger.checks["BN-2"].status == "does not hold as written"
    assert ledger.problems == {"BN-3": ["no notebook cell checks it (no cell starts with `# claim: BN-3`)"]}
    page = claims_appendix.render(ledger)
    assert "{ref}`BN-1 <claim-bn-1>`" in page and "\\|mean\\| \\< 1e-7" in page
    assert "{bdg-danger}`does not hold as written`" in page and "{bdg-muted}`not checked yet`" in page
    assert "as strong as its weakest part" in page and "criterion fixed before the run" in page


def test_a_claim_cell_without_verdict_target_or_assert_is_reported(tmp_path):
    ledger = _book(tmp_path, [
        _markdown("No target here."),
        _code("# claim: BN-1\nprint(1)\n", "verdict BN-1: holds | fine\n"),
        _code("# claim: BN-2\nassert True\n"),
        _code("x = 1\n", "verdict BN-3: holds | printed by a cell that does not declare it\n"),
        _code("# claim: BN-99\nassert True\n"),
    ])
    assert not any(ledger.is_checked(c.id) for c in ledger.claims)
    assert any("asserts nothing" in p for p in ledger.problems["BN-1"])
    assert any("target line `(claim-bn-1)=`" in p for p in ledger.problems["BN-1"])
    assert any("has no line `verdict BN-2: ...`" in p for p in ledger.problems["BN-2"])
    assert any("does not start with `# claim: BN-3`" in p for p in ledger.problems["BN-3"])
    assert any("'BN-99'" in p for p in ledger.problems["notebooks"])


def test_a_verdict_may_come_from_a_later_cell_that_also_names_the_claim(tmp_path):
    ledger = _book(tmp_path, [
        _markdown("(claim-bn-1)="),
        _code("# claim: BN-1\nassert True\n", "a table\n"),
        _code("# claim: BN-1 (continued: the verdict)\nassert True\n", "verdict BN-1: holds approximately | within 1e-3\n"),
    ])
    assert ledger.is_checked("BN-1") and ledger.checks["BN-1"].status == "holds approximately"


def test_a_verdict_displayed_as_a_box_is_read_from_its_plain_text_form(tmp_path):
    cell = _code("# claim: BN-1\nassert True\n")
    cell["outputs"] = [{"output_type": "display_data", "metadata": {}, "data": {
        "text/plain": "verdict BN-1: not shown at this scale | 2 seeds, differences within the seed spread",
        "text/markdown": ":::{admonition} BN-1: not shown at this scale\n:::\n"}}]
    ledger = _book(tmp_path, [_markdown("(claim-bn-1)="), cell])
    assert ledger.is_checked("BN-1") and ledger.checks["BN-1"].status == "not shown at this scale"
    assert "{bdg-secondary}`not shown at this scale`" in claims_appendix.render(ledger)


def test_the_appendix_page_keeps_its_marker():
    assert claims_appendix.MARKER in (ROOT / "book" / "claims.md").read_text(encoding="utf-8")


def test_every_claim_of_the_ledger_is_checked_by_a_notebook_cell():
    """The book's promise: each claim has a cell that asserts it and prints its measured verdict."""
    ledger = claims_appendix.collect()
    problems = [f"{cid}: {'; '.join(p)}" for cid, p in ledger.problems.items()]
    assert not problems, f"{len(problems)} claims are not (correctly) checked:\n" + "\n".join(problems)
