"""The README's example runs, and prints what the README says it prints."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from gradcheck import cli

ROOT = Path(__file__).resolve().parents[1]


def test_api_example_prints_what_the_readme_shows(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    match = re.search(
        r"```python\n(.*?)```\n\nprints \(this exact script, run with `python`\):\n\n"
        r"(?:<!-- .*? -->\n)?```\n(.*?)```",
        readme,
        re.S,
    )
    assert match, "README lost its API example"
    script, shown = match.groups()
    (tmp_path / "example.py").write_text(script)
    done = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == shown.strip()


def test_example_submissions_grade_as_documented(capsys) -> None:  # type: ignore[no-untyped-def]
    pattern = str(ROOT / "examples" / "submissions" / "*.py") + ":grads"
    assert cli.main(["check", pattern, "--task", "regression", "--examples", "10"]) == cli.EXIT_MISMATCH
    out = capsys.readouterr().out
    assert re.search(r"alice\.py:grads \[regression\]: PASS", out)
    assert re.search(r"bob\.py:grads \[regression\]: MISMATCH", out)
    assert re.search(r"carol\.py:grads: ERROR\nimporting `.*carol\.py` failed:\nTraceback", out)
    assert "a sum where a mean belongs: off by a factor N, the batch size; divide the sum over the samples by N" in out
