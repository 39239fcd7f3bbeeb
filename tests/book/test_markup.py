"""MyST markup that builds without a warning but reads wrongly on the page."""
from __future__ import annotations

import json
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "book").glob("*.ipynb")) + sorted((ROOT / "book").glob("*.md"))
# These directives take no title: text after `{note}` is glued to the first paragraph of the box.
TYPED = "attention|caution|danger|error|hint|important|note|seealso|tip|warning"
TITLED_TYPED = re.compile(r"^\s*(`{3,}|:{3,})\{(" + TYPED + r")\}[ \t]*\S.*$", re.M)


def _markdown(path: pathlib.Path) -> list[tuple[str, str]]:
    if path.suffix == ".md":
        return [("", path.read_text(encoding="utf-8"))]
    cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    return [(f"cell {i}: ", "".join(c.get("source", ""))) for i, c in enumerate(cells) if c.get("cell_type") == "markdown"]


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_boxes_with_a_title_use_the_admonition_directive(path):
    bad = [where + m.group(0).strip() for where, text in _markdown(path) for m in TITLED_TYPED.finditer(text)]
    assert not bad, (
        f"{path.name}: a {{note}}-style box takes no title, so this text runs into its first paragraph; "
        f"write `:::{{admonition}} Title` with `:class: note` instead: {bad}"
    )
