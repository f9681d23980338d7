"""The docs match the repository: README links every doc, and every repository path a doc cites
exists."""

from __future__ import annotations

import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
DOCS = sorted((REPO / "docs").glob("*.md"))
#: A path into the repository as docs write it: wasp/..., tests/..., bench/..., docs/... (and
#: shared/..., which is not in the repository: a doc must not send a reader there)
CITED = re.compile(r"(?<![\w./-])((?:wasp|tests|bench|docs|shared)/[\w./-]*\w\.(?:py|md|toml|txt|html|json))\b")


def test_readme_links_every_doc():
    readme = (REPO / "README.md").read_text()
    missing = [d.name for d in DOCS if f"(docs/{d.name})" not in readme]
    assert not missing, f"README.md does not link {missing}"


@pytest.mark.parametrize("doc", [REPO / "README.md", *DOCS], ids=lambda p: p.name)
def test_every_cited_path_exists(doc):
    missing = sorted({m for m in CITED.findall(doc.read_text()) if not (REPO / m).exists()})
    assert not missing, f"{doc.name} cites files that are not in the repository: {missing}"


def test_the_path_check_can_fail():
    assert CITED.findall("see `wasp/nowhere/gone.py` and docs/x.md, not mywasp/a.py") == [
        "wasp/nowhere/gone.py", "docs/x.md"]
