"""Loading submissions as Python runs a script: sibling imports, isolation, and a clean interpreter after."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest

from gradcheck import _submissions, cli, mlp

#: A helpers module whose output error is right, and one whose sign is flipped.
RIGHT_HELPERS = "def output_error(a2, y):\n    return a2 - y\n"
FLIPPED_HELPERS = "def output_error(a2, y):\n    return y - a2\n"

#: A submission that takes its output error from the `helpers.py` beside it.
#: `lazy` imports it inside the function, as some students do.
GRADS = """
import numpy as np
{eager}

def grads(params, x, y, *, task):
    {lazy}
    w1, b1, w2, b2 = params
    a1 = 1 / (1 + np.exp(-np.clip(x @ w1.T + b1, -500, 500)))
    z2 = a1 @ w2[0] + b2[0]
    a2 = z2 if task == "regression" else 1 / (1 + np.exp(-np.clip(z2, -500, 500)))
    d2 = helpers.output_error(a2, y)
    d1 = d2[:, None] * w2 * a1 * (1 - a1)
    n = len(y)
    return {{"w1": d1.T @ x / n, "b1": d1.mean(0), "w2": (d2 @ a1)[None] / n, "b2": np.array([d2.mean()])}}
"""
EAGER = GRADS.format(eager="import helpers", lazy="pass")
LAZY = GRADS.format(eager="", lazy="import helpers")


def _student(folder: Path, grads: str, helpers: str) -> Path:
    folder.mkdir()
    (folder / "grads.py").write_text(grads)
    (folder / "helpers.py").write_text(helpers)
    return folder / "grads.py"


def _problem() -> tuple[mlp.Params, np.ndarray, np.ndarray]:
    x = np.array([[0.5, -1.0], [2.0, 0.25], [-1.5, 1.0]])
    return mlp.init_params(0), x, np.array([1.0, 0.0, 1.0])


def _from(folder: Path) -> list[str]:
    """Names in sys.modules whose file lies under `folder`."""
    return [n for n, m in list(sys.modules.items()) if _submissions._comes_from(m, folder.resolve())]


@pytest.mark.parametrize("source", [EAGER, LAZY], ids=["imported-at-load", "imported-inside-the-function"])
def test_a_sibling_module_is_found_as_python_finds_it_for_a_script(tmp_path: Path, source: str) -> None:
    path = _student(tmp_path / "alice", source, RIGHT_HELPERS)
    func = _submissions.load(f"{path}:grads")
    p, x, y = _problem()
    got = func(p, x, y, task="classification")
    want = mlp.closed_form_gradients(p, x, y, task="classification")
    for name, value in zip(mlp.Params._fields, want):
        np.testing.assert_allclose(got[name], value, rtol=1e-12)


@pytest.mark.parametrize("source", [EAGER, LAZY], ids=["imported-at-load", "imported-inside-the-function"])
def test_two_students_helpers_never_meet(tmp_path: Path, source: str) -> None:
    right = _submissions.load(f"{_student(tmp_path / 'alice', source, RIGHT_HELPERS)}:grads")
    flipped = _submissions.load(f"{_student(tmp_path / 'bob', source, FLIPPED_HELPERS)}:grads")
    p, x, y = _problem()
    want = mlp.closed_form_gradients(p, x, y, task="regression").w2
    for _ in range(2):  # interleaved: each call brings its own helpers back
        np.testing.assert_allclose(right(p, x, y, task="regression")["w2"], want, rtol=1e-12)
        np.testing.assert_allclose(flipped(p, x, y, task="regression")["w2"], -want, rtol=1e-12)


def test_sys_modules_and_sys_path_are_as_before_after_loading_and_calling(tmp_path: Path) -> None:
    path_before, modules_before = list(sys.path), set(sys.modules)
    for name, source in (("alice", EAGER), ("bob", LAZY)):
        func = _submissions.load(f"{_student(tmp_path / name, source, RIGHT_HELPERS)}:grads")
        func(*_problem(), task="regression")
        assert _from(tmp_path) == []
    assert sys.path == path_before
    assert "helpers" not in sys.modules
    assert not any(n.startswith("gradcheck_submission_") for n in set(sys.modules) - modules_before)


def test_a_failing_call_cleans_up_too(tmp_path: Path) -> None:
    path = _student(tmp_path / "carol", LAZY, "raise RuntimeError('helpers is broken')\n")
    func = _submissions.load(f"{path}:grads")
    path_before = list(sys.path)
    with pytest.raises(RuntimeError, match="helpers is broken"):
        func(*_problem(), task="regression")
    assert sys.path == path_before
    assert _from(tmp_path) == []


def test_a_module_loaded_elsewhere_under_the_same_name_steps_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    impostor = types.ModuleType("helpers")
    monkeypatch.setitem(sys.modules, "helpers", impostor)
    func = _submissions.load(f"{_student(tmp_path / 'dave', LAZY, RIGHT_HELPERS)}:grads")
    p, x, y = _problem()
    want = mlp.closed_form_gradients(p, x, y, task="regression").b2
    np.testing.assert_allclose(func(p, x, y, task="regression")["b2"], want, rtol=1e-12)
    assert sys.modules["helpers"] is impostor


def test_an_import_error_in_a_sibling_shows_the_sibling_s_frame(tmp_path: Path) -> None:
    path = _student(tmp_path / "erin", EAGER, "import numpy as np\nSCALE = 1 / 0\n")
    with pytest.raises(_submissions.LoadError) as info:
        _submissions.load(f"{path}:grads")
    message = str(info.value)
    assert message.startswith(f"importing `{path}` failed:\nTraceback (most recent call last):")
    assert 'helpers.py", line 2, in <module>' in message
    assert message.endswith("ZeroDivisionError: division by zero")
    assert _from(tmp_path) == []


@pytest.mark.parametrize("inside", [True, False], ids=["under-the-current-folder", "elsewhere"])
def test_a_traceback_names_files_as_the_user_named_them(
    inside: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative to the current folder when under it (the same report on every machine), else absolute."""
    path = _student(tmp_path / "erin", EAGER, "import numpy as np\nSCALE = 1 / 0\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path if inside else tmp_path / "elsewhere")
    with pytest.raises(_submissions.LoadError) as info:
        _submissions.load(f"{path}:grads")
    helpers = "erin/helpers.py" if inside else str((tmp_path / "erin" / "helpers.py").resolve())
    assert f'File "{helpers}", line 2, in <module>' in str(info.value)


def test_the_cli_grades_each_student_with_their_own_helpers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _student(tmp_path / "alice", EAGER, RIGHT_HELPERS)
    _student(tmp_path / "bob", EAGER, FLIPPED_HELPERS)
    code = cli.main(["check", f"{tmp_path}/*/grads.py:grads", "--task", "regression", "--examples", "5"])
    out = capsys.readouterr().out
    assert code == cli.EXIT_MISMATCH, out
    assert f"{tmp_path}/alice/grads.py:grads [regression]: PASS on 5 problems" in out
    assert f"{tmp_path}/bob/grads.py:grads [regression]: MISMATCH" in out
    assert "sign flipped" in out
    assert "helpers" not in sys.modules
