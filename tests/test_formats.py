"""Reports for grading platforms and CI: Gradescope's results.json and JUnit XML (gradcheck.cli._gradescope, _junit)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import cast

import pytest

from gradcheck import cli, mlp
from gradcheck.cli import _formats, _junit, _render
from gradcheck.cli._results import Case, Outcome, Results, Suite

ROOT = Path(__file__).resolve().parents[1]
CLASS = "examples/submissions/*.py:grads"  # alice is right, bob sums where the mean belongs, carol fails to load
ALICE = (ROOT / "examples" / "submissions" / "alice.py").read_text()
#: sigma' forgotten in the hidden layer: w1 and b1 are wrong, w2 and b2 right.
NO_SLOPE = ALICE.replace("d1 = d2[:, None] * w2 * a1 * (1 - a1)", "d1 = d2[:, None] * w2")
SUM_NOT_MEAN = "a sum where a mean belongs: off by a factor N, the batch size"


def assert_valid_junit(data: bytes) -> ET.Element:
    """Parse `data` with the standard library and check what the JUnit schemas require of it.

    Jenkins' junit-10.xsd and Ant's: a ``testsuites`` root of ``testsuite``
    elements, each with a name and consistent counts (tests, failures, errors,
    skipped) and a time; each ``testcase`` with a name and a classname; each
    ``failure`` or ``error`` with a message and a type. The root's counts are
    the sums of its suites'.
    """
    root = ET.fromstring(data)
    assert root.tag == "testsuites"
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for suite in root:
        assert suite.tag == "testsuite"
        assert suite.get("name")
        cases = list(suite)
        assert all(case.tag == "testcase" for case in cases)
        counts = {"tests": len(cases), "failures": 0, "errors": 0, "skipped": 0}
        for case in cases:
            assert case.get("name")
            assert case.get("classname")
            assert {child.tag for child in case} <= {"failure", "error", "skipped", "system-out", "system-err"}
            outcomes = [child for child in case if child.tag in ("failure", "error")]
            assert len(outcomes) <= 1
            for outcome in outcomes:
                assert outcome.get("message")
                assert outcome.get("type")
                assert outcome.text
                counts[{"failure": "failures", "error": "errors"}[outcome.tag]] += 1
        for key, count in counts.items():
            assert int(suite.get(key, "-1")) == count, (suite.get("name"), key)
            totals[key] += count
        assert float(suite.get("time", "-1")) >= 0
    for key, count in totals.items():
        assert int(root.get(key, "-1")) == count, key
    return root


def _cases(root: ET.Element) -> dict[tuple[str, str], ET.Element]:
    """Test cases by (suite, case name)."""
    return {(suite.get("name", ""), case.get("name", "")): case for suite in root for case in suite}


# --- gradcheck check --format gradescope, --junit-xml ---------------------------------


def test_a_class_graded_for_gradescope_and_junit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The glob over examples/submissions/: a right, a wrong and a broken submission, in both formats at once."""
    monkeypatch.chdir(ROOT)  # the docs' command, run from the repository root
    results, junit = tmp_path / "autograder" / "results.json", tmp_path / "reports" / "gradcheck.xml"
    argv = ["check", CLASS, "--task", "regression", "--examples", "10", "--format", "gradescope", "--points", "40"]
    code = cli.main([*argv, "--output", str(results), "--junit-xml", str(junit)])
    assert code == cli.EXIT_MISMATCH  # bob's mismatch outranks carol's load error, as without the formats
    captured = capsys.readouterr()
    assert "3 submissions" in captured.out  # with --output, stdout keeps the usual report
    assert f"wrote JUnit XML to {junit}" in captured.err

    document = json.loads(results.read_text())
    tests = document["tests"]
    assert len(tests) == 3 * 1 * 4  # submission x task x parameter
    for test in tests:
        assert set(test) >= {"name", "score", "max_score", "status", "output"}
        assert test["max_score"] == 40 / 4  # --points over one task and four parameters
        assert test["status"] == ("passed" if test["score"] == test["max_score"] else "failed")
    students = ("alice", "bob", "carol")
    by_student = {s: [t for t in tests if f"/{s}.py:grads [regression]: " in t["name"]] for s in students}
    assert [t["name"].rsplit(": ", 1)[1] for t in by_student["alice"]] == list(mlp.Params._fields)
    assert all(t["status"] == "passed" for t in by_student["alice"])
    for test in by_student["bob"]:
        assert test["status"] == "failed"
        assert f"likely mistake: {SUM_NOT_MEAN}" in test["output"]
        # The head says where it is wrong: on the counterexample when its row there says so (a zero
        # gradient, right times any factor, can hide the mistake), else on the generic problem.
        param = test["name"].rsplit(": ", 1)[1]
        row = next(line for line in test["output"].splitlines() if line.startswith(f"  {param}  "))
        where = test["output"].split(";")[0]
        assert where.endswith("MISMATCH on the minimal counterexample below") is ("MISMATCH" in row)
        assert "minimal counterexample (task=regression" in test["output"]
        assert (
            "reproduce: gradcheck check examples/submissions/bob.py:grads --task regression --examples 10"
            in (test["output"])
        )
    for test in by_student["carol"]:  # fails to load: no points, and her own traceback
        assert test["score"] == 0
        assert 'File "examples/submissions/carol.py", line' in test["output"]
        assert test["output"].endswith("NameError: name 'params' is not defined")
    assert document["score"] == sum(t["score"] for t in tests) == 40  # alice's whole grade; bob and carol 0
    assert "examples/submissions/carol.py:grads: 0 of 40 points, ERROR" in document["output"]

    root = assert_valid_junit(junit.read_bytes())
    cases = _cases(root)
    assert len(cases) == 3 * 1  # submission x task
    alice, bob, carol = (cases[(f"examples/submissions/{s}.py:grads", "regression")] for s in ("alice", "bob", "carol"))
    assert list(alice) == []
    failure = bob.find("failure")
    assert failure is not None
    assert failure.get("message", "").startswith(f"w1, b1, w2, b2: {SUM_NOT_MEAN}")  # one diagnosis, for all four
    assert "reproduce: gradcheck check examples/submissions/bob.py:grads" in (failure.text or "")
    error = carol.find("error")
    assert error is not None
    assert error.get("type") == "LoadError"
    assert "NameError: name 'params' is not defined" in error.get("message", "")


def test_gradescope_gives_partial_credit_per_parameter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """sigma' forgotten: w1 and b1 fail; w2 and b2, right where the others are wrong, earn their share."""
    (tmp_path / "dan.py").write_text(NO_SLOPE)
    monkeypatch.chdir(tmp_path)
    argv = ["check", "dan.py:grads", "--task", "classification", "--examples", "10", "--format", "gradescope"]
    assert cli.main([*argv, "--points", "8"]) == cli.EXIT_MISMATCH
    document = json.loads(capsys.readouterr().out)  # without --output, stdout is results.json alone
    scores = {t["name"].rsplit(": ", 1)[1]: t["score"] for t in document["tests"]}
    assert scores == {"w1": 0, "b1": 0, "w2": 2, "b2": 2}
    assert document["score"] == 4
    outputs = {t["name"].rsplit(": ", 1)[1]: t["output"] for t in document["tests"]}
    assert outputs["b1"].startswith("b1: MISMATCH on the minimal counterexample below; likely mistake: missing sigma'")
    assert outputs["w2"].startswith("w2: pass on the minimal counterexample")


def test_gradescope_on_stdout_splits_the_default_100_points_over_both_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --output, stdout is the document alone: a submission's prints go to stderr."""
    (tmp_path / "chatty.py").write_text('print("importing!")\n' + ALICE)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["check", "chatty.py:grads", "--examples", "5", "--format", "gradescope"]) == cli.EXIT_OK
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert "importing!" in captured.err
    assert [t["max_score"] for t in document["tests"]] == [100 / 8] * 8
    assert document["score"] == 100
    assert {t["name"].split(" [")[1].split("]")[0] for t in document["tests"]} == set(mlp.TASKS)


def test_gradescope_file_and_json_on_stdout_together(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results.json"
    argv = ["check", str(ROOT / "examples/submissions/alice.py:grads"), "--task", "regression", "--examples", "3"]
    assert cli.main([*argv, "--format", "gradescope", "--output", str(results), "--json"]) == cli.EXIT_OK
    report = json.loads(capsys.readouterr().out)  # the --json report, its schema unchanged
    assert report["schema"] == cli.JSON_SCHEMA
    assert report["kind"] == "check"
    assert json.loads(results.read_text())["score"] == 100


def test_junit_survives_characters_xml_cannot_hold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A traceback with a NUL and a colour code still makes a valid XML file: they are written as escapes."""
    (tmp_path / "odd.py").write_text('raise ValueError("a NUL \\x00 and \\x1b[31mred\\x1b[0m")\n')
    junit = tmp_path / "junit.xml"
    assert cli.main(["check", f"{tmp_path}/odd.py:grads", "--examples", "3", "--junit-xml", str(junit)]) == 2
    capsys.readouterr()
    root = assert_valid_junit(junit.read_bytes())
    for error in root.iter("error"):  # one per task
        assert "a NUL \\x00 and \\x1b[31mred\\x1b[0m" in error.get("message", "")


# --- the main job --junit-xml ---------------------------------------------------------


def test_main_job_junit_passes_one_case_per_task_and_parameter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junit = tmp_path / "gradcheck.xml"
    assert cli.main(["--examples", "3", "--junit-xml", str(junit)]) == cli.EXIT_OK
    assert "verdict PASS" in capsys.readouterr().out
    cases = _cases(assert_valid_junit(junit.read_bytes()))
    identity = "identity dL/dz2 = a2 - y"
    assert set(cases) == {(t, name) for t in mlp.TASKS for name in (*mlp.Params._fields, identity)}
    assert all(not [c for c in case if c.tag in ("failure", "error")] for case in cases.values())
    out = cases[("regression", "w1")].find("system-out")
    assert out is not None
    assert "worst over 3 problems: max_abs_err_autodiff = " in (out.text or "")


def test_main_job_junit_fails_the_wrong_parameter_with_its_diagnosis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    correct = mlp.closed_form_gradients

    def b1_doubled(*args: object, **kwargs: object) -> mlp.Params:
        g = correct(*args, **kwargs)  # type: ignore[arg-type]
        return g._replace(b1=2 * g.b1)

    monkeypatch.setattr(mlp, "closed_form_gradients", b1_doubled)
    junit = tmp_path / "gradcheck.xml"
    assert cli.main(["--task", "regression", "--examples", "4", "--junit-xml", str(junit), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)  # --json is unchanged by --junit-xml
    blamed = [f for f in report["tasks"]["regression"]["failures"] if f["params"][1]["status"] == "mismatch"]
    assert blamed
    cases = _cases(assert_valid_junit(junit.read_bytes()))
    failed = {name for (_, name), case in cases.items() if case.find("failure") is not None}
    assert failed == {"b1"}
    failure = cases[("regression", "b1")].find("failure")
    assert failure is not None
    assert failure.get("message") == (
        f"b1: MISMATCH on {len(blamed)} of 4 problems; likely mistake: off by a constant factor 2 (on this problem)"
    )
    assert f"reproduce: {blamed[0]['reproduce']}" in (failure.text or "")


def test_main_job_junit_strict_reports_elements_at_a_kink(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junit = tmp_path / "gradcheck.xml"
    argv = ["--layers", "2,6,1", "--activation", "relu", "--problem", "9", "--strict", "--junit-xml", str(junit)]
    assert cli.main(argv) == cli.EXIT_INCONCLUSIVE  # problem 9: the kink regime
    capsys.readouterr()
    cases = _cases(assert_valid_junit(junit.read_bytes()))
    (kinks,) = [case for (_, name), case in cases.items() if name == "every element judged (--strict)"]
    error = kinks.find("error")
    assert error is not None
    assert error.get("type") == "NotJudged"
    assert "not judged, in 1 problems; --strict fails them" in error.get("message", "")


# --- misuse ---------------------------------------------------------------------------

BAD_FORMAT_ARGS = [
    pytest.param(["--format", "canvas"], "argument --format: invalid choice: 'canvas'", id="format-unknown"),
    pytest.param(
        ["--format", "gradescope", "--points", "-3"],
        "--points must be a number of points above 0, got -3; e.g. --points 100",
        id="points-negative",
    ),
    pytest.param(["--format", "gradescope", "--points", "0"], "above 0, got 0", id="points-zero"),
    pytest.param(["--format", "gradescope", "--points", "nan"], "above 0, got nan", id="points-nan"),
    pytest.param(["--format", "gradescope", "--points", "lots"], "number of points, got 'lots'", id="points-text"),
    pytest.param(
        ["--points", "10"], "`--points` sets the total of a graded report; add `--format gradescope`", id="points-alone"
    ),
    pytest.param(
        ["--format", "junit", "--points", "10"],
        "`--points` sets the total of a graded report (`--format junit` has no points); add `--format gradescope`",
        id="points-ungraded",
    ),
    pytest.param(
        ["--output", "{tmp}/r.json"],
        "`--output` is where `--format` writes its document; add `--format gradescope`",
        id="output-alone",
    ),
    pytest.param(["--output", "{tmp}/report.xml"], "writes its document; add `--format junit`", id="output-xml-alone"),
    pytest.param(
        ["--format", "junit", "--json"], "add `--output gradcheck.xml` to write the junit report", id="json-and-junit"
    ),
    pytest.param(["--format", "gradescope", "--json"], "`--json` and `--format gradescope` both", id="json-and-format"),
    pytest.param(
        ["--format", "gradescope", "--output", "{tmp}/a_file/results.json"],
        "a_file` is a file, not a folder; pick a file in a folder you can write to, e.g. --output results.json",
        id="output-under-a-file",
    ),
    pytest.param(
        ["--format", "gradescope", "--output", "{tmp}"], "is a folder, not a file; pick a file", id="output-a-folder"
    ),
    pytest.param(["--output-dir", "{tmp}/out"], "`--output-dir` is where `--format` writes one", id="dir-alone"),
    pytest.param(
        ["--format", "gradescope", "--output-dir", "{tmp}/out", "--output", "{tmp}/r.json"],
        "give one of them",
        id="dir-and-output",
    ),
    pytest.param(
        ["--format", "gradescope", "--output-dir", "{tmp}/a_file"], "is a file, not a folder", id="dir-a-file"
    ),
    pytest.param(
        ["--junit-xml", "{tmp}/a_file/deeper/gradcheck.xml"],
        "a_file` is a file, not a folder; pick a file in a folder you can write to, e.g. --junit-xml gradcheck.xml",
        id="junit-under-a-file",
    ),
]


#: Each bad call, for `gradcheck check` and, where the flag is one it has (--junit-xml), for the main job.
BAD_CALLS = [
    pytest.param(command, *case.values, id=f"{name}-{case.id}")
    for name, command in (("check", ["check", "examples/submissions/alice.py:grads"]), ("main-job", []))
    for case in BAD_FORMAT_ARGS
    if command or "--junit-xml" in cast("list[str]", case.values[0])
]


@pytest.mark.parametrize(("command", "argv", "message"), BAD_CALLS)
def test_bad_report_arguments_exit_2_naming_the_argument(
    command: list[str],
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(ROOT)
    (tmp_path / "a_file").write_text("")
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert cli.main([*command, *argv, "--examples", "1"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # nothing written


def test_a_report_that_cannot_be_written_is_a_usage_error_naming_the_flag(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ValueError, match=r"`--output .*a_file/results\.json`: cannot write it \(.*\); pick a file"):
        _render.write_report(tmp_path / "a_file" / "results.json", b"{}", "--output", "Gradescope results")


def test_junit_document_counts_and_escapes() -> None:
    broken = Outcome("error", "LoadError", "cannot load <b>: \x00", "Traceback ...\x07")
    wrong = Outcome("failure", "GradientMismatch", "w1: off by 2", "report")
    suites = [
        Suite("a", 1.5, [Case("regression", "a", None, 1.0), Case("classification", "a", wrong)]),
        Suite("b", 0.0, [Case("regression", "b", broken)]),
    ]
    root = assert_valid_junit(_junit.document(Results("gradcheck check", suites)))
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("time")) == ("3", "1", "1", "1.500")
    (error,) = root.iter("error")
    assert error.get("message") == "cannot load <b>: \\x00"
    assert error.text == "Traceback ...\\x07"


def test_gradescope_writes_one_results_file_per_submission_into_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Gradescope grades each submission on its own: --output-dir writes DIR/<name>/results.json for each, the
    same tests and scores as that submission's part of the one document --output writes."""
    monkeypatch.chdir(ROOT)
    argv = ["check", CLASS, "--task", "regression", "--examples", "10", "--format", "gradescope", "--points", "40"]
    assert cli.main([*argv, "--output", str(tmp_path / "all.json")]) == cli.EXIT_MISMATCH
    together = json.loads((tmp_path / "all.json").read_text())
    assert cli.main([*argv, "--output-dir", str(tmp_path / "each")]) == cli.EXIT_MISMATCH
    assert "3 submissions" in capsys.readouterr().out  # the usual report stays on stdout
    folders = sorted(p.name for p in (tmp_path / "each").iterdir())
    assert folders == ["alice", "bob", "carol"]
    for name in folders:
        one = json.loads((tmp_path / "each" / name / "results.json").read_text())
        mine = [t for t in together["tests"] if t["name"].startswith(f"examples/submissions/{name}.py:grads ")]
        assert one["tests"] == mine
        assert one["score"] == sum(t["score"] for t in mine)
        assert one["score"] <= 40


def test_two_submissions_with_one_file_name_get_folders_of_their_own() -> None:
    results = Results(
        "gradcheck check",
        [Suite(s, 0.0) for s in ("a/hw.py:grads", "b/hw.py:grads", "b/hw.py:other", "c/solo.py:grads")],
    )
    assert list(_formats.folder_names(results)) == ["hw-grads", "hw-grads-2", "hw-other", "solo"]


def test_format_junit_writes_the_document_that_junit_xml_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One model, every format: `--format junit --output` and `--junit-xml` write the same bytes (times aside),
    and `--output-dir` one JUnit file per submission, named as Gradescope's are."""
    monkeypatch.chdir(ROOT)
    argv = ["check", CLASS, "--task", "regression", "--examples", "10", "--format", "junit"]
    code = cli.main([*argv, "--output", str(tmp_path / "a.xml"), "--junit-xml", str(tmp_path / "b.xml")])
    assert code == cli.EXIT_MISMATCH
    untimed = [re.sub(r'time="[0-9.]+"', "", (tmp_path / n).read_text()) for n in ("a.xml", "b.xml")]
    assert untimed[0] == untimed[1]
    assert cli.main([*argv, "--output-dir", str(tmp_path / "each")]) == cli.EXIT_MISMATCH
    for name in ("alice", "bob", "carol"):
        root = assert_valid_junit((tmp_path / "each" / name / "gradcheck.xml").read_bytes())
        assert [suite.get("name") for suite in root] == [f"examples/submissions/{name}.py:grads"]


def test_a_new_format_is_one_registration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A format registered in FORMATS is a `--format` choice at once, written from the same `Results`."""

    def tap(results: Results) -> bytes:  # the Test Anything Protocol, one line per case
        cases = [(suite, case) for suite in results.suites for case in suite.cases]
        lines = [f"1..{len(cases)}"] + [
            f"{'not ok' if case.outcome else 'ok'} {k} - {suite.name} [{case.name}]"
            for k, (suite, case) in enumerate(cases, 1)
        ]
        return ("\n".join(lines) + "\n").encode()

    monkeypatch.setitem(_formats.FORMATS, "tap", _formats.Format(tap, "gradcheck.tap", "TAP"))
    monkeypatch.chdir(ROOT)
    argv = ["check", CLASS, "--task", "regression", "--examples", "10", "--format", "tap"]
    assert cli.main(argv) == cli.EXIT_MISMATCH
    assert capsys.readouterr().out.splitlines() == [
        "1..3",
        "ok 1 - examples/submissions/alice.py:grads [regression]",
        "not ok 2 - examples/submissions/bob.py:grads [regression]",
        "not ok 3 - examples/submissions/carol.py:grads [regression]",
    ]


def test_a_document_on_stdout_is_its_own_utf8_bytes_whatever_stdout_encodes() -> None:
    """JUnit XML declares UTF-8 and holds "±": on a stdout whose text encoding is ASCII it is still written, as
    the bytes it declares."""
    import os
    import subprocess
    import sys

    command = [sys.executable, "-m", "gradcheck", "check", "examples/submissions/bob.py:grads", "--task", "regression"]
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    done = subprocess.run(
        [*command, "--examples", "5", "--format", "junit"], cwd=ROOT, env=env, capture_output=True, check=False
    )
    assert done.returncode == cli.EXIT_MISMATCH, done.stderr.decode()
    assert done.stdout.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    assert "±".encode() in done.stdout
    assert_valid_junit(done.stdout)
