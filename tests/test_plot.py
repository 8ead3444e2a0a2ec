"""`gradcheck plot`: the figures are written, and the numbers drawn in them say what the docs say."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from gradcheck import _taylor, cli, plot
from gradcheck._references import _finite_diff

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def problem() -> plot.problems.Problem:
    return plot.seed_problem("classification", 0)


@pytest.fixture(scope="module")
def vcurve(problem: plot.problems.Problem) -> plot.VCurve:
    return plot.vcurve(problem)


@pytest.fixture(scope="module")
def taylor(problem: plot.problems.Problem) -> plot.TaylorCurves:
    return plot.taylor(problem, 0)


def test_plot_writes_two_valid_png_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib", reason='drawing needs matplotlib: pip install "gradcheck[plot]"')
    from matplotlib.image import imread

    out = tmp_path / "img"  # created by the command
    assert cli.main(["plot", "--out", str(out)]) == cli.EXIT_OK
    for name in plot.FIGURES:
        path = out / f"{name}.png"
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        height, width, _ = imread(path).shape
        assert height > 300
        assert width > 500
    printed = capsys.readouterr().out
    assert "fitted slopes: correct gradient 2.00, wrong gradient (a sum where the mean belongs) 1.00" in printed


def test_plot_draws_svg_too(tmp_path: Path, vcurve: plot.VCurve, taylor: plot.TaylorCurves) -> None:
    pytest.importorskip("matplotlib", reason='drawing needs matplotlib: pip install "gradcheck[plot]"')
    plot.draw_vcurve(vcurve, tmp_path / "v.svg", title="v")
    plot.draw_taylor(taylor, tmp_path / "t.svg", title="t")
    for name in ("v.svg", "t.svg"):
        text = (tmp_path / name).read_text()
        assert text.startswith("<?xml")
        assert "<svg" in text
        assert "</svg>" in text


def test_taylor_slopes_are_2_for_a_correct_gradient_and_1_for_a_wrong_one(
    problem: plot.problems.Problem, taylor: plot.TaylorCurves
) -> None:
    assert taylor.correct_slope == pytest.approx(2.0, abs=0.05)
    assert taylor.wrong_slope == pytest.approx(1.0, abs=0.05)
    # The pictures show the very remainders that failed reports fit.
    np.testing.assert_array_equal(taylor.correct.steps, _taylor.STEPS)
    assert taylor.correct.usable.sum() >= 3
    assert taylor.wrong.usable.sum() >= 3


def test_vcurve_slopes_match_each_scheme_s_order(vcurve: plot.VCurve) -> None:
    assert vcurve.coordinate.startswith("w1[")
    theory = {"forward": 1.0, "central": 2.0, "Richardson": 6.0, "complex step": 2.0}
    for scheme, slope in vcurve.slopes.items():
        assert slope == pytest.approx(theory[scheme], abs=0.25), scheme


def test_vcurve_is_a_v_and_gradcheck_s_step_sits_near_its_bottom(
    vcurve: plot.VCurve, problem: plot.problems.Problem
) -> None:
    central = vcurve.errors["central"]
    best = int(np.nanargmin(central))
    assert 0 < best < len(central) - 1  # truncation on one side, rounding on the other
    assert central[-1] > 1e3 * central[best]  # rounding dominates the smallest steps
    assert vcurve.chosen_step == _finite_diff.FD_STEP * max(1.0, abs(_value_at(problem, vcurve.coordinate)))
    assert vcurve.chosen_error < 1e-11
    assert vcurve.chosen_error <= vcurve.chosen_bound  # the bound gradcheck reports holds there
    assert vcurve.chosen_error < np.nanmin(vcurve.errors["forward"])  # better than forward differences anywhere


def _value_at(problem: plot.problems.Problem, coordinate: str) -> float:
    """The parameter entry that `coordinate` ("w1[1, 0]") names."""
    name, index = coordinate.rstrip("]").split("[")
    return float(np.asarray(getattr(problem.params, name))[tuple(int(i) for i in index.split(","))])


def test_the_chosen_step_grows_with_a_large_coordinate(problem: plot.problems.Problem) -> None:
    """FD_STEP max(1, |theta_i|): with every hidden weight above 2 in size, the step is |theta_i| FD_STEP."""
    w1 = np.asarray(problem.params.w1)
    large = problem._replace(params=problem.params._replace(w1=w1 + 2.0 * np.sign(w1)))
    v = plot.vcurve(large)
    theta = _value_at(large, v.coordinate)
    assert abs(theta) > 2.0
    assert v.chosen_step == _finite_diff.FD_STEP * abs(theta)


def test_missing_matplotlib_names_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    assert cli.main(["plot", "--out", str(tmp_path / "img")]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert 'matplotlib is not installed; install it with: pip install "gradcheck[plot]"' in err
    assert "Traceback" not in err
    assert not (tmp_path / "img").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param([], "the following arguments are required: --out", id="no-out"),
        pytest.param(["--out", "x", "--seed", "-1"], "--seed must be at least 0", id="negative-seed"),
        pytest.param(["--out", "x", "--format", "gif"], "invalid choice: 'gif'", id="bad-format"),
    ],
)
def test_plot_usage_errors_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["plot", *argv]) == cli.EXIT_USAGE
    assert message in capsys.readouterr().err


def test_out_that_is_a_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib", reason='drawing needs matplotlib: pip install "gradcheck[plot]"')
    target = tmp_path / "taken"
    target.write_text("")
    assert cli.main(["plot", "--out", str(target)]) == cli.EXIT_USAGE
    assert "cannot create `--out`" in capsys.readouterr().err
