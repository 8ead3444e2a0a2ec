"""`gradcheck check --loss`: any hand-derived gradient graded against an instructor's loss (examples/general)."""

from __future__ import annotations

import json
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings

from gradcheck import cli
from gradcheck import strategies as gs

ROOT = Path(__file__).resolve().parents[1]
GENERAL = "examples/general"
STUDENTS = f"{GENERAL}/students"

#: (loss, the students' function, --problems strategy, --example name, what the wrong student's report says)
LOSSES = {
    "logistic": (
        "logistic",
        "logistic_grad",
        "logistic_problems",
        "logistic_example",
        "b: likely mistake: sign flipped",
    ),
    "softmax": (
        "softmax_cross_entropy",
        "softmax_grad",
        "softmax_problems",
        "softmax_example",
        "params: likely mistake: off by a constant factor",
    ),
}


def _flags(loss: str, source: str) -> list[str]:
    name, _, strategy, example, _ = LOSSES[loss]
    drawn = ["--problems", f"{GENERAL}/problems.py:{strategy}"] if source == "problems" else []
    drawn = drawn or ["--example", f"{GENERAL}/problems.py:{example}"]
    return ["--loss", f"{GENERAL}/losses.py:{name}", *drawn]


@pytest.fixture(autouse=True)
def _from_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the examples' paths, as the docs give them
    monkeypatch.delenv("COLUMNS", raising=False)


@pytest.mark.parametrize("source", ["problems", "example"])
@pytest.mark.parametrize("loss", list(LOSSES))
def test_the_right_gradient_passes_and_the_wrong_one_is_caught(
    loss: str, source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    func, said = LOSSES[loss][1], LOSSES[loss][4]
    task = _flags(loss, source)[1].rpartition(":")[2]
    assert cli.main(["check", f"{STUDENTS}/alice.py:{func}", *_flags(loss, source), "--examples", "20"]) == cli.EXIT_OK
    assert f"alice.py:{func} [{task}]: PASS on 20 problems" in capsys.readouterr().out
    argv = ["check", f"{STUDENTS}/bob.py:{func}", *_flags(loss, source), "--examples", "20"]
    assert cli.main(argv) == cli.EXIT_MISMATCH
    out = capsys.readouterr().out
    assert f"bob.py:{func} [{task}]: MISMATCH, first at problem" in out
    assert "minimal counterexample" in out
    assert said in out
    assert "autodiff" in out
    assert "finite diff ± err" in out
    assert f"reproduce: gradcheck check {STUDENTS}/bob.py:{func} {' '.join(_flags(loss, source))} --examples 20" in out


def test_the_example_is_problem_1_and_its_diagnosis_comes_first(capsys: pytest.CaptureFixture[str]) -> None:
    """Bob forgets the mean's 1/N: on the example (5 samples) that is a factor 5, whatever the shrunk problem shows."""
    argv = ["check", f"{STUDENTS}/bob.py:softmax_grad", *_flags("softmax", "example"), "--examples", "10"]
    assert cli.main(argv) == cli.EXIT_MISMATCH
    out = capsys.readouterr().out
    assert "MISMATCH, first at problem 1;" in out
    diagnosis = out.split("diagnosis, on the example, or the failing draw with the most non-zero entries")[1]
    assert "params: off by a constant factor 5" in diagnosis


def test_a_drawn_search_diagnoses_every_parameter_the_shrunk_problem_hides(capsys: pytest.CaptureFixture[str]) -> None:
    """Bob flips the logistic residual's sign: the shrunk problem (all zeros) shows it in b alone, since
    w's gradient is 0 there; the diagnosis reads a failing draw with non-zero entries, and names w too."""
    argv = ["check", f"{STUDENTS}/bob.py:logistic_grad", *_flags("logistic", "problems"), "--examples", "20"]
    assert cli.main(argv) == cli.EXIT_MISMATCH
    out = capsys.readouterr().out
    assert "  w      (1,)   pass" in out  # on the counterexample, w's entry is 0 = 0
    diagnosis = out.split("diagnosis, on the example, or the failing draw with the most non-zero entries")[1]
    assert "b: sign flipped" in diagnosis
    assert "w: sign flipped" in diagnosis


def test_a_glob_gets_one_summary_row_per_submission(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["check", f"{STUDENTS}/*.py:logistic_grad", *_flags("logistic", "example"), "--examples", "10"]
    assert cli.main(argv) == cli.EXIT_MISMATCH
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("│")]
    assert "2 submissions" in out
    assert any("alice.py:logistic_grad" in r and "PASS" in r for r in rows)
    assert any("bob.py:logistic_grad" in r and "logistic: b: sign flipped" in r for r in rows)


def test_json_is_schema_2_names_the_loss_and_reproduces(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["check", f"{STUDENTS}/*.py:logistic_grad", *_flags("logistic", "problems"), "--examples", "15", "--json"]
    assert cli.main(argv) == cli.EXIT_MISMATCH
    first = capsys.readouterr().out
    assert cli.main(argv) == cli.EXIT_MISMATCH
    assert capsys.readouterr().out == first  # the same search, byte for byte
    data = json.loads(first)
    assert data["schema"] == cli.JSON_SCHEMA_LOSS == 2
    assert (data["kind"], data["seed"], data["examples"]) == ("check", 0, 15)
    assert data["loss"] == f"{GENERAL}/losses.py:logistic"
    assert (data["problems"], data["example"]) == (f"{GENERAL}/problems.py:logistic_problems", None)
    alice, bob = data["submissions"]
    assert (alice["verdict"], bob["verdict"]) == ("pass", "mismatch")
    assert alice["tasks"]["logistic"]["examples"] == 15
    task = bob["tasks"]["logistic"]
    assert task["verdict"] == task["report"]["verdict"] == "mismatch"
    assert "sign flipped" in task["diagnoses"]["b"]
    assert sorted(task["counterexample"]) == ["args", "params"]
    assert sorted(task["counterexample"]["params"]) == ["b", "w"]
    assert list(task["counterexample"]["args"]) == ["X", "y"]  # named as the loss names them
    assert [p["name"] for p in task["report"]["params"]] == ["b", "w"]
    command = shlex.split(task["reproduce"])
    assert command[:2] == ["gradcheck", "check"]
    assert cli.main([*command[1:], "--json"]) == cli.EXIT_MISMATCH
    (again,) = json.loads(capsys.readouterr().out)["submissions"]
    assert again["tasks"] == bob["tasks"]


def test_another_seed_is_reproduced_by_its_own_command(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["check", f"{STUDENTS}/bob.py:softmax_grad", *_flags("softmax", "problems"), "--examples", "15"]
    assert cli.main([*argv, "--seed", "3", "--json"]) == cli.EXIT_MISMATCH
    data = json.loads(capsys.readouterr().out)
    (sub,) = data["submissions"]
    command = sub["tasks"]["softmax_cross_entropy"]["reproduce"]
    assert command.endswith("--examples 15 --seed 3")
    assert cli.main([*shlex.split(command)[1:], "--json"]) == cli.EXIT_MISMATCH
    assert json.loads(capsys.readouterr().out) == data


NO_RETURN = "def grad(params, X, y):\n    params['w'] * 2\n"
NO_ARGS = "def grad(params):\n    return params\n"


@pytest.mark.parametrize(
    ("source", "said"),
    [(NO_RETURN, "a missing `return`?"), (NO_ARGS, "takes 1 positional argument but 3 were given")],
    ids=["returns-None", "wrong-signature"],
)
def test_a_wrong_call_is_an_error_with_no_search(
    source: str, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "eve.py").write_text(source)
    argv = ["check", f"{tmp_path}/eve.py:grad", *_flags("logistic", "example"), "--examples", "30"]
    assert cli.main(argv) == cli.EXIT_USAGE
    out = capsys.readouterr().out
    assert "eve.py:grad [logistic]: ERROR, a wrong call, not a mismatch (no search was run)" in out
    assert said in out
    assert (
        "FUNC must be FUNC(params, *args) -> the gradient of logistic with the structure of params (b (), w (3,))"
        in out
    )
    assert "counterexample" not in out
    assert cli.main([*argv, "--json"]) == cli.EXIT_USAGE
    (sub,) = json.loads(capsys.readouterr().out)["submissions"]
    task = sub["tasks"]["logistic"]
    assert sub["verdict"] == task["verdict"] == task["report"]["verdict"] == "error"
    assert (task["examples"], task["counterexample"]) == (0, None)


def test_gradescope_and_junit_test_each_parameter_of_the_loss(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["check", f"{STUDENTS}/*.py:logistic_grad", *_flags("logistic", "example"), "--examples", "10"]
    argv += ["--format", "gradescope", "--points", "10", "--output", str(tmp_path / "results.json")]
    argv += ["--junit-xml", str(tmp_path / "gradcheck.xml")]
    assert cli.main(argv) == cli.EXIT_MISMATCH
    results = json.loads((tmp_path / "results.json").read_text())
    scores = {t["name"].split("students/")[1]: t["score"] for t in results["tests"]}
    assert scores == {
        "alice.py:logistic_grad [logistic]: b": 5,
        "alice.py:logistic_grad [logistic]: w": 5,
        "bob.py:logistic_grad [logistic]: b": 0,
        "bob.py:logistic_grad [logistic]: w": 0,  # wrong on the example, the first failing problem
    }
    assert results["score"] == 10
    suites = ET.parse(tmp_path / "gradcheck.xml").getroot()
    assert (suites.get("tests"), suites.get("failures"), suites.get("errors")) == ("2", "1", "0")
    failure = suites.find(".//failure")
    assert failure is not None
    assert "sign flipped" in (failure.get("message") or "")
    capsys.readouterr()


LOSS = "import jax.numpy as jnp\n\ndef loss(params, x):\n    return jnp.sum(params['w'] * x) ** 2\n"
GRAD = """
def grad(params, x):
    x = x[:3]  # takes a longer x than the loss does
    return {'w': 2 * (params['w'] * x).sum() * x}
"""
PROBLEMS = """
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

floats = st.floats(-2, 2)
good = st.tuples(hnp.arrays(np.float64, 3, elements=floats), hnp.arrays(np.float64, 3, elements=floats)).map(
    lambda t: ({"w": t[0]}, t[1])
)
not_a_tuple = hnp.arrays(np.float64, 3, elements=floats)
changing = st.integers(1, 3).flatmap(
    lambda n: st.just(({"w": np.ones(n)}, np.ones(n))) if n == 1 else st.just(({"v": np.ones(n)}, np.ones(n)))
)
wrong_shapes = st.integers(3, 5).map(lambda n: ({"w": np.ones(3)}, np.ones(n)))
def broken():
    raise RuntimeError("no strategy today")
example = ({"w": np.ones(3)}, np.arange(3.0))
complex_example = ({"w": np.ones(3)}, np.ones(3) * 1j)
not_a_tuple_example = [{"w": np.ones(3)}, np.ones(3)]
"""


@pytest.fixture
def course(tmp_path: Path) -> Path:
    (tmp_path / "loss.py").write_text(LOSS)
    (tmp_path / "grad.py").write_text(GRAD)
    (tmp_path / "problems.py").write_text(PROBLEMS)
    return tmp_path


def test_a_correct_gradient_of_a_loss_written_here_passes(course: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for drawn in (["--problems", f"{course}/problems.py:good"], ["--example", f"{course}/problems.py:example"]):
        argv = ["check", f"{course}/grad.py:grad", "--loss", f"{course}/loss.py:loss", *drawn, "--examples", "10"]
        assert cli.main(argv) == cli.EXIT_OK
        assert "grad.py:grad [loss]: PASS on 10 problems" in capsys.readouterr().out


#: Misuse of the flags: exit 2, a message naming the flag, no search and no traceback.
MISUSE = [
    pytest.param(["--loss", "{d}/loss.py:loss"], "needs exactly one of `--problems", id="neither"),
    pytest.param(
        ["--loss", "{d}/loss.py:loss", "--problems", "{d}/problems.py:good", "--example", "{d}/problems.py:example"],
        "needs exactly one of `--problems FILE:STRATEGY` and `--example FILE:NAME`, got both",
        id="both",
    ),
    pytest.param(
        ["--loss", "{d}/loss.py:loss", "--example", "{d}/problems.py:example", "--task", "both"],
        "`--task both` chooses a task of the seed network; with `--loss` the loss is what is checked: drop `--task`",
        id="task",
    ),
    pytest.param(["--problems", "{d}/problems.py:good"], "add `--loss FILE:LOSS`, or drop `--problems`", id="no-loss"),
    pytest.param(
        ["--loss", "{d}/loss.py", "--example", "{d}/problems.py:example"],
        "`--loss {d}/loss.py`: `{d}/loss.py` must look like path/to/file.py:name",
        id="loss-no-name",
    ),
    pytest.param(
        ["--loss", "{d}/loss.py:lost", "--example", "{d}/problems.py:example"],
        "`{d}/loss.py` has no function `lost`; it defines: loss",
        id="loss-missing",
    ),
    pytest.param(
        ["--loss", "{d}/nowhere.py:loss", "--example", "{d}/problems.py:example"],
        "cannot read `{d}/nowhere.py`: no such file",
        id="loss-no-file",
    ),
    pytest.param(
        ["--loss", "{d}/loss.py:loss", "--example", "{d}/problems.py:exampel"],
        "`{d}/problems.py` has no `exampel`; it defines: ",
        id="example-missing",
    ),
    pytest.param(
        ["--loss", "{d}/loss.py:loss", "--example", "{d}/problems.py:not_a_tuple_example"],
        "must name a tuple (params, *args) of arrays, the arguments of the loss; got list",
        id="example-not-a-tuple",
    ),
    pytest.param(
        ["--loss", "{d}/loss.py:loss", "--example", "{d}/problems.py:complex_example"],
        "`example[1]` has dtype complex128; every leaf must be a real or boolean array",
        id="example-complex",
    ),
    pytest.param(
        ["--loss", "{d}/loss.py:loss", "--problems", "{d}/problems.py:example"],
        "must name a Hypothesis strategy of tuples (params, *args), or a function of no arguments that returns one; "
        "got tuple",
        id="problems-not-a-strategy",
    ),
    pytest.param(
        ["--loss", "{d}/loss.py:loss", "--problems", "{d}/problems.py:broken"],
        "calling it failed:\nTraceback (most recent call last):",
        id="problems-raises",
    ),
    pytest.param(
        ["--loss", "{d}/loss.py:loss", "--problems", "{d}/problems.py:not_a_tuple"],
        "drew ndarray array([0., 0., 0.]); a problem is a tuple (params, *args)",
        id="problems-not-tuples",
    ),
    pytest.param(
        ["--loss", "{d}/loss.py:loss", "--problems", "{d}/problems.py:changing"],
        "the problems differ in structure",
        id="problems-change-structure",
    ),
    pytest.param(
        ["--loss", "{d}/loss.py:loss", "--problems", "{d}/problems.py:wrong_shapes"],
        "on `--problems {d}/problems.py:wrong_shapes`: the problem w (3,); x (4,) cannot be checked: "
        "`loss_fn(params, *args)` failed under JAX tracing",
        id="loss-fails-on-a-problem",
    ),
]


@pytest.mark.parametrize(("flags", "message"), MISUSE)
def test_misuse_exits_2_naming_the_flag(
    flags: list[str], message: str, course: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["check", f"{course}/grad.py:grad", *(f.format(d=course) for f in flags), "--examples", "5"]
    assert cli.main(argv) == cli.EXIT_USAGE
    captured = capsys.readouterr()
    assert message.format(d=course) in captured.err
    assert "PASS" not in captured.out
    assert "MISMATCH" not in captured.out
    assert "internal error" not in captured.err


EXAMPLE = (
    {"w": np.array([0.5, -7.0]), "b": np.float32(1.0)},
    np.zeros((4, 2)),
    np.array([0, 3, 1, 0]),
    np.ones(2, bool),
)


@settings(max_examples=30, deadline=None)
@given(gs.shaped_like(EXAMPLE))
def test_shaped_like_keeps_structure_shapes_dtypes_and_ranges(drawn: tuple[dict[str, np.ndarray], ...]) -> None:
    params, x, labels, mask = drawn
    assert sorted(params) == ["b", "w"]
    assert [(a.shape, a.dtype) for a in (params["w"], params["b"], x, labels, mask)] == [
        ((2,), np.float64),
        ((), np.float32),
        ((4, 2), np.float64),
        ((4,), labels.dtype),
        ((2,), np.bool_),
    ]
    assert np.issubdtype(labels.dtype, np.integer)
    assert np.isfinite(params["w"]).all()
    assert np.abs(params["w"]).max() <= 7.0
    assert np.abs(x).max() <= 3.0  # at least 3: zeros do not collapse the range
    assert ((labels >= 0) & (labels <= 3)).all()  # labels stay within the example's labels
