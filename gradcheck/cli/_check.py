"""`gradcheck check FILE:FUNC ...`: a user's gradient functions (an autograder, a CI gate).

Hypothesis searches problems in every regime for each submission and shrinks
the first failure to a minimal counterexample (`gradcheck._search`).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress

import gradcheck
from gradcheck import _search, _submissions, mlp, problems
from gradcheck._report import worst_verdict
from gradcheck.cli._args import integer, positive
from gradcheck.cli._render import (
    EXIT_MISMATCH,
    EXIT_OK,
    EXIT_USAGE,
    JSON_SCHEMA,
    make_console,
    print_json,
    report_table,
)


def build_check_parser() -> argparse.ArgumentParser:
    """The parser of `gradcheck check`."""
    parser = argparse.ArgumentParser(
        prog="gradcheck check",
        description=(
            "Check gradient functions written by hand. Each FUNC in FILE has the signature of "
            "gradcheck.mlp.closed_form_gradients: FUNC(params, x, y, *, task) -> gradients with the "
            "fields of params (w1, b1, w2, b2). Hypothesis searches problems in every regime and "
            "shrinks the first failure to a minimal counterexample."
        ),
        epilog=(
            "Exit codes: 0 all pass, 1 a mismatch, 2 usage, load error or a wrong call (a FUNC that cannot be "
            "called as above: no search is run), 4 internal error; with several submissions the most severe wins, "
            "in that order (1 before 2)."
        ),
    )
    parser.add_argument("submissions", nargs="+", metavar="FILE:FUNC", help="e.g. hw2/alice.py:grads (globs allowed)")
    parser.add_argument(
        "--task", choices=(*mlp.TASKS, "both"), default="both", help="which task to check (default both)"
    )
    parser.add_argument("--examples", type=positive("--examples"), default=100, help="problems per task (default 100)")
    parser.add_argument("--seed", type=integer("--seed", 0), default=0, help="seed of the search (default 0)")
    parser.add_argument("--json", action="store_true", help="print a machine-readable JSON report only")
    return parser


@dataclass
class Submission:
    """One FILE:FUNC and what the search found for each task."""

    spec: str
    results: dict[str, _search.SearchResult] = field(default_factory=dict)
    load_error: str | None = None

    @property
    def verdict(self) -> str:
        if self.load_error:
            return "error"
        return worst_verdict(r.verdict for r in self.results.values())

    def summary(self) -> str:
        """The reason in full: what failed to load and why, the wrong call, or the likely mistake."""
        if self.load_error:
            return _reason(self.load_error)
        failed = {t: r for t, r in self.results.items() if not r.ok}
        if not failed:
            return "-"
        task, result = next(iter(failed.items()))
        if result.error is not None:
            return f"{task}: {_reason(result.error)}"
        name, diagnosis = next(iter(result.diagnoses().items()), ("?", "unclassified"))
        return f"{task}: {name}: {diagnosis}"


def check_main(args: argparse.Namespace) -> int:
    """Check every submission that `args` name; print the report; return the exit code."""
    try:
        specs = _submissions.expand(args.submissions)
    except _submissions.LoadError as exc:
        print(f"gradcheck check: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    tasks: list[mlp.Task] = list(mlp.TASKS) if args.task == "both" else [args.task]
    console = make_console(stderr=args.json)
    done: list[Submission] = []
    # With --json, whatever the submissions print goes to stderr: stdout is the JSON alone.
    quiet = contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext()
    with quiet, Progress(console=console, transient=True, disable=args.json or not console.is_terminal) as progress:
        bar = progress.add_task("checking", total=len(specs) * len(tasks))
        for spec in specs:
            sub = Submission(spec)
            done.append(sub)
            try:
                func = _submissions.load(spec)
            except _submissions.LoadError as exc:
                sub.load_error = str(exc)
                progress.advance(bar, len(tasks))
                continue
            for task in tasks:
                grad = partial(_call_with_task, func, task=task)
                sub.results[task] = _search.search(grad, task=task, examples=args.examples, random_seed=args.seed)
                progress.advance(bar)
    if args.json:
        print_json(check_to_json(done, args))
    else:
        render_check(done, args, console)
    # The most severe verdict decides (docs/cli.md, "Exit codes"): mismatch, then error, then pass.
    return {"mismatch": EXIT_MISMATCH, "error": EXIT_USAGE, "pass": EXIT_OK}[worst_verdict(s.verdict for s in done)]


def _reason(error: str) -> str:
    """An error's first line and, when it differs, its exception's (the last line of a traceback)."""
    lines = [line for line in error.splitlines() if line.strip()]
    exception = next((line for line in reversed(lines) if not line.startswith(" ") and ": " in line), lines[-1])
    return lines[0] if exception == lines[0] else f"{lines[0].rstrip(':')}: {exception.strip()}"


_FLAKY = "note: the same problem passed once and failed once: the function is not deterministic"
_SIGNATURE = (
    "FUNC must be FUNC(params, x, y, *, task) -> gradients with the fields w1, b1, w2, b2 (gradcheck check --help)"
)
_DIAGNOSIS_PROBLEM = "a generic problem (inputs 2, hidden 3, batch 5) where it fails too, else on the counterexample"


def _call_with_task(func: Any, params: Any, x: Any, y: Any, *, task: mlp.Task) -> Any:
    return func(params, x, y, task=task)


def _reproduce_check(spec: str, task: str, args: argparse.Namespace) -> str:
    return f"gradcheck check {spec} --task {task} --examples {args.examples} --seed {args.seed}"


def _counterexample(prob: problems.Problem) -> dict[str, Any]:
    return {
        "task": prob.task,
        "regime": prob.regime,
        "params": {k: np.asarray(v).tolist() for k, v in prob.params._asdict().items()},
        "x": prob.x.tolist(),
        "y": prob.y.tolist(),
    }


def render_check(done: list[Submission], args: argparse.Namespace, console: Console) -> None:
    for sub in done:
        if sub.load_error:
            console.print(f"{sub.spec}: ERROR\n{sub.load_error}\n", markup=False, soft_wrap=True)
            continue
        for task, result in sub.results.items():
            if result.error is not None:
                console.print(
                    f"{sub.spec} [{task}]: ERROR, a wrong call, not a mismatch (no search was run):\n{result.error}\n"
                    f"{_SIGNATURE}\n",
                    markup=False,
                    soft_wrap=True,
                )
                continue
            if result.ok:
                console.print(f"{sub.spec} [{task}]: PASS on {result.examples} problems", markup=False, soft_wrap=True)
                continue
            assert result.counterexample is not None
            assert result.report is not None
            prob = result.counterexample
            console.print(
                f"{sub.spec} [{task}]: MISMATCH, first at problem {result.examples}; minimal counterexample "
                f"({prob.describe()}):",
                markup=False,
                soft_wrap=True,
            )
            arrays = {**prob.params._asdict(), "x": prob.x, "y": prob.y}
            for name, value in arrays.items():
                console.print(f"  {name} = {np.array2string(np.asarray(value), separator=', ')}", markup=False)
            console.print(str(result.report), markup=False, soft_wrap=True)
            if result.flaky:
                console.print(_FLAKY, markup=False, soft_wrap=True)
            if result.diagnoses():
                console.print(f"diagnosis, confirmed on {_DIAGNOSIS_PROBLEM}:", markup=False, soft_wrap=True)
            for name, diagnosis in result.diagnoses().items():
                console.print(f"  {name}: {diagnosis}", markup=False, soft_wrap=True)
            console.print(f"reproduce: {_reproduce_check(sub.spec, task, args)}\n", markup=False, soft_wrap=True)
    if len(done) > 1:
        table = report_table(f"{len(done)} submissions", console)
        for column in ("submission", "verdict", "diagnosis"):
            table.add_column(column, overflow="fold")  # a path too long for its column is folded, never cut
        for sub in done:
            table.add_row(sub.spec, sub.verdict.upper(), sub.summary())
        console.print(table)


def check_to_json(done: list[Submission], args: argparse.Namespace) -> dict[str, Any]:
    return {
        "schema": JSON_SCHEMA,
        "kind": "check",
        "gradcheck": gradcheck.__version__,
        "seed": args.seed,
        "examples": args.examples,
        "submissions": [
            {
                "submission": sub.spec,
                "verdict": sub.verdict,
                "error": sub.load_error,
                "tasks": {
                    task: {
                        "verdict": r.verdict,
                        "error": r.error,
                        "examples": r.examples,
                        "flaky": r.flaky,
                        "diagnoses": r.diagnoses(),
                        "counterexample": _counterexample(r.counterexample) if r.counterexample else None,
                        "report": r.report.to_dict() if r.report else None,
                        "reproduce": _reproduce_check(sub.spec, task, args),
                    }
                    for task, r in sub.results.items()
                },
            }
            for sub in done
        ],
    }
