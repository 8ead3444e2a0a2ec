"""The autograder on a textbook's NumPy backprop (examples/textbook/).

The network is written as the classic textbooks write it (a per-sample loop,
column-vector biases, a list of layers, cost classes with ``delta()``), in a
module that the graded file imports from beside it.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import pytest

from gradcheck import cli

TEXTBOOK = Path(__file__).resolve().parents[1] / "examples" / "textbook"


@pytest.fixture(scope="module")
def graded() -> str:
    """What `gradcheck check 'examples/textbook/grads*.py:grads'` prints (both tasks, 10 problems each)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["check", f"{TEXTBOOK}/grads*.py:grads", "--examples", "10"])
    assert code == cli.EXIT_MISMATCH, out.getvalue()
    return out.getvalue()


def test_the_cross_entropy_version_passes(graded: str) -> None:
    assert f"{TEXTBOOK}/grads.py:grads [regression]: PASS on 10 problems" in graded
    assert f"{TEXTBOOK}/grads.py:grads [classification]: PASS on 10 problems" in graded


@pytest.mark.parametrize(
    ("task", "mistake"),
    [
        (
            "classification",
            "an extra factor sigma'(z2) = a2 (1 - a2) in the output error: with log loss the sigmoid's slope "
            "cancels, so delta2 = a2 - y, not (a2 - y) a2 (1 - a2) as for squared error; drop the factor "
            '(docs/derivation.md, "The output error"); confirmed by recomputation on batches of 5 and 7',
        ),
        (
            "regression",
            "an extra factor sigma'(z2) in the output error: this output is linear (a2 = z2, da2/dz2 = 1), so "
            "delta2 = a2 - y, not (a2 - y) sigma'(z2) as for a sigmoid output; drop the factor "
            '(docs/derivation.md, "The output error"); confirmed by recomputation on batches of 5 and 7',
        ),
    ],
)
def test_the_quadratic_cost_delta_gets_the_output_error_diagnosis(graded: str, task: str, mistake: str) -> None:
    section = graded.split(f"{TEXTBOOK}/grads_quadratic.py:grads [{task}]: MISMATCH")[1].split("reproduce:")[0]
    diagnosis = section.split("diagnosis, confirmed on")[1]
    for name in ("w1", "b1", "w2", "b2"):
        assert f"\n  {name}: {mistake}\n" in diagnosis
    assert "divided by N" not in graded
    assert "unclassified" not in graded


def test_biases_returned_as_columns_are_a_shape_mismatch_with_the_values_right(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(TEXTBOOK / "network.py", tmp_path / "network.py")
    source = (TEXTBOOK / "grads.py").read_text()
    columns = source.replace('"b1": nabla_b[0].ravel()', '"b1": nabla_b[0]').replace(
        '"b2": nabla_b[1].ravel()', '"b2": nabla_b[1]'
    )
    assert columns != source
    (tmp_path / "grads.py").write_text(columns)
    code = cli.main(["check", f"{tmp_path}/grads.py:grads", "--task", "classification", "--examples", "5"])
    out = capsys.readouterr().out
    assert code == cli.EXIT_MISMATCH, out
    diagnosis = out.split("diagnosis, confirmed on")[1]
    assert "\n  b1: wrong shape (3, 1), expected (3,); the values are right once reshaped\n" in diagnosis
    assert "\n  b2: wrong shape (1, 1), expected (1,); the values are right once reshaped\n" in diagnosis
    assert "w1:" not in diagnosis  # the weights are right
    assert "w2:" not in diagnosis
