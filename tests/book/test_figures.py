"""Figures look alike across the book: one style (normlib.book.notebook.setup), one range of sizes.

The site shows a figure at its natural size when it fits the text column (676 px in a 1280 px
window, 790 px in a wider one) and shrinks it otherwise, shrinking its 10 pt labels with it. Keeping
every figure at most ``MAX_WIDTH_PX`` wide (9 in at setup()'s 100 dpi) keeps the labels of every
chapter at 7.5 pt or more in a 1280 px window; a figure that needs more room should be split, or
its panels stacked, instead.
"""
from __future__ import annotations

import base64
import json
import pathlib
import re
import struct

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
MAX_WIDTH_PX = 900
# Style belongs to setup(): a notebook that sets its own rcParams, style sheet or dpi drifts from the rest.
OWN_STYLE = re.compile(r"rcParams|\bmpl\.rc\(|\bplt\.rc\(|style\.use\(|\bdpi\s*=|\bsns\.set")


def _png_size(b64: str) -> tuple[int, int]:
    head = base64.b64decode(b64[:64])  # 8-byte signature, then the IHDR chunk: width, height
    return struct.unpack(">II", head[16:24])


def _cells(nb_path):
    return json.loads(nb_path.read_text(encoding="utf-8")).get("cells", [])


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_figures_fit_the_text_column(nb_path):
    wide = []
    for i, cell in enumerate(_cells(nb_path)):
        for out in cell.get("outputs", []):
            png = out.get("data", {}).get("image/png")
            if png:
                width, height = _png_size(png if isinstance(png, str) else "".join(png))
                if width > MAX_WIDTH_PX:
                    wide.append(f"cell {i}: {width}x{height} px")
    assert not wide, (
        f"{nb_path.name}: figures wider than {MAX_WIDTH_PX} px ({MAX_WIDTH_PX / 100} in at 100 dpi) are shrunk "
        f"on the page, and their labels with them: {wide}"
    )


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_leave_the_figure_style_to_setup(nb_path):
    own = []
    for i, cell in enumerate(_cells(nb_path)):
        if cell.get("cell_type") == "code":
            src = "".join(cell.get("source", ""))
            own += [f"cell {i}: {line.strip()}" for line in src.splitlines() if OWN_STYLE.search(line)]
    assert not own, f"{nb_path.name} sets its own figure style (normlib.book.notebook.setup() does that): {own}"


@pytest.mark.parametrize("nb_path", [p for p in NOTEBOOKS if p.name[:2].isdigit()], ids=lambda p: p.name)
def test_every_chapter_shows_a_figure(nb_path):
    figures = sum(1 for cell in _cells(nb_path) for out in cell.get("outputs", []) if "image/png" in out.get("data", {}))
    assert figures, f"{nb_path.name} has no figure among its stored outputs"
