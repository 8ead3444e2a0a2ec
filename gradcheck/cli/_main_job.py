"""`gradcheck`: the main job, a closed form checked on many seeded problems in every regime.

The seed network's closed form (`gradcheck.mlp`), or with --layers/--activation/--head
a general network's (`gradcheck.network`), against float64 autodiff and finite
differences with `check_batch`, together with its output-error identity.
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from typing import Any

import jax
import numpy as np
from rich.progress import Progress

import gradcheck
from gradcheck import activations, heads, mlp, network, problems
from gradcheck._batch import check_batch
from gradcheck._references._trace import pure_loss
from gradcheck._report import jsonable
from gradcheck.cli._args import add_junit_xml, integer, positive
from gradcheck.cli._formats import FORMATS
from gradcheck.cli._main_report import Job, TaskSummary, _overall, main_results, render, to_json
from gradcheck.cli._render import (
    EXIT_INCONCLUSIVE,
    EXIT_MISMATCH,
    EXIT_OK,
    EXIT_USAGE,
    make_console,
    print_json,
    write_report,
)


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
    add_junit_xml(parser, "task and parameter")
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


def main_job(args: argparse.Namespace) -> int:
    """Run the main job that `args` describe; print its report; return the exit code."""
    jobs = {job.label: job for job in _jobs(args)}
    summaries = [run_task(job, args) for job in jobs.values()]
    if args.junit_xml is not None:
        junit = FORMATS["junit"]
        write_report(args.junit_xml, junit.document(main_results(summaries, jobs, args)), "--junit-xml", junit.title)
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
