"""`gradcheck check FILE:FUNC ...`: a user's gradient functions (an autograder, a CI gate).

Hypothesis searches problems in every regime for each submission and shrinks
the first failure to a minimal counterexample (`gradcheck._search`). With
``--loss`` the gradients are of an instructor's loss instead of the seed
network's (`gradcheck.cli._loss`); everything after the search is shared.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from rich.console import Console
from rich.progress import Progress

import gradcheck
from gradcheck import _search, _submissions, mlp, problems
from gradcheck._report import worst_verdict
from gradcheck.cli import _loss
from gradcheck.cli._args import add_junit_xml, integer, output_file, points, positive
from gradcheck.cli._formats import FORMATS, Format, folder_names
from gradcheck.cli._graded import (
    Grading,
    Submission,
    check_results,
    counterexample_json,
    failure_text,
    imprecise_text,
    reproduce,
)
from gradcheck.cli._render import (
    EXIT_MISMATCH,
    EXIT_OK,
    EXIT_USAGE,
    JSON_SCHEMA,
    JSON_SCHEMA_LOSS,
    make_console,
    print_json,
    report_table,
    write_report,
)
from gradcheck.cli._results import Results

#: --points when it is not given: a grade out of 100.
DEFAULT_POINTS = 100.0


def build_check_parser() -> argparse.ArgumentParser:
    """The parser of `gradcheck check`."""
    parser = argparse.ArgumentParser(
        prog="gradcheck check",
        description=(
            "Check gradient functions written by hand. Each FUNC in FILE has the signature of "
            "gradcheck.mlp.closed_form_gradients: FUNC(params, x, y, *, task) -> gradients with the "
            "fields of params (w1, b1, w2, b2). Hypothesis searches problems in every regime and "
            "shrinks the first failure to a minimal counterexample. With --loss FILE:LOSS, FUNC is the "
            "gradient of any loss instead: FUNC(params, *args) -> the gradient of LOSS(params, *args) "
            "with the structure of params, on problems (params, *args) from --problems or shaped like --example."
        ),
        epilog=(
            "Exit codes: 0 all pass (IMPRECISE included: a right derivation whose float64 evaluation loses "
            "digits), 1 a mismatch (or IMPRECISE with --strict), 2 usage, load error or a wrong call (a FUNC that "
            "cannot be called as above: no search is run), 4 internal error; with several submissions the most "
            "severe wins, in that order (1 before 2)."
        ),
    )
    parser.add_argument("submissions", nargs="+", metavar="FILE:FUNC", help="e.g. hw2/alice.py:grads (globs allowed)")
    parser.add_argument("--task", choices=(*mlp.TASKS, "both"), default=None, help="which task to check (default both)")
    parser.add_argument("--examples", type=positive("--examples"), default=100, help="problems per task (default 100)")
    parser.add_argument("--seed", type=integer("--seed", 0), default=0, help="seed of the search (default 0)")
    parser.add_argument("--json", action="store_true", help="print a machine-readable JSON report only")
    parser.add_argument(
        "--regimes",
        type=regimes,
        default=None,
        metavar="R1,R2",
        help=f"search only these numerical regimes, comma-separated (default every one: {', '.join(problems.REGIMES)})",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail IMPRECISE too: a right derivation whose float64 evaluation is not accurate to the tolerance",
    )
    _loss.add_arguments(parser)
    grading = parser.add_argument_group("reports for grading platforms and CI (docs/cli.md)")
    grading.add_argument(
        "--format",
        choices=tuple(FORMATS),
        default=None,
        help="write the report in a format for a grading platform or CI (gradescope: Gradescope's results.json; "
        "junit: JUnit XML): to --output FILE (stdout keeps the usual report), else as the whole of stdout",
    )
    grading.add_argument(
        "--points",
        type=points("--points"),
        default=None,
        metavar="N",
        help=f"--format gradescope: points per submission, split evenly over the tasks (default {DEFAULT_POINTS:g})",
    )
    grading.add_argument(
        "--output",
        type=output_file("--output", "results.json"),
        default=None,
        metavar="FILE",
        help="--format: the file to write (Gradescope reads /autograder/results/results.json)",
    )
    grading.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="--format: one document per submission, DIR/<file name>/results.json (gradcheck.xml for junit), as "
        "Gradescope "
        "grades each submission on its own",
    )
    add_junit_xml(grading, "submission and task")
    return parser


def check_main(args: argparse.Namespace) -> int:
    """Check every submission that `args` name; print the report; return the exit code."""
    _check_format_flags(args)
    if args.loss is not None and args.regimes is not None:
        raise ValueError(
            "`--regimes` chooses among the built-in network's regimes; with `--loss` the problems come from "
            "`--problems` or `--example`: draw the regimes you want there, or drop `--regimes`."
        )
    grading = _loss.grading(args) if args.loss is not None else _network_grading(args)
    try:
        specs = _submissions.expand(args.submissions)
    except _submissions.LoadError as exc:
        print(f"gradcheck check: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    tasks = grading.tasks
    # A machine-readable document alone on stdout (--json, or --format without --output): progress and
    # whatever the submissions print go to stderr.
    machine = args.json or (args.format is not None and args.output is None and args.output_dir is None)
    console = make_console(stderr=machine)
    done: list[Submission] = []
    quiet = contextlib.redirect_stdout(sys.stderr) if machine else contextlib.nullcontext()
    with quiet, Progress(console=console, transient=True, disable=machine or not console.is_terminal) as progress:
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
                began = time.perf_counter()
                sub.results[task] = grading.search(func, task)
                sub.seconds[task] = time.perf_counter() - began
                progress.advance(bar)
    if args.junit_xml is not None or args.format is not None:  # the grading texts, for the documents asked for
        results = check_results(done, grading, args)
        if args.junit_xml is not None:
            junit = FORMATS["junit"]
            write_report(args.junit_xml, junit.document(results), "--junit-xml", junit.title)
        if args.format is not None:
            write_format(FORMATS[args.format], results, args)
    if args.json:
        print_json(check_to_json(done, args))
    elif not machine:
        render_check(done, grading, args, console)
    # The most severe verdict decides (docs/cli.md, "Exit codes"): mismatch, then error, then imprecise, then pass.
    imprecise = EXIT_MISMATCH if args.strict else EXIT_OK
    codes = {"mismatch": EXIT_MISMATCH, "error": EXIT_USAGE, "imprecise": imprecise, "pass": EXIT_OK}
    return codes[worst_verdict(s.verdict for s in done)]


def _format_for(path: Path) -> str:
    """The format to suggest for a file named `path`: the one whose usual file name has its suffix (JUnit for
    ``.xml``), else Gradescope's."""
    same = [name for name, form in FORMATS.items() if path.suffix and Path(form.file_name).suffix == path.suffix]
    return same[0] if same else "gradescope"


def write_format(form: Format, results: Results, args: argparse.Namespace) -> None:
    """`results` in format `form`: one document per submission under --output-dir, one to --output, or stdout."""
    if args.output_dir is not None:
        for name, suite in folder_names(results).items():
            one = results.of(suite)
            what = f"the {form.told(one, of=suite.name)}"
            write_report(args.output_dir / name / form.file_name, form.document(one), "--output-dir", what)
    elif args.output is not None:
        write_report(args.output, form.document(results), "--output", form.told(results))
    else:  # the document's own bytes (UTF-8, as JUnit XML declares), whatever stdout's text encoding
        document = form.document(results)
        sys.stdout.flush()
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is None:  # a stream of text alone (a test's capture)
            sys.stdout.write(document.decode())
        else:
            buffer.write(document)
            buffer.flush()


def regimes(text: str) -> tuple[str, ...]:
    """An argparse type: regimes of `gradcheck.problems.REGIMES`, comma-separated, each named right."""
    chosen = tuple(r.strip() for r in text.split(",") if r.strip())
    unknown = [r for r in chosen if r not in problems.REGIMES]
    if not chosen or unknown:
        raise argparse.ArgumentTypeError(
            f"--regimes {text!r}: {'no regime given' if not chosen else f'no regime named {unknown[0]!r}'}; "
            f"choose among {', '.join(problems.REGIMES)}, e.g. --regimes saturated,confident"
        )
    return chosen


def _check_format_flags(args: argparse.Namespace) -> None:
    """--format, --points, --output and --json: combinations that do not say what to write are usage errors."""
    if args.output_dir is not None:
        if args.format is None:
            raise ValueError(
                "`--output-dir` is where `--format` writes one document per submission; add `--format gradescope` "
                f"(or another of {', '.join(FORMATS)})."
            )
        if args.output is not None:
            raise ValueError(
                "`--output` writes one document for every submission, `--output-dir` one per submission; "
                "give one of them."
            )
        if args.output_dir.exists() and not args.output_dir.is_dir():
            raise ValueError(f"`--output-dir {args.output_dir}` is a file, not a folder; pick a folder to write into.")
    graded = [name for name, form in FORMATS.items() if form.graded]
    if args.points is not None and (args.format is None or not FORMATS[args.format].graded):
        given = "" if args.format is None else f" (`--format {args.format}` has no points)"
        fix = f"add `--format {graded[0]}`" if graded else "leave it out"
        raise ValueError(f"`--points` sets the total of a graded report{given}; {fix}.")
    if args.format is None and args.output is not None:
        raise ValueError(
            f"`--output` is where `--format` writes its document; add `--format {_format_for(args.output)}` "
            f"(or another of {', '.join(FORMATS)}; the --json report goes to stdout: redirect it, "
            "`--json > report.json`)."
        )
    if args.format is not None and args.json and args.output is None and args.output_dir is None:
        raise ValueError(
            f"`--json` and `--format {args.format}` both want stdout; add `--output {FORMATS[args.format].file_name}` "
            f"to write the {args.format} report to a file and keep --json on stdout."
        )
    args.points = DEFAULT_POINTS if args.points is None else args.points


_SIGNATURE = (
    "FUNC must be FUNC(params, x, y, *, task) -> gradients with the fields w1, b1, w2, b2 (gradcheck check --help)"
)


def _network_grading(args: argparse.Namespace) -> Grading:
    """The seed network's tasks (--task), searched in every regime (or those of --regimes)."""
    for flag in ("problems", "example"):
        if getattr(args, flag) is not None:
            raise ValueError(
                f"`--{flag}` draws the problems of a `--loss`; add `--loss FILE:LOSS`, or drop `--{flag}`."
            )
    tasks: tuple[mlp.Task, ...] = mlp.TASKS if args.task in (None, "both") else (args.task,)

    regime: Any = "any" if args.regimes is None else st.sampled_from(args.regimes)

    def search(func: Any, task: Any) -> _search.SearchResult:
        grad = partial(_call_with_task, func, task=task)
        return _search.search(grad, task=task, examples=args.examples, random_seed=args.seed, regime=regime)

    return Grading(tasks, mlp.Params._fields, _SIGNATURE, search)


def _call_with_task(func: Any, params: Any, x: Any, y: Any, *, task: mlp.Task) -> Any:
    return func(params, x, y, task=task)


def render_check(done: list[Submission], grading: Grading, args: argparse.Namespace, console: Console) -> None:
    for sub in done:
        if sub.load_error:
            console.print(f"{sub.spec}: ERROR\n{sub.load_error}\n", markup=False, soft_wrap=True)
            continue
        for task, result in sub.results.items():
            if result.error is not None:
                console.print(
                    f"{sub.spec} [{task}]: ERROR, a wrong call, not a mismatch (no search was run):\n{result.error}\n"
                    f"{grading.signature}\n",
                    markup=False,
                    soft_wrap=True,
                )
                continue
            if result.ok and result.imprecise is not None:
                console.print(imprecise_text(sub.spec, task, result, args) + "\n", markup=False, soft_wrap=True)
            elif result.ok:
                console.print(f"{sub.spec} [{task}]: PASS on {result.examples} problems", markup=False, soft_wrap=True)
            else:
                console.print(failure_text(sub.spec, task, result, args) + "\n", markup=False, soft_wrap=True)
    if len(done) > 1:
        table = report_table(f"{len(done)} submissions", console)
        for column in ("submission", "verdict", "diagnosis"):
            table.add_column(column, overflow="fold")  # a path too long for its column is folded, never cut
        for sub in done:
            table.add_row(sub.spec, sub.verdict.upper(), sub.summary())
        console.print(table)


def check_to_json(done: list[Submission], args: argparse.Namespace) -> dict[str, Any]:
    # With --loss: schema 2, which adds the loss and where its problems come from (docs/cli.md).
    loss = {} if args.loss is None else {"loss": args.loss, "problems": args.problems, "example": args.example}
    return {
        "schema": JSON_SCHEMA if args.loss is None else JSON_SCHEMA_LOSS,
        "kind": "check",
        "gradcheck": gradcheck.__version__,
        "seed": args.seed,
        "examples": args.examples,
        **loss,
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
                        "counterexample": counterexample_json(r.counterexample) if r.counterexample else None,
                        "report": told.to_dict() if (told := r.told()) else None,
                        "imprecise": (
                            {"problem": counterexample_json(r.imprecise[0]), "report": r.imprecise[1].to_dict()}
                            if r.imprecise
                            else None
                        ),
                        "reproduce": reproduce(sub.spec, task, args),
                    }
                    for task, r in sub.results.items()
                },
            }
            for sub in done
        ],
    }
