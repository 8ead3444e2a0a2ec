"""The docs show what the code prints, and link only to what exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))


def test_quickstart_example_prints_what_the_page_shows(tmp_path: Path) -> None:
    page = (DOCS / "quickstart.md").read_text()
    match = re.search(
        r"```python\n(.*?)```\n\nprints \(this exact script, run with `python`.*?\n\n"
        r"(?:<!-- .*? -->\n)?```\n(.*?)```",
        page,
        re.S,
    )
    assert match, "docs/quickstart.md lost its API example"
    script, shown = match.groups()
    (tmp_path / "example.py").write_text(script)
    done = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == shown.strip()


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_images_in_the_docs_exist_and_come_with_their_command(page: Path) -> None:
    text = page.read_text()
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert (page.parent / image).is_file(), f"{page.name} shows {image}, which is missing"
        assert "gradcheck plot --out docs/img" in text, f"{page.name} shows {image} without the command that draws it"


def test_readme_links_point_at_files() -> None:
    readme = (ROOT / "README.md").read_text()
    targets = [t for t in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme) if "://" not in t]
    assert targets
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"
