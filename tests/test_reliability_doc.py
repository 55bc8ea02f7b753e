"""docs/RELIABILITY.md maps every hostile-input case to its test: each test it names must exist."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_TEST_REF = re.compile(r"(tests/test_\w+\.py)::(test_\w+)")


def _defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def test_every_test_named_in_reliability_doc_exists():
    text = (REPO / "docs" / "RELIABILITY.md").read_text(encoding="utf-8")
    references = _TEST_REF.findall(text)
    assert len(references) >= 60  # one or more per case
    missing = [f"{file}::{name}" for file, name in references
               if not (REPO / file).is_file() or name not in _defined_tests(REPO / file)]
    assert not missing, f"docs/RELIABILITY.md names tests that do not exist: {missing}"


def test_every_case_row_names_a_test():
    text = (REPO / "docs" / "RELIABILITY.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines()
            if line.startswith("| ") and not line.startswith(("| case", "| ---"))]
    assert len(rows) >= 50
    assert [row for row in rows if not _TEST_REF.search(row)] == []
