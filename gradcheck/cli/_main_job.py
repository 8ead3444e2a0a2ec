"""`gradcheck`: the main job, a closed form checked on many seeded problems in every regime.

The seed network's closed form (`gradcheck.mlp`), or with --layers/--activation/--head
a general network's (`gradcheck.network`), against float64 autodiff and finite
differences with `check_batch`, together with its output-error identity.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import jax
import numpy as np
from rich.console import Console
from rich.progress import Progress

import gradcheck
from gradcheck import activations, heads, mlp, network, problems
from gradcheck._batch import BatchReport, check_batch
from gradcheck._batch_references import BATCH_DIRECTIONS, ELEMENTWISE_WORK
from gradcheck._batch_report import WORST_FIELDS
from gradcheck._report import Report, jsonable, worst_verdict
from gradcheck._trace import pure_loss
from gradcheck.cli import _junit
from gradcheck.cli._args import integer, output_file, positive
from gradcheck.cli._render import (
    EXIT_INCONCLUSIVE,
    EXIT_MISMATCH,
    EXIT_OK,
    EXIT_USAGE,
    JSON_SCHEMA,
    VERDICT_COLOURS,
    make_console,
    print_json,
    report_table,
    write_report,
)


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
            worst = self.worst.setdefault(name, dict.fromkeys(_WORST_FIELDS, math.nan))
            for f in _WORST_FIELDS:
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


#: The worst of each field a batch reports, in its report's order (`BatchReport.worst`).
_WORST_FIELDS = WORST_FIELDS
_HEADERS = ("param", "|cf-ad|", "rel vs ad", "|cf-fd|", "rel vs fd", "tol used")


def build_parser() -> argparse.ArgumentParser:
    """The parser of the main job, `gradcheck [options]`."""
    parser = argparse.ArgumentParser(
        prog="gradcheck",
        description=(
            "Check the seed network's closed-form gradients (docs/derivation.md) against float64 JAX "
            "autodiff and Richardson finite differences on many seeded random problems in every "
            "numerical regime. To check your own gradient functions: gradcheck check --help. "
            "To prove the closed forms symbolically with SymPy: gradcheck prove --help. "
            "To draw the docs' figures: gradcheck plot --help."
        ),
        epilog="Exit codes: 0 pass, 1 mismatch, 2 usage or input error, 3 inconclusive, 4 internal error.",
    )
    parser.add_argument(
        "--task", choices=(*mlp.TASKS, "both"), default=None, help="which seed task to check (default both)"
    )
    parser.add_argument("--inputs", type=positive("--inputs"), default=None, help="input features (default 2)")
    parser.add_argument("--hidden", type=positive("--hidden"), default=None, help="hidden units (default 3)")
    parser.add_argument("--batch", type=positive("--batch"), default=8, help="samples per problem (default 8)")
    general = parser.add_argument_group(
        "a general network (gradcheck.network) instead of the seed; any of these selects it",
    )
    general.add_argument(
        "--layers",
        type=_layers,
        default=None,
        metavar="I,H1,...,K",
        help="layer sizes, inputs first and outputs last (default INPUTS,HIDDEN,1; 3 outputs for softmax heads)",
    )
    general.add_argument(
        "--activation", choices=tuple(activations.ACTIVATIONS), default=None, help="hidden activation (default sigmoid)"
    )
    general.add_argument(
        "--head", choices=tuple(heads.HEADS), default=None, help="output head and loss (default identity)"
    )
    parser.add_argument("--examples", type=positive("--examples"), default=300, help="problems per task (default 300)")
    parser.add_argument("--seed", type=integer("--seed", 0), default=0, help="seed of the problem sampler (default 0)")
    parser.add_argument(
        "--problem", type=integer("--problem", 0), default=None, help="check only problem number K (to reproduce)"
    )
    parser.add_argument("--json", action="store_true", help="print a machine-readable JSON report only")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 3) when any element was not judged because it sits at a kink (default: such elements "
        "are listed, and the rest decides)",
    )
    parser.add_argument(
        "--junit-xml",
        type=output_file("--junit-xml", "gradcheck.xml"),
        default=None,
        metavar="FILE",
        help="also write a JUnit XML report to FILE, one test case per task and parameter (as pytest's flag)",
    )
    parser.add_argument("--version", action="version", version=f"gradcheck {gradcheck.__version__}")
    return parser


def _layers(text: str) -> tuple[int, ...]:
    """An argparse type for --layers: comma-separated positive sizes, at least two."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) < 2 or not all(p.isdigit() and int(p) >= 1 for p in parts):
        raise argparse.ArgumentTypeError(
            f"--layers must be at least two comma-separated positive integers (inputs,...,outputs), got {text!r}; "
            "for example 4,16,16,3"
        )
    return tuple(int(p) for p in parts)


def _jobs(args: argparse.Namespace) -> list[Job]:
    """The seed tasks, or the general network that --layers/--activation/--head describe."""
    if args.layers is not None and (args.inputs is not None or args.hidden is not None):
        raise ValueError("--layers gives every size; drop --inputs and --hidden (or drop --layers).")
    args.inputs = 2 if args.inputs is None else args.inputs
    args.hidden = 3 if args.hidden is None else args.hidden
    if args.layers is None and args.activation is None and args.head is None:
        tasks: list[mlp.Task] = list(mlp.TASKS) if args.task in (None, "both") else [args.task]
        return [seed_job(task, args) for task in tasks]
    if args.task is not None:
        raise ValueError(
            f"--task {args.task} chooses a seed task, but --layers/--activation/--head choose a general network; "
            "drop one of them."
        )
    head = args.head or "identity"
    outputs = 3 if head.startswith("softmax") else 1
    net = network.Network(args.layers or (args.inputs, args.hidden, outputs), args.activation or "sigmoid", head)
    return [network_job(net, args)]


def problem_for(index: int, *, seed: int, task: mlp.Task, inputs: int, hidden: int, batch: int) -> problems.Problem:
    """Problem number `index` of the main job: its regime cycles, its draws are seeded by (seed, index)."""
    rng = np.random.default_rng([seed, index])
    regime = problems.REGIMES[index % len(problems.REGIMES)]
    return problems.sample(rng, task=task, regime=regime, inputs=inputs, hidden=hidden, batch=batch)


def net_problem_for(index: int, *, seed: int, net: network.Network, batch: int) -> problems.NetProblem:
    """Problem number `index` for a general network, as `problem_for` does for the seed."""
    rng = np.random.default_rng([seed, index])
    return problems.sample_net(rng, net, regime=problems.NET_REGIMES[index % len(problems.NET_REGIMES)], batch=batch)


def seed_job(task: mlp.Task, args: argparse.Namespace) -> Job:
    """The seed network's derivation (gradcheck.mlp) for one task."""

    def problem(i: int) -> tuple[Any, np.ndarray, np.ndarray, str]:
        prob = problem_for(i, seed=args.seed, task=task, inputs=args.inputs, hidden=args.hidden, batch=args.batch)
        return prob.params, prob.x, prob.y, prob.describe()

    return Job(
        label=task,
        loss=partial(mlp.loss, task=task),
        grads=partial(mlp.closed_form_gradients, task=task),
        problem=problem,
        logits=lambda p, x: {"z2": np.asarray(mlp.forward(p, x, task=task).z2)},
        output_loss=partial(_summed_output_loss, task=task),
        output_error=partial(_output_error, task=task),
        identity="dL/dz2 = a2 - y",
        reproduce=lambda i: (
            f"gradcheck --task {task} --inputs {args.inputs} --hidden {args.hidden} --batch {args.batch} "
            f"--seed {args.seed} --problem {i}"
        ),
    )


def network_job(net: network.Network, args: argparse.Namespace) -> Job:
    """The general network's closed form (gradcheck.network) for `net`."""
    head = heads.HEADS[net.head]

    def problem(i: int) -> tuple[Any, np.ndarray, np.ndarray, str]:
        prob = net_problem_for(i, seed=args.seed, net=net, batch=args.batch)
        return prob.params, prob.x, prob.y, prob.describe()

    return Job(
        label=net.describe(),
        loss=partial(network.loss, net=net),
        grads=partial(network.closed_form_gradients, net=net),
        problem=problem,
        logits=lambda p, x: {"z": np.asarray(network.forward(p, x, net=net)[-1].z)},
        output_loss=partial(_summed_head_loss, head=net.head),
        output_error=partial(_head_output_error, head=net.head),
        identity=f"dL/dz = {head.formulas[2].removeprefix('δ = ')}" + ("" if head.canonical else " (not canonical)"),
        reproduce=lambda i: (
            f"gradcheck --layers {','.join(map(str, net.layers))} --activation {net.activation} --head {net.head} "
            f"--batch {args.batch} --seed {args.seed} --problem {i}"
        ),
    )


#: Problems per `check_batch` call in the main job: large enough to amortise
#: the call, small enough for a responsive progress bar and bounded memory.
CHUNK = 2048


def run_task(job: Job, args: argparse.Namespace) -> TaskSummary:
    """Check every problem of `job` with `check_batch`, grouped by shape and in chunks."""
    began = time.perf_counter()
    summary = TaskSummary(job.label, identity=job.identity)
    indices = [args.problem] if args.problem is not None else list(range(args.examples))
    console = make_console(stderr=True)  # the bar never mixes with the report on stdout
    with Progress(console=console, transient=True, disable=args.json or not console.is_terminal) as progress:
        # Three steps per problem, each advancing the bar as it goes: drawing it (one at a time, in Python),
        # checking its gradient, checking its output error (both in batches).
        bar = progress.add_task(f"checking {job.label}", total=3 * len(indices))
        drawn: dict[int, Any] = {}
        for i in indices:
            drawn[i] = job.problem(i)
            progress.advance(bar)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, (params, x, y, _) in drawn.items():
            shapes = tuple(np.shape(leaf) for leaf in jax.tree_util.tree_leaves((params, x, y)))
            groups.setdefault(shapes, []).append(i)
        for group in groups.values():
            for start in range(0, len(group), CHUNK):
                chunk = group[start : start + CHUNK]
                params, x, y = _stack([drawn[i][:3] for i in chunk])
                report = check_batch(job.loss, job.grads, params, x, y, seed=args.seed)
                described = [(i, drawn[i][3]) for i in chunk]
                summary.add(report, described)
                progress.advance(bar, len(chunk))
                identity = check_batch(job.output_loss, job.output_error, job.logits(params, x), y, seed=args.seed)
                summary.add_identity(identity, described)
                progress.advance(bar, len(chunk))
    summary.failures.sort(key=lambda failure: failure[0])
    summary.identity_failures.sort(key=lambda failure: failure[0])
    summary.seconds = time.perf_counter() - began
    return summary


def _stack(problems: list[tuple[Any, np.ndarray, np.ndarray]]) -> Any:
    """Stack same-shape problems along a new leading axis (pytrees leaf by leaf)."""
    return jax.tree_util.tree_map(lambda *leaves: np.stack(leaves), *problems)


@pure_loss
def _summed_output_loss(z2: dict[str, Any], y: Any, *, task: mlp.Task) -> Any:
    """Sum over samples of the per-sample loss, as a function of the logits z2."""
    return mlp.per_sample_loss(z2["z2"], y, task=task).sum()


def _output_error(z2: dict[str, Any], y: Any, *, task: mlp.Task) -> dict[str, Any]:
    """The derivation's claim: dL_n/dz2_n = a2_n - y_n, for both tasks."""
    return {"z2": mlp.output_activation(z2["z2"], task=task) - y}


@pure_loss
def _summed_head_loss(z: dict[str, Any], y: Any, *, head: str) -> Any:
    """Sum over samples of a head's loss, as a function of the output logits z."""
    return heads.HEADS[head].per_sample_loss(z["z"], y).sum()


def _head_output_error(z: dict[str, Any], y: Any, *, head: str) -> dict[str, Any]:
    """The head's closed-form output error: a - y for every canonical head."""
    h = heads.HEADS[head]
    return {"z": h.output_error(z["z"], h.activation(z["z"]), y)}


def render(summaries: list[TaskSummary], jobs: dict[str, Job], args: argparse.Namespace, console: Console) -> None:
    for s in summaries:
        verdict = s.strict_verdict(args.strict)
        colour = VERDICT_COLOURS[verdict]
        title = f"{s.task}: {s.examples} problems, seed {args.seed}, verdict [{colour}]{verdict.upper()}[/]"
        table = report_table(title, console)
        for column in _HEADERS:
            table.add_column(column, justify="left" if column == "param" else "right", overflow="fold")
        for name, worst in s.worst.items():
            table.add_row(name, *("-" if math.isnan(worst[f]) else f"{worst[f]:.2e}" for f in _WORST_FIELDS))
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


def main_job(args: argparse.Namespace) -> int:
    """Run the main job that `args` describe; print its report; return the exit code."""
    jobs = {job.label: job for job in _jobs(args)}
    summaries = [run_task(job, args) for job in jobs.values()]
    if args.junit_xml is not None:
        junit = _junit.document("gradcheck", [junit_suite(s, jobs[s.task], args) for s in summaries])
        write_report(args.junit_xml, junit, "--junit-xml", "JUnit XML")
    if args.json:
        print_json(jsonable(to_json(summaries, jobs, args)), allow_nan=False)
    else:
        render(summaries, jobs, args, make_console())
    codes = {
        "pass": EXIT_OK,
        "imprecise": EXIT_OK,
        "mismatch": EXIT_MISMATCH,
        "error": EXIT_USAGE,
        "inconclusive": EXIT_INCONCLUSIVE,
    }
    return codes[_overall(summaries, args.strict)]


#: Failing problems told in full in a JUnit failure, as on the console; the message counts them all.
JUNIT_SHOWN = 3


def junit_suite(s: TaskSummary, job: Job, args: argparse.Namespace) -> _junit.Suite:
    """One JUnit suite per task: a case per parameter, one for the output-error identity, and with --strict one
    for the elements at a kink."""
    cases = []
    for name in s.worst:
        worst = s.worst[name]
        measured = ", ".join(f"{f} = {worst[f]:.2e}" for f in _WORST_FIELDS if not math.isnan(worst[f]))
        blamed = [f for f in s.failures if _status(f[2], name) in ("mismatch", "error")]
        doubted = [f for f in s.failures if _status(f[2], name) == "doubt"]
        outcome = _outcome(name, blamed, doubted, s.examples, job, param=name)
        cases.append(_junit.Case(name, s.task, outcome, output=f"worst over {s.examples} problems: {measured}"))
    identity = f"identity {s.identity}"
    blamed = [f for f in s.identity_failures if f[2].verdict == "mismatch"]
    doubted = [f for f in s.identity_failures if f[2].verdict != "mismatch"]
    outcome = _outcome(identity, blamed, doubted, s.examples, job)
    measured = f"max |autodiff - claim| = {s.identity_worst_abs:.2e} over {s.examples} problems"
    cases.append(_junit.Case(identity, s.task, outcome, output=measured))
    if args.strict:
        outcome = None
        if s.not_judged:
            message = (
                f"{s.not_judged} elements at a kink (a non-differentiable point), not judged, in {len(s.kinked)} "
                "problems; --strict fails them"
            )
            outcome = _junit.Outcome("error", "NotJudged", message, "problems: " + ", ".join(map(str, s.kinked)))
        cases.append(_junit.Case("every element judged (--strict)", s.task, outcome))
    return _junit.Suite(s.task, s.seconds, cases)


def _status(report: Report, name: str) -> str:
    return next((p.status for p in report.params if p.name == name), "pass")


Failure = tuple[int, str, Report]


def _outcome(
    what: str, blamed: list[Failure], doubted: list[Failure], examples: int, job: Job, param: str | None = None
) -> _junit.Outcome | None:
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
        return _junit.Outcome("failure", "GradientMismatch", message, text)
    message = f"{what}: INCONCLUSIVE on {len(doubted)} of {examples} problems: the references disagree with each other"
    return _junit.Outcome("error", "ReferencesDisagree", message, text)
