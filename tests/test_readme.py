"""The README's reading order of normlib states the modules' true line counts."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_reading_table_lists_every_library_module_with_its_line_count():
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| (\d) \| `(normlib/\w+\.py)` \| (\d+) \|", readme, flags=re.M)
    assert rows, "no reading table in README.md"
    listed = {path for _, path, _ in rows}
    modules = {f"normlib/{p.name}" for p in (ROOT / "normlib").glob("*.py") if p.name != "__init__.py"}
    assert listed == modules
    counts = {path: int(n) for _, path, n in rows}
    for path, n in counts.items():
        assert len((ROOT / path).read_text().splitlines()) == n, path
    core, grad, fused = (counts[f"normlib/{m}.py"] for m in ("core", "grad", "fused"))
    interfaces = sum(counts[f"normlib/{m}.py"] for m in ("functional", "distributed", "nn"))
    assert f"first {core} lines" in readme and f"{core + grad:,} lines" in readme
    assert f"adds {fused}" in readme and f"interfaces {interfaces:,}" in readme
