"""The scripts in examples/ run, exit as documented, and print what they are for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    # -W error: an example that warns is as broken as one that fails.
    return subprocess.run([sys.executable, "-W", "error", *argv], cwd=ROOT, capture_output=True, text=True, check=False)


def test_student_correct_and_wrong_reports_pass_then_mismatch() -> None:
    done = _run(str(EXAMPLES / "student_correct_and_wrong.py"))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "== correct derivation: verdict pass\ngradcheck: PASS, 4 parameters" in out
    assert "== wrong derivation: verdict mismatch\ngradcheck: MISMATCH in 2 of 4 parameters" in out
    # sigma' is missing from the hidden error only: w1 and b1 are blamed, w2 and b2 pass.
    wrong = out.split("== wrong derivation")[1]
    for line, status in (("  w1 ", "MISMATCH"), ("  b1 ", "MISMATCH"), ("  w2 ", "pass"), ("  b2 ", "pass")):
        assert any(row.startswith(line) and status in row for row in wrong.splitlines()), (line, status)
    assert "as for a wrong gradient" in wrong


def test_custom_loss_passes_and_catches_a_forgotten_weight_decay() -> None:
    done = _run(str(EXAMPLES / "custom_loss.py"))
    assert done.returncode == 0, done.stderr
    right, wrong = done.stdout.split("== the same without the weight decay term")
    assert "gradcheck: PASS, 2 parameters" in right
    assert "gradcheck: MISMATCH in 1 of 2 parameters" in wrong
    assert any(row.startswith("  W ") and "MISMATCH" in row for row in wrong.splitlines())
    assert "assert_gradients raised GradientMismatch, as a test would" in wrong


def test_autograde_grades_every_submission_even_one_that_fails_to_load() -> None:
    done = _run(str(EXAMPLES / "autograde.py"), "--examples", "5", "--task", "regression")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "alice    PASS      1/1 points" in out
    assert "bob      MISMATCH  0/1 points" in out
    assert "carol    ERROR     0/1 points" in out
    assert "importing `examples/submissions/carol.py` failed:" in out
    assert "NameError: name 'params' is not defined" in out  # the whole traceback: the student's to read
    assert "regression: w1: a sum where a mean belongs: off by a factor N, the batch size; divide the sum" in out
    assert "reproduce: gradcheck check examples/submissions/bob.py:grads --task regression --examples 5" in out


def test_autograde_hands_on_gradcheck_s_usage_errors() -> None:
    done = _run(str(EXAMPLES / "autograde.py"), "--examples", "0")
    assert done.returncode == 2
    assert "--examples must be at least 1" in done.stderr


def test_plugin_example_passes_under_pytest() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "examples/test_with_plugin.py", "-p", "no:cacheprovider", "-q", "-n", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_beyond_scalar_example_passes_the_right_ones_and_names_the_wrong_ones() -> None:
    done = _run(str(EXAMPLES / "beyond_scalar.py"))
    assert done.returncode == 1, done.stderr
    assert "== softmax VJP: pass" in done.stdout
    assert "== Jacobian of A tanh(x): pass" in done.stdout
    assert "hessian: likely mistake: off by a constant factor 6" in done.stdout
    assert "logsumexp: primals[0]" in done.stdout


def _sections(script: str) -> dict[str, str]:
    """The example's output, split at its ``== name: verdict`` lines: {name: that section}."""
    done = _run(str(EXAMPLES / script))
    assert done.returncode == 0, done.stderr
    parts = done.stdout.split("== ")[1:]
    return {part.split(":", 1)[0]: part for part in parts}


def test_check_vjp_example_passes_softmax_and_catches_the_forgotten_term() -> None:
    out = _sections("check_vjp.py")
    assert out["softmax_vjp"].startswith("softmax_vjp: pass\ngradcheck: PASS")
    assert "MISMATCH in 1 of 1 parameters" in out["softmax_vjp_diagonal_only"]
    assert "checked along 3 random cotangents" in out["softmax_vjp_diagonal_only"]


def test_check_jvp_example_catches_the_wrong_derivative() -> None:
    out = _sections("check_jvp.py")
    assert out["softplus_jvp"].startswith("softplus_jvp: pass")
    assert "  jvp    (5,)   MISMATCH" in out["softplus_jvp_wrong_derivative"]


def test_check_jacobian_example_names_the_transpose() -> None:
    out = _sections("check_jacobian.py")
    assert out["jacobian"].startswith("jacobian: pass")
    assert "likely mistake: transposed: shape (2, 3) where (3, 2) belongs" in out["jacobian_transposed"]
    assert "`jac_fn` returned shape (2, 3)" in out["jacobian_transposed"]
    assert out["jacobian_without_slope"].startswith("jacobian_without_slope: mismatch")


def test_check_hessian_example_names_the_factor_and_the_asymmetry() -> None:
    out = _sections("check_hessian.py")
    assert out["hessian"].startswith("hessian: pass")
    assert "likely mistake: off by a constant factor 6" in out["hessian_without_mean"]  # N = 6 samples
    assert "the closed form is not symmetric" in out["hessian_upper_triangle"]
    assert "not symmetric" not in out["hessian_without_mean"]


def test_check_custom_rule_example_blames_the_rule_that_is_wrong() -> None:
    out = _sections("check_custom_rule.py")
    assert out["logsumexp rule normalised"].startswith("logsumexp rule normalised: pass\ngradcheck: PASS, 2 parameters")
    wrong = out["logsumexp rule not normalised"]
    assert "MISMATCH in 1 of 2 parameters" in wrong
    assert any(row.startswith("  logsumexp: primals[0]") and "MISMATCH" in row for row in wrong.splitlines())
    assert any(row.startswith("  safe_norm: primals[0]") and " pass " in row for row in wrong.splitlines())


def test_the_example_notebook_runs_in_a_real_kernel_and_shows_the_reports_as_tables() -> None:
    """examples/notebook.ipynb, executed top to bottom by a Jupyter kernel (nbclient, ipykernel): the wrong
    derivation's report is an HTML table naming b1, and the fixed one passes."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(ROOT / "examples" / "notebook.ipynb", as_version=4)
    nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    shown = [
        output["data"]
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "execute_result"
    ]
    assert len(shown) == 2
    wrong, fixed = shown
    assert "<table>" in wrong["text/html"]
    assert "gradcheck: MISMATCH in 1 of 4 parameters" in wrong["text/html"]
    assert '<td>b1</td><td>(2,)</td><td style="color:red"><b>MISMATCH</b>' in wrong["text/html"]
    assert "gradcheck: PASS, 4 parameters" in fixed["text/html"]
