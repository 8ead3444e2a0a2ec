"""What the main job found, and how it is told: the console, the JSON report, and `Results` for the formats.

`TaskSummary` folds in each batch's report; `render`, `to_json` and `main_results` turn the summaries into
each output (`main_results` into the neutral model that JUnit XML, and any format of `cli/_formats`, reads).
`_main_job` runs the job.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rich.console import Console

import gradcheck
from gradcheck._batch import BatchReport
from gradcheck._batch_references import ELEMENTWISE_WORK
from gradcheck._batch_report import WORST_FIELDS
from gradcheck._references._cost import BATCH_DIRECTIONS
from gradcheck._report import Report, worst_verdict
from gradcheck.cli._render import (
    JSON_SCHEMA,
    VERDICT_COLOURS,
    report_table,
)
from gradcheck.cli._results import Case, Outcome, Results, Suite


@dataclass
class TaskSummary:
    """What the main job found for one task (a seed task, or a general network)."""

    task: str
    examples: int = 0
    worst: dict[str, dict[str, float]] = field(default_factory=dict)
    identity: str = "dL/dz2 = a2 - y"
    identity_worst_abs: float = 0.0
    identity_failures: list[tuple[int, str, Report]] = field(default_factory=list)
    along_used: float = math.nan
    failures: list[tuple[int, str, Report]] = field(default_factory=list)
    #: Elements at a kink (not judged), and the problems they sit in.
    not_judged: int = 0
    kinked: list[int] = field(default_factory=list)
    #: Seconds the task's checks took.
    seconds: float = 0.0
    #: Problems that passed without their rounding noise measured (`_references.SCREEN`).
    screened: int = 0

    def add(self, report: BatchReport, problems: list[tuple[int, str]]) -> None:
        """Fold in a batch of problems: `problems[b]` is problem b's (index, description)."""
        self.examples += len(report)
        self.screened += report.screened
        for b, count in enumerate(report.not_judged):
            if count:
                self.not_judged += count
                self.kinked.append(problems[b][0])
        for name, fields in report.worst.items():
            worst = self.worst.setdefault(name, dict.fromkeys(WORST_FIELDS, math.nan))
            for f in WORST_FIELDS:
                worst[f] = float(np.fmax(worst[f], fields[f]))  # NaN: not measured
        self.along_used = float(np.fmax(self.along_used, report.along_used))
        for b, failure in report.failures.items():
            self.failures.append((*problems[b], failure))

    def add_identity(self, report: BatchReport, problems: list[tuple[int, str]]) -> None:
        """Fold in the output-error identity's check of a batch of problems."""
        (worst,) = report.worst.values()
        self.identity_worst_abs = max(self.identity_worst_abs, worst["max_abs_err_autodiff"])
        for b, failure in report.failures.items():
            self.identity_failures.append((*problems[b], failure))

    @property
    def verdict(self) -> str:
        return worst_verdict(r.verdict for _, _, r in (*self.failures, *self.identity_failures))

    def strict_verdict(self, strict: bool) -> str:
        """The verdict; with `strict`, elements not judged (at a kink) make a pass inconclusive, and a right
        derivation whose float64 evaluation loses digits ("imprecise") is a mismatch."""
        if strict and self.verdict == "imprecise":
            return "mismatch"
        return "inconclusive" if strict and self.not_judged and self.verdict == "pass" else self.verdict


@dataclass(frozen=True)
class Job:
    """One model for the main job: its loss and closed form, its problems, and its output-error identity."""

    label: str
    loss: Callable[..., Any]
    grads: Callable[..., Any]
    problem: Callable[[int], tuple[Any, np.ndarray, np.ndarray, str]]  # index -> params, x, y, description
    logits: Callable[[Any, np.ndarray], dict[str, np.ndarray]]  # (params, x) -> {name: output logits}
    output_loss: Callable[..., Any]  # ({name: z}, y) -> summed loss
    output_error: Callable[..., Any]  # ({name: z}, y) -> {name: claimed dL/dz}
    identity: str
    reproduce: Callable[[int], str]


_HEADERS = ("param", "|cf-ad|", "rel vs ad", "|cf-fd|", "rel vs fd", "tol used")


def render(summaries: list[TaskSummary], jobs: dict[str, Job], args: argparse.Namespace, console: Console) -> None:
    for s in summaries:
        verdict = s.strict_verdict(args.strict)
        colour = VERDICT_COLOURS[verdict]
        title = f"{s.task}: {s.examples} problems, seed {args.seed}, verdict [{colour}]{verdict.upper()}[/]"
        table = report_table(title, console)
        for column in _HEADERS:
            table.add_column(column, justify="left" if column == "param" else "right", overflow="fold")
        for name, worst in s.worst.items():
            table.add_row(name, *("-" if math.isnan(worst[f]) else f"{worst[f]:.2e}" for f in WORST_FIELDS))
        console.print(table)
        console.print(
            "finite differences along every coordinate of every problem (Richardson, refined in the batch where "
            "they disagree with autodiff)"
            + (
                f", but along {BATCH_DIRECTIONS} random ±1 directions for problems of over "
                f"{ELEMENTWISE_WORK} parameters times data values (the large batches): worst |ad·d − fd|, "
                f"|cf·d − fd| = {s.along_used:.2g} of the allowance"
                if not math.isnan(s.along_used)
                else ""
            )
            + "; problems that do not pass are re-checked one by one",
            soft_wrap=True,
        )
        if s.screened:
            console.print(
                f"{s.screened} of {s.examples} problems passed without their rounding noise measured, within the "
                "least allowances: their tol used is against the tolerance's floor, an upper bound",
                soft_wrap=True,
            )
        if s.not_judged:
            problems_at_kinks = ", ".join(map(str, s.kinked[:10])) + (", ..." if len(s.kinked) > 10 else "")
            console.print(
                f"{s.not_judged} elements at a kink (a non-differentiable point), not judged, in "
                f"{len(s.kinked)} problems ({problems_at_kinks}){'; --strict fails them' if args.strict else ''}",
                soft_wrap=True,
            )
        note = raw_relative_note(s)
        if note:
            console.print(note, soft_wrap=True)
        mark = "holds" if not s.identity_failures else f"FAILS on {len(s.identity_failures)} problems"
        console.print(
            f"identity {s.identity} ({s.task}): {mark}; max |autodiff - claim| = {s.identity_worst_abs:.2e}\n",
            soft_wrap=True,
        )
        shown = [("", f) for f in s.failures[:3]] + [(f"identity {s.identity}, ", f) for f in s.identity_failures[:3]]
        for what, failure in shown:
            console.print(_failure_text(what, failure, jobs[s.task]) + "\n", markup=False, soft_wrap=True)


#: A relative column above this (1%) reads like a wrong gradient; on a pass the main job says why it is not.
RAW_RELATIVE_NOTED = 1e-2
_RELATIVE_COLUMNS = {"max_rel_err_autodiff": "rel vs ad", "max_rel_err_fd": "rel vs fd"}


def raw_relative_note(s: TaskSummary) -> str | None:
    """Why a passing task's largest relative column may be large (above `RAW_RELATIVE_NOTED`); None if it is not.

    The relative columns are raw: |closed form - reference| / |reference| over the elements whose
    reference clears its allowance. An element that barely clears it can sit near 1 and still be
    within its allowance, and a finite-difference step across a kink moves the finite differences
    (not the closed form) by as much; what decides is `tol used`.
    """
    measured = [
        (worst[f], column, name)
        for name, worst in s.worst.items()
        for f, column in _RELATIVE_COLUMNS.items()
        if not math.isnan(worst[f])
    ]
    if s.verdict != "pass" or not measured or max(measured)[0] <= RAW_RELATIVE_NOTED:
        return None
    value, column, name = max(measured)
    used = float(np.nanmax([worst["tolerance_used"] for worst in s.worst.values()]))
    return (
        f"{column} reaches {value:.2e} ({name}) on a pass: the relative columns are raw distances |cf − ref| / |ref|, "
        "large where a reference barely clears its allowance or a step crosses a kink; the verdict reads tol used, "
        f"{used:.2e} here (≤ 1 passes)"
    )


def _failure_text(what: str, failure: tuple[int, str, Report], job: Job) -> str:
    """One failing problem: what failed on it, its report, and the command that re-runs it."""
    i, description, report = failure
    return f"{what}problem {i} ({description}):\n{report}\nreproduce: {job.reproduce(i)}"


def to_json(summaries: list[TaskSummary], jobs: dict[str, Job], args: argparse.Namespace) -> dict[str, Any]:
    return {
        "schema": JSON_SCHEMA,
        "gradcheck": gradcheck.__version__,
        "verdict": _overall(summaries, args.strict),
        "seed": args.seed,
        "tasks": {
            s.task: {
                "verdict": s.strict_verdict(args.strict),
                "examples": s.examples,
                "params": s.worst,
                "along_used": s.along_used,
                "screened": s.screened,
                "not_judged": {"elements": s.not_judged, "problems": s.kinked},
                "identity": {
                    "claim": s.identity,
                    "holds": not s.identity_failures,
                    "max_abs_err": s.identity_worst_abs,
                    "failures": _failures_json(s.identity_failures, jobs[s.task]),
                },
                "failures": _failures_json(s.failures, jobs[s.task]),
            }
            for s in summaries
        },
    }


def _failures_json(failures: list[tuple[int, str, Report]], job: Job) -> list[dict[str, Any]]:
    return [
        {
            "problem": i,
            "regime": description.rsplit("regime=", 1)[1].split()[0],
            "description": description,
            "reproduce": job.reproduce(i),
            **r.to_dict(),
        }
        for i, description, r in failures
    ]


def _overall(summaries: list[TaskSummary], strict: bool = False) -> str:
    return worst_verdict(s.strict_verdict(strict) for s in summaries)


#: Failing problems told in full in a JUnit failure, as on the console; the message counts them all.
JUNIT_SHOWN = 3


def main_results(summaries: list[TaskSummary], jobs: dict[str, Job], args: argparse.Namespace) -> Results:
    """What the main job found, for every format: a suite per task."""
    return Results("gradcheck", [_suite(s, jobs[s.task], args) for s in summaries])


def _suite(s: TaskSummary, job: Job, args: argparse.Namespace) -> Suite:
    """One suite per task: a case per parameter, one for the output-error identity, and with --strict one for the
    elements at a kink."""
    cases = []
    for name in s.worst:
        worst = s.worst[name]
        measured = ", ".join(f"{f} = {worst[f]:.2e}" for f in WORST_FIELDS if not math.isnan(worst[f]))
        blamed = [f for f in s.failures if _status(f[2], name) in ("mismatch", "error")]
        doubted = [f for f in s.failures if _status(f[2], name) == "doubt"]
        outcome = _outcome(name, blamed, doubted, s.examples, job, param=name)
        cases.append(Case(name, s.task, outcome, output=f"worst over {s.examples} problems: {measured}"))
    identity = f"identity {s.identity}"
    blamed = [f for f in s.identity_failures if f[2].verdict == "mismatch"]
    doubted = [f for f in s.identity_failures if f[2].verdict != "mismatch"]
    outcome = _outcome(identity, blamed, doubted, s.examples, job)
    measured = f"max |autodiff - claim| = {s.identity_worst_abs:.2e} over {s.examples} problems"
    cases.append(Case(identity, s.task, outcome, output=measured))
    if args.strict:
        outcome = None
        if s.not_judged:
            message = (
                f"{s.not_judged} elements at a kink (a non-differentiable point), not judged, in {len(s.kinked)} "
                "problems; --strict fails them"
            )
            outcome = Outcome("error", "NotJudged", message, "problems: " + ", ".join(map(str, s.kinked)))
        cases.append(Case("every element judged (--strict)", s.task, outcome))
    return Suite(s.task, s.seconds, cases, s.strict_verdict(args.strict))


def _status(report: Report, name: str) -> str:
    return next((p.status for p in report.params if p.name == name), "pass")


Failure = tuple[int, str, Report]


def _outcome(
    what: str, blamed: list[Failure], doubted: list[Failure], examples: int, job: Job, param: str | None = None
) -> Outcome | None:
    """A failure if problems blame `what`, with the likely mistake (of `param`, else of any parameter); an error if
    their references only disagree."""
    failures = sorted(blamed + doubted, key=lambda failure: failure[0])
    if not failures:
        return None
    text = "\n\n".join(_failure_text("", f, job) for f in failures[:JUNIT_SHOWN])
    if len(failures) > JUNIT_SHOWN:
        text += f"\n\n... and {len(failures) - JUNIT_SHOWN} more problems"
    if blamed:
        diagnoses = [p.diagnosis for _, _, r in blamed for p in r.params if p.diagnosis and param in (None, p.name)]
        message = f"{what}: MISMATCH on {len(blamed)} of {examples} problems"
        message += f"; likely mistake: {diagnoses[0]}" if diagnoses else ""
        return Outcome("failure", "GradientMismatch", message, text)
    message = f"{what}: INCONCLUSIVE on {len(doubted)} of {examples} problems: the references disagree with each other"
    return Outcome("error", "ReferencesDisagree", message, text)
