"""The README's example runs, and prints what the README says it prints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from docs.stable_output import differences
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
    assert not differences(shown, done.stdout), "\n".join(differences(shown, done.stdout))


def test_example_submissions_grade_as_documented(capsys) -> None:  # type: ignore[no-untyped-def]
    pattern = str(ROOT / "examples" / "submissions" / "*.py") + ":grads"
    assert cli.main(["check", pattern, "--task", "regression", "--examples", "10"]) == cli.EXIT_MISMATCH
    out = capsys.readouterr().out
    assert re.search(r"alice\.py:grads \[regression\]: PASS", out)
    assert re.search(r"bob\.py:grads \[regression\]: MISMATCH", out)
    assert re.search(r"carol\.py:grads: ERROR\nimporting `.*carol\.py` failed:\nTraceback", out)
    assert "a sum where a mean belongs: off by a factor N, the batch size; divide the sum over the samples by N" in out


def _dispatched_features() -> str:
    """NumPy's SIMD targets beyond its baseline that this CPU runs: the ones to turn off."""
    from numpy._core import _multiarray_umath as umath

    return " ".join(f for f in umath.__cpu_dispatch__ if umath.__cpu_features__.get(f))


def test_the_readme_example_agrees_with_numpys_simd_paths_narrowed(tmp_path: Path) -> None:
    """Another CPU, simulated: NumPy's vectorised exp and log turned off round the last digits differently,
    and the README's output still agrees with what it shows, to the digits every machine prints alike."""
    readme = (ROOT / "README.md").read_text()
    script, shown = re.search(
        r"```python\n(.*?)```\n\nprints.*?\n\n(?:<!-- .*? -->\n)?```\n(.*?)```", readme, re.S
    ).groups()  # type: ignore[union-attr]
    (tmp_path / "example.py").write_text(script)
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": _dispatched_features()}
    done = subprocess.run(
        [sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, check=False, env=env
    )
    assert done.returncode == 0, done.stderr
    assert not differences(shown, done.stdout), "\n".join(differences(shown, done.stdout))


REPORT = """\
  w2  (1, 2)  pass  (0, 1)  7.0280915204e-02  7.0280915204e-02  7.0280915204e-02 ± 5.2e-13  2.78e-17  3.95e-16  8.85e-14
  note: Taylor remainder shrinks like h^1.01 (as for a wrong gradient: 2 if right, 1 if wrong), 50 problems"""


@pytest.mark.parametrize(
    ("old", "new", "agree"),
    [
        ("2.78e-17", "1.39e-17", True),  # rounding error: another CPU's last digit
        ("8.85e-14", "8.84e-14", True),
        ("8.85e-14", "8.85e-12", False),  # a tolerance 100x wider is no rounding
        ("3.95e-16", "0.00e+00", True),  # both below the rounding floor
        ("7.0280915204e-02  7.0280915204e-02 ", "7.0280915204e-02  7.0281915204e-02 ", False),  # a value's 5th digit
        ("7.0280915204e-02  7.0280915204e-02 ", "7.0280915204e-02  7.0280915205e-02 ", True),  # its 11th
        ("h^1.01", "h^2.01", True),  # an estimate: within a factor of 10
        ("50 problems", "51 problems", False),  # a count is exact
        ("(0, 1)", "(1, 1)", False),  # an index is exact
        ("pass", "MISMATCH", False),  # the words are exact
        ("2.78e-17  3.95e-16", "2.78e-17 3.95e-16", True),  # a column's width follows its numbers
    ],
)
def test_outputs_agree_to_the_digits_every_machine_prints_alike(old: str, new: str, agree: bool) -> None:
    assert old in REPORT
    assert (not differences(REPORT, REPORT.replace(old, new, 1))) is agree
