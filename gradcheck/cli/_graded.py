"""One submission as `gradcheck check` graded it, the text that tells a failure, and the run's `Results`.

The same text reaches every output: the console report, and through
`check_results` every report format (the failure of a JUnit test case, the
output of a Gradescope test).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import gradcheck
from gradcheck import _search, mlp, problems
from gradcheck._report import Report, worst_verdict
from gradcheck.cli._results import Case, Outcome, Part, Results, Suite

#: The parameters of the seed network that `gradcheck check` grades, in order.
PARAMS: tuple[str, ...] = mlp.Params._fields

FLAKY = _search.FLAKY
GENERIC_PROBLEM = _search.GENERIC_PROBLEM
DIAGNOSIS_PROBLEM = f"{GENERIC_PROBLEM} where it fails too, else on the counterexample"
#: With --loss: the problem whose diagnosis comes first (`_search_loss.search_loss`'s generic report).
FIRST_FAILURE = "the example, or the failing draw with the most non-zero entries"


@dataclass(frozen=True)
class Grading:
    """What one `gradcheck check` run grades: the seed network's tasks, or one instructor's loss (--loss)."""

    #: The tasks each submission is searched on ("regression", ...; with --loss, the loss's name).
    tasks: tuple[str, ...]
    #: The parameters a gradient has, in order.
    params: tuple[str, ...]
    #: How FUNC is called, told with a wrong call.
    signature: str
    #: ``search(func, task)``: the search for one submission's function on one task.
    search: Callable[[Any, str], _search.SearchResult]


@dataclass
class Submission:
    """One FILE:FUNC and what the search found for each task."""

    spec: str
    results: dict[str, _search.SearchResult] = field(default_factory=dict)
    load_error: str | None = None
    #: Seconds each task's search took.
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        if self.load_error:
            return "error"
        return worst_verdict(r.verdict for r in self.results.values())

    def summary(self) -> str:
        """The reason in full: what failed to load and why, the wrong call, or the likely mistake."""
        if self.load_error:
            return reason(self.load_error)
        failed = {t: r for t, r in self.results.items() if not r.ok}
        if not failed:
            imprecise = {t: r.imprecise for t, r in self.results.items() if r.imprecise is not None}
            if imprecise:
                task, (_, report) = next(iter(imprecise.items()))
                return f"{task}: {imprecise_line(report)}"
            return "-"
        task, result = next(iter(failed.items()))
        if result.error is not None:
            return f"{task}: {reason(result.error)}"
        if result.report is not None and result.report.error is not None:  # it raised on the counterexample
            return f"{task}: {reason(result.report.error)}"
        name, diagnosis = next(iter(result.diagnoses().items()), ("?", "unclassified"))
        return f"{task}: {name}: {diagnosis}"


def reason(error: str) -> str:
    """An error's first line and, when it differs, its exception's (the last line of a traceback)."""
    lines = [line for line in error.splitlines() if line.strip()]
    exception = next((line for line in reversed(lines) if not line.startswith(" ") and ": " in line), lines[-1])
    return lines[0] if exception == lines[0] else f"{lines[0].rstrip(':')}: {exception.strip()}"


def reproduce(spec: str, task: str, args: argparse.Namespace) -> str:
    """The command that re-runs one submission's search for one task."""
    return f"gradcheck check {spec} {problem_flags(task, args)} --examples {args.examples} --seed {args.seed}"


def problem_flags(task: str, args: argparse.Namespace) -> str:
    """The flags that choose the problems: ``--task T``, or the loss and its problems (or example)."""
    if args.loss is None:
        chosen = getattr(args, "regimes", None)
        return f"--task {task}" + (f" --regimes {','.join(chosen)}" if chosen else "")
    drawn = f"--problems {args.problems}" if args.problems is not None else f"--example {args.example}"
    return f"--loss {args.loss} {drawn}"


def generic_problem(args: argparse.Namespace) -> str:
    """The problem whose diagnosis comes before the counterexample's, in words."""
    return GENERIC_PROBLEM if args.loss is None else FIRST_FAILURE


def counterexample_json(prob: problems.Problem | _search.LossProblem) -> dict[str, Any]:
    if isinstance(prob, _search.LossProblem):
        params, args = prob.named()
        return {"params": {n: a.tolist() for n, a in params}, "args": {n: a.tolist() for n, a in args}}
    return {
        "task": prob.task,
        "regime": prob.regime,
        "params": {k: np.asarray(v).tolist() for k, v in prob.params._asdict().items()},
        "x": prob.x.tolist(),
        "y": prob.y.tolist(),
    }


def failure_text(spec: str, task: str, result: _search.SearchResult, args: argparse.Namespace) -> str:
    """A failed search as the console shows it: minimal counterexample, its report, diagnosis, reproduce command."""
    assert result.counterexample is not None
    assert result.report is not None
    prob = result.counterexample
    lines = [
        f"{spec} [{task}]: {result.verdict.upper()}, first at problem {result.examples}; minimal counterexample "
        f"({prob.describe()}):"
    ]
    lines += [f"  {name} = {np.array2string(value, separator=', ')}" for name, value in prob.arrays().items()]
    lines.append(str(result.told()))
    if result.flaky:
        lines.append(FLAKY)
    if result.diagnoses():
        where = (
            f"confirmed on {DIAGNOSIS_PROBLEM}"
            if args.loss is None
            else f"on {FIRST_FAILURE}, else on the counterexample"
        )
        lines.append(f"diagnosis, {where}:")
        lines += [f"  {name}: {diagnosis}" for name, diagnosis in result.diagnoses().items()]
    lines.append(f"reproduce: {reproduce(spec, task, args)}")
    return "\n".join(lines)


def imprecise_line(report: Report) -> str:
    """One line for an "imprecise" report: the derivation is right, and the fewest digits kept (and where)."""
    kept = [p for p in report.params if p.status == "imprecise"]
    worst = min(kept, key=lambda p: p.digits_kept)
    return (
        f"IMPRECISE: the derivation is right; its float64 evaluation keeps about {worst.digits_kept:.1f} "
        f"significant digits ({', '.join(p.name for p in kept)})"
    )


def imprecise_text(spec: str, task: str, result: _search.SearchResult, args: argparse.Namespace) -> str:
    """A search that found the derivation right but imprecise in float64, as the console shows it."""
    assert result.imprecise is not None
    prob, report = result.imprecise
    strict = " (fails with --strict)" if not getattr(args, "strict", False) else " (--strict: a failure)"
    lines = [
        f"{spec} [{task}]: {imprecise_line(report)}{strict}; no mismatch on {result.examples} problems. "
        f"The first problem where digits were lost ({prob.describe()}):",
        str(report),
        f"reproduce: {reproduce(spec, task, args)}",
    ]
    return "\n".join(lines)


def failed_params(result: _search.SearchResult) -> list[str]:
    """The parameters a failed search blames: wrong on the counterexample or the generic problem, or diagnosed."""
    blamed = set(result.diagnoses())
    for report in (result.report, result.generic):
        blamed |= {p.name for p in (report.params if report else ()) if p.status in ("mismatch", "error")}
    order = [p.name for p in result.report.params] if result.report else PARAMS
    return [name for name in order if name in blamed]


def diagnosis_line(result: _search.SearchResult) -> str:
    """The diagnoses of a failed search on one line, parameters with the same one together ("w1, b1: ...")."""
    by_diagnosis: dict[str, list[str]] = {}
    diagnoses = result.diagnoses()
    for name in failed_params(result):
        by_diagnosis.setdefault(diagnoses.get(name, "MISMATCH"), []).append(name)
    return "; ".join(f"{', '.join(names)}: {diagnosis}" for diagnosis, names in by_diagnosis.items())


def check_results(done: list[Submission], grading: Grading, args: argparse.Namespace) -> Results:
    """What `gradcheck check` found, for every format: a suite per submission, a case per task, a graded part
    per parameter.

    Each submission is worth ``args.points``, split evenly over the tasks checked and, within a task, over
    the parameters (the seed network's four, or those of the ``--loss``). A parameter earns its share when
    the search passes, or when it is right on the problems where the search found the others wrong. A
    submission that fails to load earns nothing, and each of its parts shows the traceback.
    """
    share = args.points / (len(grading.tasks) * len(grading.params))
    summary = (
        f"gradcheck {gradcheck.__version__}: {args.examples} problems searched per task ({', '.join(grading.tasks)}), "
        f"seed {args.seed}; {args.points:g} points per submission, {share:g} per test"
    )
    suites = [
        Suite(
            sub.spec,
            sum(sub.seconds.values()),
            [_case(sub, task, grading, args, share) for task in grading.tasks],
            sub.verdict,
        )
        for sub in done
    ]
    return Results("gradcheck check", suites, summary, args.points)


def _case(sub: Submission, task: str, grading: Grading, args: argparse.Namespace, share: float) -> Case:
    """One task of a submission: failed with the diagnosis, or an error if it was not checked."""
    parts = []
    for name in grading.params:
        passed, text = _earns(sub, task, name, args)
        parts.append(Part(name, passed, share, text))
    outcome = None
    output = ""
    if sub.load_error:
        last = sub.load_error.splitlines()[-1]
        outcome = Outcome("error", "LoadError", f"cannot load {sub.spec}: {last}", sub.load_error)
        return Case(task, sub.spec, outcome, sub.seconds.get(task, 0.0), output, parts)
    result = sub.results[task]
    if result.error is not None:
        outcome = Outcome("error", "WrongCall", f"{sub.spec} [{task}]: {reason(result.error)}", result.error)
    elif not result.ok:
        outcome = Outcome(
            "failure", "GradientMismatch", diagnosis_line(result), failure_text(sub.spec, task, result, args)
        )
    elif result.imprecise is not None:
        text = imprecise_text(sub.spec, task, result, args)
        if args.strict:
            outcome = Outcome("failure", "ImpreciseGradient", text.splitlines()[0], text)
        else:
            output = text
    return Case(task, sub.spec, outcome, sub.seconds.get(task, 0.0), output, parts)


def _earns(sub: Submission, task: str, name: str, args: argparse.Namespace) -> tuple[bool, str]:
    """Whether parameter `name` of `sub` earns its points on `task`, and the text that says why."""
    if sub.load_error:
        return False, f"{name}: not checked: the file failed to load, so it earns no points.\n\n{sub.load_error}"
    result = sub.results[task]
    if result.error is not None:  # a wrong call: no search ran, so nothing earns points
        return False, f"{name}: not checked: the function cannot be called as the task requires.\n\n{result.error}"
    if result.ok and result.imprecise is not None and result.imprecise[1][name].status == "imprecise":
        text = imprecise_text(sub.spec, task, result, args)
        if args.strict:
            return False, f"{name}: IMPRECISE, and --strict fails it: {text}"
        return True, f"{name}: points given: {text}"
    if result.ok:
        return True, (
            f"{name}: PASS: agrees with autodiff and finite differences on all {result.examples} problems "
            f"searched ({task}, {_drawn(args)}, seed {args.seed})."
        )
    failed = failed_params(result)
    if name in failed:
        assert result.report is not None
        status = next(p.status for p in result.report.params if p.name == name)
        # The minimal counterexample can hide a mistake (a zero gradient is right times any factor).
        where = "on the minimal counterexample below"
        if status not in ("mismatch", "error"):
            where = f"on {generic_problem(args)}, though not on the minimal counterexample below"
        diagnosis = result.diagnoses().get(name)
        head = f"{name}: MISMATCH {where}" + (f"; likely mistake: {diagnosis}" if diagnosis else "")
        return False, f"{head}\n\n{failure_text(sub.spec, task, result, args)}"
    where = "the minimal counterexample" + (f" and {generic_problem(args)}" if result.generic else "")
    return True, (
        f"{name}: pass on {where}, where {', '.join(failed)} {'is' if len(failed) == 1 else 'are'} wrong; the search "
        f"for {task} stopped at that first failure.\n\nreproduce: {reproduce(sub.spec, task, args)}"
    )


def _drawn(args: argparse.Namespace) -> str:
    """Where the problems searched came from, in words."""
    if args.loss is None:
        return "every regime"
    return f"drawn from {args.problems}" if args.problems is not None else f"shaped like {args.example}"
