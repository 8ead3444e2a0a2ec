"""Gradescope's ``results.json`` for ``gradcheck check --format gradescope``.

The shape that Gradescope's autograder harness reads from
``/autograder/results/results.json`` (and that other platforms read too;
https://gradescope-autograders.readthedocs.io/en/latest/specs/): a top-level
``score`` and ``output``, and one test per submission × task × parameter with
``name``, ``score``, ``max_score``, ``status`` ("passed" or "failed") and
``output``, plain text shown to the student.

Each submission is worth ``--points``, split evenly over the tasks checked
and, within a task, over the parameters (the seed network's four, or those
of the ``--loss``). A parameter earns its share when the search passes, or
when it is right on the problems where the search found the others wrong.
A submission that fails to load earns nothing, and each of its tests shows
the traceback.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

import gradcheck
from gradcheck.cli._graded import (
    Grading,
    Submission,
    failed_params,
    failure_text,
    generic_problem,
    imprecise_text,
    reproduce,
)

#: Decimals kept in a score: shares of the total are exact, and sums of them
#: lose no point to a float's last bits (0.1 + 0.2).
SCORE_DECIMALS = 6


def folder_names(done: list[Submission]) -> dict[str, Submission]:
    """A folder name for each submission's results.json (``--output-dir``): its file's name without the suffix
    ("alice" for hw/alice.py:grads), with the function's after it where two files share a name, and a number
    where that is not enough."""

    def stem(sub: Submission) -> str:
        return Path(sub.spec.rsplit(":", 1)[0]).stem or "submission"

    counts = Counter(stem(sub) for sub in done)
    named: dict[str, Submission] = {}
    for sub in done:
        name = stem(sub) if counts[stem(sub)] == 1 else f"{stem(sub)}-{sub.spec.rsplit(':', 1)[-1]}"
        base, k = name, 2
        while name in named:
            name, k = f"{base}-{k}", k + 1
        named[name] = sub
    return named


def results(done: list[Submission], grading: Grading, args: argparse.Namespace) -> dict[str, Any]:
    """The ``results.json`` document for the submissions in `done`, checked on `grading`'s tasks."""
    tasks = grading.tasks
    share = args.points / (len(tasks) * len(grading.params))
    tests: list[dict[str, Any]] = []
    summary = [
        f"gradcheck {gradcheck.__version__}: {args.examples} problems searched per task ({', '.join(tasks)}), "
        f"seed {args.seed}; {args.points:g} points per submission, {share:g} per test"
    ]
    for sub in done:
        earned = 0.0
        for task in tasks:
            for name in grading.params:
                passed, output = _test(sub, task, name, args)
                earned += share if passed else 0.0
                tests.append(
                    {
                        "name": f"{sub.spec} [{task}]: {name}",
                        "score": round(share if passed else 0.0, SCORE_DECIMALS),
                        "max_score": round(share, SCORE_DECIMALS),
                        "status": "passed" if passed else "failed",
                        "output": output,
                        "output_format": "text",
                    }
                )
        earned = round(earned, SCORE_DECIMALS)
        summary.append(f"{sub.spec}: {earned:g} of {args.points:g} points, {sub.verdict.upper()}")
    return {
        "score": round(sum(test["score"] for test in tests), SCORE_DECIMALS),
        "output": "\n".join(summary),
        "output_format": "text",
        "tests": tests,
    }


def _test(sub: Submission, task: str, name: str, args: argparse.Namespace) -> tuple[bool, str]:
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
