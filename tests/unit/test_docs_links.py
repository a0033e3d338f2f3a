"""The README and docs/ link only to what exists: every relative link's file, and every
#anchor to a heading of its target (GitHub's slugs), so moving a section breaks a test,
not a reader's click."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.unit.helpers import load_text

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found, fence = set(), False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and line.startswith("#"):
            found.add(slug(line.lstrip("#")))
    return found


def links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_and_anchor_exists(page: Path) -> None:
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no file {file}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading with anchor #{anchor} in {file.name}")
    assert not broken, broken


def test_the_checker_finds_a_broken_anchor(tmp_path: Path) -> None:
    page = tmp_path / "a.md"
    page.write_text("# Title\n\n## Two words\n\n[ok](#two-words) [bad](#three)\n")
    assert links(page) == ["#two-words", "#three"]
    assert anchors(page) == {"title", "two-words"}


def test_the_readme_has_a_table_of_contents_and_a_first_state_file() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "## Contents" in readme[:3000]
    first = readme[: readme.index("## Contents")]
    block = first.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert len(block.splitlines()) <= 15 and "services:" in block
    loaded = load_text(block, "fleet.yaml")  # and it is a valid state file
    assert len(loaded.fleet.hosts) == 1 and len(loaded.fleet.services) == 1
