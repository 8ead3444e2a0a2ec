"""One submission as `gradcheck check` graded it, and the text that tells a failure.

The same text reaches every output: the console report, the failure of a
JUnit test case and the output of a Gradescope test.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradcheck import _search, mlp, problems
from gradcheck._report import Report, worst_verdict

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
