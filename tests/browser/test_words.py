"""The built pages speak to readers, not of the test harness.

Reproducibility is the tests' business: the chapters' prose and outputs must not talk about CI,
nbval, rounding paths, reference kernels or earlier versions of a page (the README does). The last bits
of floating point may be named where a chaotic run is the subject. The code a
reader is shown is not scanned: a comment there is the code's own business.
"""
from __future__ import annotations

import re

import pytest
from bs4 import BeautifulSoup

HARNESS = re.compile(
    r"nbval|continuous integration|\bCI\b|rounding paths?|(?:scalar )?reference kernels?"
    r"|earlier version of this (?:page|chapter)|strict mode",
    re.IGNORECASE,
)


def _pages(site):
    return sorted((site / "book").glob("*.html"))


def test_no_page_speaks_of_the_test_harness(site):
    found = []
    for page in _pages(site):
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
        article = soup.find("article") or soup
        for hidden in article.select("div.cell_input, script, style, .MathJax, .math"):
            hidden.decompose()
        text = " ".join(article.get_text(" ").split())
        for m in HARNESS.finditer(text):
            found.append(f"{page.name}: …{text[max(0, m.start() - 60):m.end() + 60]}…")
    assert not found, "pages that speak of the test harness (say it in the README instead):\n" + "\n".join(found)


@pytest.mark.parametrize("text, bad", [("nbval re-executes", True), ("the CI run", True),
                                        ("under both rounding paths", True), ("CIFAR and ICS", False),
                                        ("an earlier version of this chapter", True), ("the reference", False)])
def test_the_word_list_catches_what_it_should(text, bad):
    assert bool(HARNESS.search(text)) == bad
