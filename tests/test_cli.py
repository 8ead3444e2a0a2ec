"""The `gradcheck` command: main job, JSON, exit codes, and no raw tracebacks."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gradcheck import _references, cli, heads, mlp, problems
from gradcheck.cli import _main_job, _main_report, _render


def test_main_job_passes_and_prints_tables(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--examples", "12"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    for task in ("regression", "classification"):
        assert f"{task}: 12 problems, seed 0, verdict PASS" in out
        assert f"identity dL/dz2 = a2 - y ({task}): holds" in out
    for column in ("|cf-ad|", "rel vs ad", "|cf-fd|", "rel vs fd", "tol used"):
        assert column in out
    assert "\x1b[" not in out  # not a terminal: plain text, no colour codes


@pytest.mark.parametrize("no_color", [False, True])
def test_colour_only_on_a_terminal_without_no_color(
    no_color: bool, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: treat the captured stream as a terminal
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    assert cli.main(["--task", "regression", "--examples", "2"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "PASS" in out
    coloured = re.search(r"\x1b\[[0-9;]*3[0-9]m", out) is not None  # a foreground colour code
    assert coloured is not no_color


def test_json_report_is_clean_and_versioned(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--task", "classification", "--examples", "11", "--json"]) == cli.EXIT_OK
    data = json.loads(capsys.readouterr().out)  # nothing but JSON on stdout
    assert data["schema"] == cli.JSON_SCHEMA
    assert data["verdict"] == "pass"
    task = data["tasks"]["classification"]
    assert task["examples"] == 11
    assert task["identity"]["holds"] is True
    assert set(task["params"]) == {"w1", "b1", "w2", "b2"}
    assert all(v["tolerance_used"] <= 0.5 for v in task["params"].values())  # headroom, not just a pass
    assert 0 < task["screened"] <= 11  # passed the screen (tolerance_used against the floor for those)


def test_the_main_job_counts_the_problems_the_screen_settled(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--task", "regression", "--examples", "11"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    match = re.search(r"(\d+) of 11 problems passed without their rounding noise measured", out)
    assert match is not None, out
    assert 0 < int(match.group(1)) <= 11
    with _references.unscreened():
        assert cli.main(["--task", "regression", "--examples", "11"]) == cli.EXIT_OK
    assert "without their rounding noise measured" not in capsys.readouterr().out


def test_problem_option_reproduces_one_problem(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--task", "regression", "--seed", "3", "--problem", "5", "--json"]) == cli.EXIT_OK
    data = json.loads(capsys.readouterr().out)
    assert data["tasks"]["regression"]["examples"] == 1
    prob = cli.problem_for(5, seed=3, task="regression", inputs=2, hidden=3, batch=8)
    assert prob.regime == problems.REGIMES[5]


def test_a_mismatch_exits_1_with_report_and_reproduce_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    correct = mlp.closed_form_gradients

    def doubled(*args: object, **kwargs: object) -> mlp.Params:
        return mlp.Params(*(2 * g for g in correct(*args, **kwargs)))  # type: ignore[arg-type]

    monkeypatch.setattr(mlp, "closed_form_gradients", doubled)
    assert cli.main(["--task", "regression", "--examples", "2"]) == cli.EXIT_MISMATCH
    out = capsys.readouterr().out
    assert "verdict MISMATCH" in out
    assert "likely mistake: off by a constant factor 2" in out
    assert "reproduce: gradcheck --task regression --inputs 2 --hidden 3 --batch 8 --seed 0 --problem 0" in out


BAD_ARGS = [
    pytest.param(["--examples", "0"], "--examples must be at least 1, got 0", id="examples-zero"),
    pytest.param(["--hidden", "two"], "--hidden must be a whole number, got 'two'", id="hidden-text"),
    pytest.param(["--batch", "-3"], "--batch must be at least 1, got -3", id="batch-negative"),
    pytest.param(["--task", "ranking"], "invalid choice: 'ranking'", id="task-unknown"),
    pytest.param(["--problem", "-1"], "--problem must be at least 0, got -1", id="problem-negative"),
    pytest.param(["--frobnicate"], "unrecognized arguments: --frobnicate", id="unknown-flag"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_ARGS)
def test_bad_arguments_exit_2_naming_the_problem(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_internal_error_is_reported_without_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(_main_job, "check_batch", boom)
    assert cli.main(["--examples", "1"]) == cli.EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: simulated bug" in err
    assert "Traceback" not in err


def test_python_dash_m_runs_the_same_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gradcheck", "--task", "classification", "--examples", "1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "verdict PASS" in done.stdout


# --- gradcheck check FILE:FUNC -------------------------------------------------------

CORRECT_SUBMISSION = """
import numpy as np

def grads(params, x, y, *, task):
    w1, b1, w2, b2 = params
    a1 = 1 / (1 + np.exp(-np.clip(x @ w1.T + b1, -500, 500)))
    z2 = a1 @ w2[0] + b2[0]
    a2 = z2 if task == "regression" else 1 / (1 + np.exp(-np.clip(z2, -500, 500)))
    d2 = a2 - y
    d1 = d2[:, None] * w2 * a1 * (1 - a1)
    n = len(y)
    return {"w1": d1.T @ x / n, "b1": d1.mean(0), "w2": (d2 @ a1)[None] / n, "b2": np.array([d2.mean()])}
"""
SIGN_FLIPPED = CORRECT_SUBMISSION.replace("d2 = a2 - y", "d2 = y - a2")
RAISES = CORRECT_SUBMISSION.replace("n = len(y)", "n = len(y) // 0")


@pytest.fixture
def class_folder(tmp_path):  # type: ignore[no-untyped-def]
    (tmp_path / "alice.py").write_text(CORRECT_SUBMISSION)
    (tmp_path / "bob.py").write_text(SIGN_FLIPPED)
    (tmp_path / "carol.py").write_text("import not_a_module_anywhere\n")
    (tmp_path / "dave.py").write_text(RAISES)
    return tmp_path


def test_check_passes_a_correct_submission(class_folder, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert cli.main(["check", f"{class_folder}/alice.py:grads", "--examples", "15"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "alice.py:grads [regression]: PASS on 15 problems" in out
    assert "alice.py:grads [classification]: PASS on 15 problems" in out


def test_check_autogrades_a_folder(class_folder, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    code = cli.main(["check", f"{class_folder}/*.py:grads", "--task", "regression", "--examples", "15"])
    assert code == cli.EXIT_MISMATCH
    out = capsys.readouterr().out
    assert "bob.py:grads [regression]: MISMATCH" in out
    assert "minimal counterexample" in out
    assert "sign flipped" in out
    assert f"reproduce: gradcheck check {class_folder}/bob.py:grads --task regression --examples 15 --seed 0" in out
    assert "ModuleNotFoundError: No module named 'not_a_module_anywhere'" in out
    assert "ZeroDivisionError" in out  # dave's own error, reported as his
    assert "4 submissions" in out


def test_check_json_is_versioned_and_clean(class_folder, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    code = cli.main(["check", f"{class_folder}/bob.py:grads", "--task", "classification", "--examples", "10", "--json"])
    assert code == cli.EXIT_MISMATCH
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == cli.JSON_SCHEMA
    assert data["kind"] == "check"
    (sub,) = data["submissions"]
    task = sub["tasks"]["classification"]
    assert sub["verdict"] == "mismatch"
    assert task["counterexample"]["x"]
    assert "sign flipped" in task["diagnoses"]["b2"]
    assert task["report"]["verdict"] == "mismatch"


LOAD_ERRORS = [
    pytest.param("nowhere.py:grads", "cannot read `nowhere.py`: no such file", id="missing-file"),
    pytest.param("{d}/alice.py:gradz", "has no function `gradz`; it defines: grads", id="missing-function"),
    pytest.param("{d}/alice.py", "must look like path/to/file.py:function_name", id="no-function"),
    pytest.param("{d}/*.txt:grads", "matches no file", id="empty-glob"),
]


@pytest.mark.parametrize(("spec", "message"), LOAD_ERRORS)
def test_check_load_errors_exit_2(class_folder, spec: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert cli.main(["check", spec.format(d=class_folder), "--examples", "3"]) == cli.EXIT_USAGE
    captured = capsys.readouterr()
    assert message in captured.out + captured.err
    assert "Traceback (most recent call last)" not in captured.err


def test_console_script_grades_a_folder(class_folder) -> None:  # type: ignore[no-untyped-def]
    """Through the installed `gradcheck` script: correct, wrong, unimportable and raising files."""
    script = Path(sys.executable).with_name("gradcheck")
    assert script.exists(), f"the console script is not installed next to {sys.executable}"
    done = subprocess.run(
        [str(script), "check", f"{class_folder}/*.py:grads", "--task", "classification", "--examples", "10"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == cli.EXIT_MISMATCH, done.stderr
    assert re.search(r"alice\.py:grads \[classification\]: PASS", done.stdout)
    assert re.search(r"bob\.py:grads \[classification\]: MISMATCH", done.stdout)
    assert "sign flipped" in done.stdout
    assert "No module named 'not_a_module_anywhere'" in done.stdout
    assert "ZeroDivisionError" in done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("name", "code"),
    [("alice", cli.EXIT_OK), ("bob", cli.EXIT_MISMATCH), ("carol", cli.EXIT_USAGE)],
)
def test_console_script_exit_codes(class_folder, name: str, code: int) -> None:  # type: ignore[no-untyped-def]
    script = Path(sys.executable).with_name("gradcheck")
    done = subprocess.run(
        [str(script), "check", f"{class_folder}/{name}.py:grads", "--task", "regression", "--examples", "5", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == code, done.stderr
    data = json.loads(done.stdout)
    assert data["submissions"][0]["verdict"] == {0: "pass", 1: "mismatch", 2: "error"}[code]


def test_check_survives_exit_and_print_in_submissions(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "quitter.py").write_text("import sys\n\ndef grads(params, x, y, *, task):\n    sys.exit(0)\n")
    (tmp_path / "chatty.py").write_text(
        'print("importing!")\n' + CORRECT_SUBMISSION.replace("    n = len(y)", '    print("computing")\n    n = len(y)')
    )
    code = cli.main(["check", f"{tmp_path}/*.py:grads", "--task", "regression", "--examples", "5", "--json"])
    assert code == cli.EXIT_USAGE  # sys.exit(0) inside a submission is an error, not a pass
    captured = capsys.readouterr()
    data = json.loads(captured.out)  # the submissions' prints went to stderr
    verdicts = {Path(s["submission"].split(":")[0]).stem: s["verdict"] for s in data["submissions"]}
    assert verdicts == {"chatty": "pass", "quitter": "error"}
    assert "computing" in captured.err


NO_TASK = CORRECT_SUBMISSION.replace("def grads(params, x, y, *, task):", "def grads(params, x, y):").replace(
    'task == "regression"', "True"
)


def test_check_a_wrong_call_is_an_error_with_no_search(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "no_task.py").write_text(NO_TASK)
    argv = ["check", f"{tmp_path}/no_task.py:grads", "--task", "regression", "--examples", "50"]
    assert cli.main(argv) == cli.EXIT_USAGE
    out = capsys.readouterr().out
    assert "no_task.py:grads [regression]: ERROR, a wrong call, not a mismatch (no search was run)" in out
    assert "got an unexpected keyword argument 'task'" in out
    assert "FUNC must be FUNC(params, x, y, *, task)" in out
    assert "MISMATCH" not in out
    assert "counterexample" not in out
    assert "diagnosis, confirmed" not in out
    assert cli.main([*argv, "--json"]) == cli.EXIT_USAGE
    (sub,) = json.loads(capsys.readouterr().out)["submissions"]
    task = sub["tasks"]["regression"]
    assert sub["verdict"] == task["verdict"] == task["report"]["verdict"] == "error"
    assert "got an unexpected keyword argument 'task'" in task["error"]
    assert task["examples"] == 0  # no problem was searched
    assert task["counterexample"] is None


SYNTAX_ERROR = "def grads(params, x, y, *, task)\n    return params\n"


@pytest.mark.parametrize("with_mismatch", [False, True], ids=["error-and-pass", "error-and-mismatch"])
def test_every_submission_gets_its_row_and_full_reason(  # type: ignore[no-untyped-def]
    tmp_path, with_mismatch: bool, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)  # as piped to a file: every cell whole, on one line
    (tmp_path / "alice.py").write_text(CORRECT_SUBMISSION)
    (tmp_path / "broken.py").write_text(SYNTAX_ERROR)
    if with_mismatch:
        (tmp_path / "bob.py").write_text(SIGN_FLIPPED)
    code = cli.main(["check", f"{tmp_path}/*.py:grads", "--task", "regression", "--examples", "5"])
    # The most severe verdict decides the exit code: mismatch before error before pass.
    assert code == (cli.EXIT_MISMATCH if with_mismatch else cli.EXIT_USAGE)
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("│")]
    assert any("alice.py:grads" in r and "PASS" in r for r in rows)
    broken = next(r for r in rows if "broken.py:grads" in r)
    assert "ERROR" in broken
    assert re.search(r"importing `.*broken\.py` failed: SyntaxError: expected ':'", broken), broken


def test_autograde_grades_every_submission_beside_a_broken_one(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "alice.py").write_text(CORRECT_SUBMISSION)
    (tmp_path / "broken.py").write_text(SYNTAX_ERROR)
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [
            sys.executable,
            "examples/autograde.py",
            "--examples",
            "5",
            "--task",
            "regression",
            "--submissions",
            f"{tmp_path}/*.py:grads",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "alice    PASS      1/1 points" in done.stdout
    assert "broken   ERROR     0/1 points" in done.stdout
    assert "SyntaxError: expected ':'" in done.stdout  # the whole reason, not its first line


# --- output that is piped or saved ---------------------------------------------------

LONG_NAME = "hw2_gradient_submission_of_a_student_with_a_rather_long_file_name_sum_not_mean"


def _first_cells(out: str) -> str:
    """The summary table's first column, its cells joined: a folded path comes back whole."""
    return "".join(line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│"))


@pytest.mark.parametrize("columns", [None, "60"], ids=["no-COLUMNS", "COLUMNS-60"])
def test_check_keeps_long_submission_names_whole_when_piped(
    columns: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    (tmp_path / f"{LONG_NAME}.py").write_text(SIGN_FLIPPED)
    (tmp_path / "alice.py").write_text(CORRECT_SUBMISSION)
    code = cli.main(["check", f"{tmp_path}/*.py:grads", "--task", "regression", "--examples", "5"])
    assert code == cli.EXIT_MISMATCH
    out = capsys.readouterr().out
    assert "…" not in out  # nothing cut
    rows = [line for line in out.splitlines() if line.startswith("│")]
    if columns is None:  # as wide as the content needs: each submission whole on its own row
        (row,) = [r for r in rows if LONG_NAME in r]
        assert f"{tmp_path}/{LONG_NAME}.py:grads" in row
        assert "MISMATCH" in row
        assert "regression: w1: sign flipped" in row
    else:  # COLUMNS is respected: the table fits, and a path too long for it is folded, never cut
        assert max(len(line) for line in out.splitlines() if line[:1] in "┏┃┡│└") <= int(columns)
        assert f"{tmp_path}/{LONG_NAME}.py:grads" in _first_cells(out)


def test_general_network_title_stays_on_one_line_when_piped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    argv = ["--layers", "3,4,3", "--activation", "tanh", "--head", "softmax", "--examples", "2"]
    assert cli.main(argv) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "layers=3,4,3 activation=tanh head=softmax: 2 problems, seed 0, verdict PASS" in out


@pytest.mark.parametrize(
    ("env", "width"),
    [
        ({}, _render.UNBOUNDED_WIDTH),
        ({"COLUMNS": "100"}, 100),
        ({"TTY_COMPATIBLE": "1", "COLUMNS": "90"}, 90),
    ],
    ids=["piped", "piped-with-COLUMNS", "terminal"],
)
def test_console_is_unbounded_only_off_a_terminal_without_columns(
    env: dict[str, str], width: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("COLUMNS", "TTY_COMPATIBLE", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert _render.make_console().width == width


# --- the general network --------------------------------------------------------------


def test_general_network_runs_every_regime_and_its_identity(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--layers", "3,4,3", "--activation", "tanh", "--head", "softmax", "--examples", "10", "--json"]
    assert cli.main(argv) == cli.EXIT_OK
    data = json.loads(capsys.readouterr().out)
    (label, task), *_ = data["tasks"].items()
    assert label == "layers=3,4,3 activation=tanh head=softmax"
    assert task["examples"] == 10
    assert set(task["params"]) == {"w1", "b1", "w2", "b2"}
    identity = task["identity"]
    assert (identity["claim"], identity["holds"], identity["failures"]) == ("dL/dz = a − y", True, [])
    # a - y against autodiff of softmax + cross-entropy, entries at most 1: a few ulps of 1, and measured.
    assert 0.0 <= identity["max_abs_err"] <= 1e-14


def test_general_network_mismatch_names_the_reproduce_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The trap: a - y for a sigmoid output with squared error.
    monkeypatch.setitem(
        heads.HEADS, "sigmoid-mse", heads.HEADS["sigmoid-mse"]._replace(output_error=heads.canonical_error)
    )
    assert cli.main(["--head", "sigmoid-mse", "--examples", "2"]) == cli.EXIT_MISMATCH
    out = capsys.readouterr().out
    assert "identity dL/dz = (a − y) a (1 − a) (not canonical)" in out
    assert "FAILS on 2 problems" in out
    assert (
        "reproduce: gradcheck --layers 2,3,1 --activation sigmoid --head sigmoid-mse --batch 8 --seed 0 --problem 0"
        in out
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--layers", "4"], "--layers must be at least two comma-separated positive integers"),
        (["--layers", "4,0,1"], "got '4,0,1'"),
        (["--head", "hinge"], "invalid choice: 'hinge'"),
        (["--activation", "gelu"], "invalid choice: 'gelu'"),
        (["--task", "regression", "--head", "softmax"], "--task regression chooses a seed task"),
    ],
    ids=["layers-one", "layers-zero", "head-unknown", "activation-unknown", "task-and-head"],
)
def test_general_network_usage_errors_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == cli.EXIT_USAGE
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags",
    [["--layers", "2,6,1", "--activation", "relu"], ["--head", "poisson", "--layers", "3,8,1", "--activation", "relu"]],
)
def test_a_correct_relu_network_passes_with_its_kinks_listed(
    flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Kinks are listed, not judged: a CI gate for a ReLU network can be green (exit 0)."""
    assert cli.main([*flags, "--examples", "60"]) == _render.EXIT_OK
    out = capsys.readouterr().out
    assert re.search(r"\d+ elements at a kink \(a non-differentiable point\), not judged, in \d+ problems", out)
    # --strict fails them: exit 3, the one code for "not proved either way".
    assert cli.main([*flags, "--examples", "60", "--strict", "--json"]) == _render.EXIT_INCONCLUSIVE
    report = json.loads(capsys.readouterr().out)
    (task,) = report["tasks"].values()
    assert task["verdict"] == "inconclusive"
    assert task["not_judged"]["elements"] > 0
    assert task["not_judged"]["problems"]


def _largest_relative(task: dict[str, Any]) -> tuple[float, str, str]:
    """The largest relative column of a task in the JSON report: (value, column, parameter)."""
    columns = {"max_rel_err_autodiff": "rel vs ad", "max_rel_err_fd": "rel vs fd"}
    return max((float(w[f]), c, name) for name, w in task["params"].items() for f, c in columns.items())


def test_a_large_relative_column_on_a_pass_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    """A ReLU network passes with a relative column near 0.1: the output says why, beside the figure."""
    flags = ["--layers", "2,6,1", "--activation", "relu", "--examples", "40"]
    assert cli.main([*flags, "--json"]) == cli.EXIT_OK
    (task,) = json.loads(capsys.readouterr().out)["tasks"].values()
    value, column, name = _largest_relative(task)
    assert value > _main_report.RAW_RELATIVE_NOTED  # the run the note is for
    used = max(w["tolerance_used"] for w in task["params"].values())
    assert cli.main(flags) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert f"{column} reaches {value:.2e} ({name}) on a pass: the relative columns are raw distances" in out
    assert f"the verdict reads tol used, {used:.2e} here (≤ 1 passes)" in out


def test_small_relative_columns_get_no_note(capsys: pytest.CaptureFixture[str]) -> None:
    flags = ["--layers", "4,16,16,3", "--activation", "tanh", "--head", "softmax", "--examples", "10"]
    assert cli.main([*flags, "--json"]) == cli.EXIT_OK
    (task,) = json.loads(capsys.readouterr().out)["tasks"].values()
    assert _largest_relative(task)[0] <= _main_report.RAW_RELATIVE_NOTED
    assert cli.main(flags) == cli.EXIT_OK
    assert "on a pass: the relative columns" not in capsys.readouterr().out


# --- reproducibility: --problem K, the reproduce: lines, the search's seed ----------------


def _wrong_on_problem(monkeypatch: pytest.MonkeyPatch, k: int) -> None:
    """Make the shipped closed form double b2 on main-job problem `k` only (found by its inputs)."""
    marker = cli.problem_for(k, seed=0, task="regression", inputs=2, hidden=3, batch=8).x[..., 0, 0]
    correct = mlp.closed_form_gradients

    def wrong_on_k(params: Any, x: Any, y: Any, *, task: Any) -> mlp.Params:
        g = correct(params, x, y, task=task)
        return g._replace(b2=g.b2 * np.where(np.asarray(x)[..., 0, 0] == marker, 2.0, 1.0)[..., None])

    monkeypatch.setattr(mlp, "closed_form_gradients", wrong_on_k)


def test_problem_k_checks_problem_k(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _wrong_on_problem(monkeypatch, 4)
    assert cli.main(["--task", "regression", "--problem", "4", "--json"]) == cli.EXIT_MISMATCH
    (failure,) = json.loads(capsys.readouterr().out)["tasks"]["regression"]["failures"]
    assert failure["problem"] == 4
    for k in (0, 3):  # any other problem passes
        assert cli.main(["--task", "regression", "--problem", str(k), "--json"]) == cli.EXIT_OK
        capsys.readouterr()


def test_the_reproduce_command_reproduces_the_report(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _wrong_on_problem(monkeypatch, 2)
    assert cli.main(["--task", "regression", "--examples", "5", "--json"]) == cli.EXIT_MISMATCH
    (failure,) = json.loads(capsys.readouterr().out)["tasks"]["regression"]["failures"]
    assert failure["problem"] == 2
    command = shlex.split(failure["reproduce"])
    assert command[0] == "gradcheck"
    assert cli.main([*command[1:], "--json"]) == cli.EXIT_MISMATCH
    (again,) = json.loads(capsys.readouterr().out)["tasks"]["regression"]["failures"]
    assert again == failure  # the same problem, the same report, value for value


def test_check_json_is_the_same_twice_and_its_reproduce_command_reproduces_it(  # type: ignore[no-untyped-def]
    class_folder, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["check", f"{class_folder}/bob.py:grads", "--task", "regression", "--examples", "12", "--json"]
    assert cli.main(argv) == cli.EXIT_MISMATCH
    first = capsys.readouterr().out
    assert cli.main(argv) == cli.EXIT_MISMATCH
    assert capsys.readouterr().out == first  # byte for byte
    (sub,) = json.loads(first)["submissions"]
    command = shlex.split(sub["tasks"]["regression"]["reproduce"])
    assert command[:2] == ["gradcheck", "check"]
    assert cli.main([*command[1:], "--json"]) == cli.EXIT_MISMATCH
    (again,) = json.loads(capsys.readouterr().out)["submissions"]
    assert again["tasks"] == sub["tasks"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--help"], ["gradcheck check --help", "gradcheck prove --help", "gradcheck plot --help"]),
        (["check", "--help"], ["which task to check (default both)", "the most severe wins"]),
    ],
    ids=["main", "check"],
)
def test_help_names_every_command_and_every_default(
    argv: list[str], expected: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # argparse wraps to COLUMNS: one line per paragraph
    assert cli.main(argv) == cli.EXIT_OK
    out = capsys.readouterr().out
    for text in expected:
        assert text in out


def test_a_problem_rechecked_along_every_coordinate_prints_no_nan(capsys: pytest.CaptureFixture[str]) -> None:
    """ReLU problem 12 sits at kinks, so it is re-checked one by one: no directional figure is printed."""
    assert cli.main(["--activation", "relu", "--problem", "12"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "nan" not in out
    assert "finite differences along every coordinate of every problem" in out
    assert "not judged, in 1 problems (12)" in out


def test_check_searches_only_the_regimes_asked_for_and_reproduces_with_them(
    class_folder: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["check", f"{class_folder}/bob.py:grads", "--task", "regression", "--examples", "8", "--json"]
    assert cli.main([*argv, "--regimes", "tiny,saturated"]) == cli.EXIT_MISMATCH
    task = json.loads(capsys.readouterr().out)["submissions"][0]["tasks"]["regression"]
    assert task["counterexample"]["regime"] in ("tiny", "saturated")
    assert "--regimes tiny,saturated" in task["reproduce"]
    assert cli.main([*shlex.split(task["reproduce"])[1:], "--json"]) == cli.EXIT_MISMATCH
    assert json.loads(capsys.readouterr().out)["submissions"][0]["tasks"]["regression"] == task


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--regimes", "tinyy"], "no regime named 'tinyy'; choose among typical"),
        (["--regimes", ","], "no regime given"),
        (["--regimes", "tiny", "--loss", "x.py:loss", "--example", "x.py:ex"], "`--regimes` chooses among"),
    ],
)
def test_bad_regimes_are_usage_errors(flags: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", "nowhere.py:grads", *flags]) == cli.EXIT_USAGE
    assert message in capsys.readouterr().err


def test_the_main_jobs_progress_bar_moves_from_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """It advances while the problems are drawn, before any is checked, and reaches its total."""
    from rich.progress import Progress

    from gradcheck.cli import _main_job

    events: list[tuple[str, float]] = []
    advance = Progress.advance

    def recorded(self: Progress, task: Any, amount: float = 1) -> None:
        events.append(("advance", amount))
        advance(self, task, amount)

    checked = _main_job.check_batch

    def check(*args: Any, **kwargs: Any) -> Any:
        events.append(("check", 0))
        return checked(*args, **kwargs)

    monkeypatch.setattr(Progress, "advance", recorded)
    monkeypatch.setattr(_main_job, "check_batch", check)
    assert cli.main(["--task", "regression", "--examples", "40"]) == cli.EXIT_OK
    first_check = events.index(("check", 0))
    assert first_check >= 40  # one step per problem drawn, before any check
    assert sum(amount for kind, amount in events if kind == "advance") == 3 * 40
