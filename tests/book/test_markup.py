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


NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
# A glued value is shown through its repr: a NumPy or PyTorch scalar would appear on the page as
# "np.float64(2.9)" or "tensor(2.9)". Glue Python numbers (float(...), .item()).
REPR_OF_AN_ARRAY = re.compile(r"^(np\.\w+\(|numpy\.\w+\(|tensor\(|array\()")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_glued_values_are_plain_numbers_not_array_reprs(path):
    bad = []
    for cell in json.loads(path.read_text(encoding="utf-8")).get("cells", []):
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            text = output.get("data", {}).get("application/papermill.record/text/plain", "")
            if name and REPR_OF_AN_ARRAY.match(text):
                bad.append(f"{name} = {text}")
    assert not bad, f"{path.name}: glued values that the page would show as a repr: {bad}"
