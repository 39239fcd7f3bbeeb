#!/usr/bin/env python3
"""The claims appendix: every claim of the ledger, the verdict its notebook measured, a link to the cell.

The ledger is ``book/claims_ledger.md``, a verbatim copy of the project's shared ``claims.md``
(``tests/book/test_claims.py`` checks that the copy is current when ``../shared/claims.md`` exists).
A *claim cell* is a code cell whose first line is ``# claim: BN-4`` (or ``# claim: GRP-5, GRP-10``;
a cell tag ``claim:BN-4`` also counts). Its stored output holds one line per ID, printed by
:func:`normlib.book.notebook.verdict`::

    verdict BN-4: does not hold as written | mean 0.0000, variance 1.0000: the source swapped them

and the markdown cell right before it ends with one MyST target line per ID, ``(claim-bn-4)=``,
which the appendix links to. Nothing of the table is typed by hand: it is read from the ledger and
from the notebooks' stored outputs (nbval proves those current), so it cannot disagree with them.

Two uses:

* a Sphinx extension (``sphinx.local_extensions`` in ``_config.yml``): when ``book/claims.md`` is
  read, its marker line ``% GENERATED: claims ledger`` is replaced by the generated tables. A claim
  that no cell checks yet is listed as *not checked* on the page; it does not break the build, so
  the site can be built while chapters are written.
* a command: ``python tools/claims_appendix.py`` prints one line per claim and every problem;
  ``--check`` exits with status 1 when any claim is unchecked or malformed
  (``tests/book/test_claims.py`` makes the same check, so ``make test`` fails on it).
"""
from __future__ import annotations

import collections
import dataclasses
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
LEDGER = ROOT / "book" / "claims_ledger.md"
BOOK = ROOT / "book"
PAGE = "book/claims"  # the Sphinx docname of the appendix page
MARKER = "% GENERATED: claims ledger"

sys.path.insert(0, str(ROOT))
from normlib.book.notebook import VERDICTS  # noqa: E402  (the statuses the claim cells may print)

ROW = re.compile(r"^\|\s*([A-Z]+-\d+)\s*\|(.*)\|\s*$")
SECTION = re.compile(r"^##\s+(?:Chapter:\s*)?(.+?)\s*$")
SOURCE_FILE = re.compile(r"`(\d{3})`\s*=\s*(\S+?\.txt)\s*\(([^)]*)\)")
# "# claim: GRP-5, GRP-10" and "# claim: INV-6 (continued: ...)": the IDs, then any comment.
CLAIM_LINE = re.compile(r"^\s*#\s*claims?\s*:\s*([A-Za-z]+-\d+(?:\s*,\s*[A-Za-z]+-\d+)*)", re.I)
VERDICT_LINE = re.compile(r"^verdict ([A-Z]+-\d+): (.+?) \| (.*)$")
TARGET_LINE = re.compile(r"^\s*\(claim-([a-z]+-\d+)\)=\s*$")
ID_TOKEN = re.compile(r"^[A-Z]+-\d+$")


@dataclasses.dataclass
class Claim:
    id: str
    source: str  # the ledger's "from" column: source numbers and/or a paper
    text: str
    section: str


@dataclasses.dataclass
class Check:
    """Where a claim is checked and what the cell printed."""

    notebook: pathlib.Path
    cell: int  # index in the notebook's cells
    status: str | None = None
    evidence: str | None = None
    has_target: bool = False


@dataclasses.dataclass
class Ledger:
    claims: list[Claim]
    sources: dict[str, tuple[str, str]]  # "001" -> (file name, topic)
    checks: dict[str, Check]
    problems: dict[str, list[str]]  # claim ID (or "notebooks") -> what is wrong

    def verdict_counts(self) -> collections.Counter:
        return collections.Counter(self.checks[c.id].status for c in self.claims if self.is_checked(c.id))

    def is_checked(self, claim_id: str) -> bool:
        return claim_id in self.checks and self.checks[claim_id].status is not None and not self.problems.get(claim_id)


def read_ledger(path: pathlib.Path = LEDGER) -> tuple[list[Claim], dict[str, tuple[str, str]]]:
    claims, section = [], ""
    text = path.read_text(encoding="utf-8")
    for line in text.splitlines():
        if m := SECTION.match(line):
            section = m.group(1)
        elif m := ROW.match(line):
            source, claim = (part.strip() for part in m.group(2).split("|", 1))
            claims.append(Claim(m.group(1), source, claim, section))
    sources = {num: (name, topic) for num, name, topic in SOURCE_FILE.findall(text)}
    return claims, sources


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _cell_ids(cell) -> list[str]:
    """The IDs a code cell declares: its first non-empty line ``# claim: ...`` and tags ``claim:ID``."""
    ids = []
    for tag in cell.get("metadata", {}).get("tags", []):
        if tag.lower().startswith("claim:"):
            ids.append(tag.split(":", 1)[1].strip().upper())
    lines = [line for line in _source(cell).splitlines() if line.strip()]
    if lines and (m := CLAIM_LINE.match(lines[0])):
        ids.extend(token.upper() for token in re.split(r"[,\s]+", m.group(1)) if token)
    return list(dict.fromkeys(ids))


def _stdout_lines(cell) -> list[str]:
    """What a cell printed, and the plain-text form of what it displayed (a verdict's box)."""
    lines = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stdout":
            text = out.get("text", "")
        elif out.get("output_type") == "display_data":
            text = out.get("data", {}).get("text/plain", "")
        else:
            continue
        lines.extend(("".join(text) if isinstance(text, list) else text).splitlines())
    return lines


def collect(book: pathlib.Path = BOOK, ledger: pathlib.Path = LEDGER) -> Ledger:
    """Read the ledger and every notebook of ``book``; never raises for a missing or broken claim."""
    claims, sources = read_ledger(ledger)
    known = {c.id for c in claims}
    checks: dict[str, Check] = {}
    problems: dict[str, list[str]] = collections.defaultdict(list)

    cells_of: dict[str, list[dict]] = collections.defaultdict(list)  # ID -> the cells that declare it
    for path in sorted(book.glob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        cells = nb.get("cells", [])
        for i, cell in enumerate(cells):
            if cell.get("cell_type") != "code":
                continue
            where = f"{path.relative_to(book.parent)} cell {i}"
            ids = _cell_ids(cell)
            verdicts = collections.defaultdict(list)
            for line in _stdout_lines(cell):
                if m := VERDICT_LINE.match(line):
                    verdicts[m.group(1)].append((m.group(2), m.group(3)))
            for vid in sorted(set(verdicts) - set(ids)):
                problems[vid if vid in known else "notebooks"].append(
                    f"{where} prints its verdict but does not start with `# claim: {vid}` "
                    "(start it so, or print the verdict in the claim cell)"
                )
            targets = set()
            if i > 0 and cells[i - 1].get("cell_type") == "markdown":
                targets = {m.group(1).upper() for line in _source(cells[i - 1]).splitlines() if (m := TARGET_LINE.match(line))}
            for cid in ids:
                if not ID_TOKEN.match(cid) or cid not in known:
                    problems["notebooks"].append(f"{where} declares {cid!r}, which is not an ID of the ledger")
                    continue
                cells_of[cid].append({
                    "path": path, "index": i, "where": where, "verdicts": verdicts.get(cid, []),
                    "assert": re.search(r"\bassert\b", _source(cell)) is not None,
                    "target": cid in targets,
                    "error": any(o.get("output_type") == "error" for o in cell.get("outputs", [])),
                })

    for claim in claims:
        cid, declared = claim.id, cells_of.get(claim.id, [])
        if not declared:
            problems[cid].append("no notebook cell checks it (no cell starts with `# claim: " + cid + "`)")
            continue
        with_verdict = [c for c in declared if c["verdicts"]]
        first = (with_verdict or declared)[0]
        check = checks[cid] = Check(first["path"], first["index"], has_target=any(c["target"] for c in declared))
        lines = [v for c in with_verdict for v in c["verdicts"]]
        if not lines:
            problems[cid].append(f"{first['where']} names it but its stored output has no line `verdict {cid}: ...`")
        elif len(lines) > 1:
            problems[cid].append(f"{len(lines)} verdict lines for {cid} (" + ", ".join(c["where"] for c in with_verdict) + ")")
        else:
            status, evidence = lines[0]
            if status not in VERDICTS:
                problems[cid].append(f"{first['where']}: verdict {status!r} is not one of {', '.join(VERDICTS)}")
            check.status, check.evidence = status, evidence
            if not first["assert"]:
                problems[cid].append(f"{first['where']} prints the verdict but asserts nothing")
        for c in declared:
            if c["error"]:
                problems[cid].append(f"{c['where']} stored an error output")
        if not check.has_target:
            problems[cid].append(
                f"the markdown cell before {first['where']} does not end with the target line `(claim-{cid.lower()})=`"
            )
    return Ledger(claims, sources, checks, {k: v for k, v in problems.items() if v})


# ----------------------------------------------------------------------------------------- page


def _escape(text: str) -> str:
    """Measured evidence is plain text: show it literally inside a MyST table cell."""
    return re.sub(r"([\\`*_\[\]<>$|{}#~^])", r"\\\1", text)


BADGES = {
    "holds": "{bdg-success}`holds`",
    "holds approximately": "{bdg-warning}`holds approximately`",
    "does not hold as written": "{bdg-danger}`does not hold as written`",
    "not shown at this scale": "{bdg-secondary}`not shown at this scale`",
    None: "{bdg-muted}`not checked yet`",
}


RULES = [
    "**A claim with several parts is as strong as its weakest part.** One part shown and one not is "
    "{bdg-secondary}`not shown at this scale`; one part false is {bdg-danger}`does not hold as written`; "
    "the measured column says which part is which. {bdg-warning}`holds approximately` means "
    "\"true within the bound printed beside it\", never \"partly true\".",
    "",
    "**The assert tests the measured quantity against a criterion fixed before the run** (a margin, a "
    "bound, a seed range), so that another outcome of the run would fail it. An assert that restates "
    "the chosen verdict, or checks only that earlier verdicts exist, is no check; "
    "`tests/book/test_asserts.py` fails on a claim cell with no assert on a measured quantity.",
    "",
]


def render(ledger: Ledger) -> str:
    """The generated part of the appendix page, in MyST markdown: the judging rules, then the table."""
    counts = ledger.verdict_counts()
    n = len(ledger.claims)
    unchecked = [c.id for c in ledger.claims if not ledger.is_checked(c.id)]
    out = [
        *RULES,
        f"The ledger has **{n} claims**. The notebooks measured: "
        + ", ".join(f"{BADGES[v]} {counts.get(v, 0)}" for v in VERDICTS)
        + (f", {BADGES[None]} {len(unchecked)}." if unchecked else "."),
        "",
    ]
    if unchecked:
        out += [
            ":::{warning}",
            f"{len(unchecked)} of the {n} claims have no complete checking cell yet: "
            + ", ".join(unchecked)
            + ". The test command (`make test`) fails until every claim is checked.",
            ":::",
            "",
        ]
    by_section: dict[str, list[Claim]] = collections.OrderedDict()
    for claim in ledger.claims:
        by_section.setdefault(claim.section, []).append(claim)
    out += ["| part of the ledger | claims | " + " | ".join(VERDICTS) + " | not checked yet |",
            "|---|--:|" + "--:|" * (len(VERDICTS) + 1)]
    for section, claims in by_section.items():
        tally = collections.Counter(ledger.checks[c.id].status if ledger.is_checked(c.id) else None for c in claims)
        out.append(f"| {{ref}}`{section[:1].upper()}{section[1:]} <{_slug(section)}>` | {len(claims)} | "
                   + " | ".join(str(tally.get(v, 0)) for v in (*VERDICTS, None)) + " |")
    out.append("")
    if ledger.sources:
        out += ["## The source notes", "", "| number | file | topic |", "|---|---|---|"]
        out += [f"| {num} | `{name}` | {topic} |" for num, (name, topic) in sorted(ledger.sources.items())]
        out += [""]

    for section, claims in by_section.items():
        out += [f"({_slug(section)})=", f"## {section[:1].upper()}{section[1:]}", ""]
        notebooks = collections.Counter(ledger.checks[c.id].notebook for c in claims if c.id in ledger.checks)
        if notebooks:
            links = ", ".join(f"{{doc}}`{_docpath(nb)}`" for nb, _ in notebooks.most_common())
            out += [f"Checked in {links}.", ""]
        out += [
            "::::{list-table}",
            ":header-rows: 1",
            ":widths: 14 66 20",
            ":class: claims-table",
            "",
            "* - claim",
            "  - statement, and what the checking cell measured",
            "  - verdict",
        ]
        for claim in claims:
            out += _row(ledger, claim)
        out += ["::::", ""]
    return "\n".join(out)


def _slug(section: str) -> str:
    return "claims-" + re.sub(r"[^a-z0-9]+", "-", section.lower()).strip("-")


def _row(ledger: Ledger, claim: Claim) -> list[str]:
    """One row of a list-table: ID (linked to its cell) and source | statement and measurement | verdict."""
    check = ledger.checks.get(claim.id)
    if check is not None and check.has_target:
        cid = f"{{ref}}`{claim.id} <claim-{claim.id.lower()}>`"
    elif check is not None:
        cid = f"{{doc}}`{claim.id} <{_docpath(check.notebook)}>`"
    else:
        cid = f"**{claim.id}**"
    status = check.status if check is not None and check.status in VERDICTS else None
    cell = [claim.text]
    if status:
        cell.append(f"*Measured:* {_escape(check.evidence)}")
    if not ledger.is_checked(claim.id):
        cell.append("**Incomplete:** " + "; ".join(ledger.problems.get(claim.id, [])) + ".")
    lines = [f"* - {cid}", "", f"    from {claim.source}", f"  - {cell[0]}"]
    for paragraph in cell[1:]:
        lines += ["", f"    {paragraph}"]
    lines.append(f"  - {BADGES[status]}")
    return lines


def _docpath(notebook: pathlib.Path) -> str:
    """A {doc} target relative to the source directory (the notebooks live in book/)."""
    return f"/book/{notebook.stem}"


# ----------------------------------------------------------------------------- Sphinx extension


def _on_source_read(app, docname, source):
    if docname != PAGE:
        return
    srcdir = pathlib.Path(app.srcdir)
    book, ledger_path = srcdir / "book", srcdir / "book" / "claims_ledger.md"
    if MARKER not in source[0]:
        from sphinx.errors import ExtensionError

        raise ExtensionError(f"{PAGE}.md must contain the marker line {MARKER!r}")
    ledger = collect(book, ledger_path)
    # Re-read the page whenever the ledger or a notebook changes (incremental builds).
    app.env.note_dependency(str(ledger_path))
    for nb in sorted(book.glob("*.ipynb")):
        app.env.note_dependency(str(nb))
    source[0] = source[0].replace(MARKER, render(ledger))


def setup(app):
    app.connect("source-read", _on_source_read)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}


# ---------------------------------------------------------------------------------------- CLI


def main(argv: list[str]) -> int:
    check = "--check" in argv
    ledger = collect()
    for claim in ledger.claims:
        c = ledger.checks.get(claim.id)
        if ledger.is_checked(claim.id):
            print(f"{claim.id:8s} {c.status:26s} {c.notebook.name} cell {c.cell}")
        else:
            print(f"{claim.id:8s} {'NOT CHECKED':26s} " + "; ".join(ledger.problems[claim.id]))
    for problem in ledger.problems.get("notebooks", []):
        print(f"notebooks: {problem}")
    counts = ledger.verdict_counts()
    unchecked = [c.id for c in ledger.claims if not ledger.is_checked(c.id)]
    print(
        f"{len(ledger.claims)} claims: "
        + ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS)
        + f", {len(unchecked)} not checked"
    )
    if check and (unchecked or ledger.problems.get("notebooks")):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
