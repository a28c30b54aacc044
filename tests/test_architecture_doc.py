"""docs/architecture.md stays true to the code: every path it names exists, and every module and
package under playground/ and storage/ has a row in its Layout table."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
TOP = ("app.py", "playground/", "storage/", "tests/", "bench/", "presets/", "docs/", ".ci/")


def named_paths(text: str) -> set[str]:
    """Paths in backticks that start at the repository's root (globs and placeholders left out)."""
    found = set()
    for token in re.findall(r"`([^`\s]+)`", text):
        token = token.rstrip(".,:;")
        if token.startswith(TOP) and not re.search(r"[*<>{}]", token):
            found.add(token)
    return found


def layout_rows(text: str) -> set[str]:
    section = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE))


def test_every_path_the_document_names_exists():
    missing = sorted(p for p in named_paths(DOC.read_text(encoding="utf-8")) if not (ROOT / p).exists())
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_every_module_and_package_has_a_layout_row():
    rows = layout_rows(DOC.read_text(encoding="utf-8"))
    expected = {f"playground/{p.name}" for p in (ROOT / "playground").glob("*.py") if p.name != "__init__.py"}
    expected |= {f"playground/{p.name}/" for p in (ROOT / "playground").iterdir() if (p / "__init__.py").exists()}
    expected |= {f"storage/{p.name}" for p in (ROOT / "storage").glob("*.py") if p.name != "__init__.py"}
    missing = sorted(expected - rows)
    assert not missing, f"docs/architecture.md's Layout table has no row for: {missing}"


def test_the_layout_table_is_one_table():
    section = DOC.read_text(encoding="utf-8").split("## Layout", 1)[1].split("\n## ", 1)[0]
    lines = section.strip().splitlines()
    table = [i for i, line in enumerate(lines) if line.startswith("|")]
    assert table == list(range(table[0], table[-1] + 1)), "a blank or other line splits the Layout table"
    rows = [line.split("|")[1].strip() for line in lines if line.startswith("| `")]
    assert len(rows) == len(set(rows)), "a path has two rows in the Layout table"
