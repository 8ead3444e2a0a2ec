"""The `gradcheck` command: main job, JSON, exit codes, and no raw tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gradcheck import cli


def test_main_job_passes_and_prints_tables(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--examples", "12"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    for task in ("regression", "classification"):
        assert f"{task}: 12 problems, seed 0, verdict PASS" in out
        assert f"identity dL/dz2 = a2 - y ({task}): holds" in out
    for column in ("|cf-ad|", "rel vs ad", "|cf-fd|", "rel vs fd", "tol used"):
        assert column in out


def test_json_report_is_clean_and_versioned(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--task", "classification", "--examples", "11", "--json"]) == cli.EXIT_OK
    data = json.loads(capsys.readouterr().out)  # nothing but JSON on stdout
    assert data["schema"] == cli.JSON_SCHEMA
    assert data["verdict"] == "pass"
    task = data["tasks"]["classification"]
    assert task["examples"] == 11
    assert task["identity"]["holds"] is True
    assert set(task["params"]) == {"w1", "b1", "w2", "b2"}
    assert all(v["tolerance_used"] <= 1 for v in task["params"].values())


def test_problem_option_reproduces_one_problem(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--task", "regression", "--seed", "3", "--problem", "5", "--json"]) == cli.EXIT_OK
    data = json.loads(capsys.readouterr().out)
    assert data["tasks"]["regression"]["examples"] == 1
    prob = cli.problem_for(5, seed=3, task="regression", inputs=2, hidden=3, batch=8)
    assert prob.regime == cli.problems.REGIMES[5]


def test_a_mismatch_exits_1_with_report_and_reproduce_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    correct = cli.mlp.closed_form_gradients

    def doubled(*args: object, **kwargs: object) -> cli.mlp.Params:
        return cli.mlp.Params(*(2 * g for g in correct(*args, **kwargs)))  # type: ignore[arg-type]

    monkeypatch.setattr(cli.mlp, "closed_form_gradients", doubled)
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
    pytest.param(["--problem", "-1"], "--problem must be 0 or more, got -1", id="problem-negative"),
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

    monkeypatch.setattr(cli, "check_gradients", boom)
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
