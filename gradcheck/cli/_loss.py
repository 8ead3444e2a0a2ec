"""`gradcheck check --loss`: any hand-derived gradient, graded against an instructor's loss.

``--loss FILE:LOSS`` names the loss, ``LOSS(params, *args)``, written with
``jax.numpy``; each submission's ``FUNC(params, *args)`` returns its gradient
with the structure of ``params``. The problems ``(params, *args)`` come from
``--problems FILE:STRATEGY`` (a Hypothesis strategy, or a function of no
arguments that returns one), or are drawn with the shapes and dtypes of
``--example FILE:NAME`` (`gradcheck.strategies.shaped_like`), the example
itself first. The loss, the strategy and the example are loaded as
submissions are (`gradcheck._submissions`): each may import the modules
beside it. Their misuse is the instructor's: a usage error naming the flag.
"""

from __future__ import annotations

import argparse
from typing import Any

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from gradcheck import _inputs, _search, _search_loss, _submissions
from gradcheck import strategies as gs
from gradcheck.cli._graded import Grading


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `gradcheck check` that grade the gradient of any loss."""
    group = parser.add_argument_group(
        'the gradient of any loss (docs/guides/autograding.md, "Any loss")',
        "With --loss, each FUNC is FUNC(params, *args) -> the gradient of LOSS with the structure of params; "
        "give exactly one of --problems and --example. --task does not apply.",
    )
    group.add_argument(
        "--loss",
        default=None,
        metavar="FILE:LOSS",
        help="the loss, LOSS(params, *args) -> scalar, written with jax.numpy (params: arrays, or a dict, "
        "tuple or NamedTuple of them)",
    )
    group.add_argument(
        "--problems",
        default=None,
        metavar="FILE:STRATEGY",
        help="a Hypothesis strategy drawing tuples (params, *args), or a function of no arguments returning one",
    )
    group.add_argument(
        "--example",
        default=None,
        metavar="FILE:NAME",
        help="a tuple (params, *args) of arrays: checked first, then problems are drawn with its shapes and "
        "dtypes (floats finite, within max(3, its largest magnitude); integers within its range)",
    )


def grading(args: argparse.Namespace) -> Grading:
    """The grading of `args.loss` on the problems that `args` name; `ValueError` for misuse of the flags."""
    if args.task is not None:
        raise ValueError(
            f"`--task {args.task}` chooses a task of the seed network; with `--loss` the loss is what is checked: "
            "drop `--task`."
        )
    if (args.problems is None) == (args.example is None):
        given = "both" if args.problems is not None else "neither"
        raise ValueError(
            f"`--loss` needs exactly one of `--problems FILE:STRATEGY` and `--example FILE:NAME`, got {given}; "
            "e.g. --loss examples/general/losses.py:logistic --example examples/general/problems.py:logistic_example"
        )
    loss = _load("--loss", args.loss, any_value=False)
    example = None
    if args.problems is not None:
        problems = _strategy(args.problems)
    else:
        example = _load("--example", args.example, any_value=True)
        if not isinstance(example, tuple) or not example:
            raise ValueError(
                f"`--example {args.example}` must name a tuple (params, *args) of arrays, the arguments of the loss; "
                f"got {type(example).__name__}."
            )
        try:
            problems = gs.shaped_like(example)
        except InvalidArgument as exc:
            raise ValueError(f"`--example {args.example}`: {exc}") from None
    source = f"`--problems {args.problems}`" if args.problems is not None else f"`--example {args.example}`"
    first = example if example is not None else _search_loss.first_draw(problems, args.seed)
    if not isinstance(first, tuple) or not first:
        raise ValueError(
            f"{source} drew {type(first).__name__} {first!r:.200}; a problem is a tuple (params, *args), "
            "the arguments of the loss."
        )
    try:
        names, leaves, _ = _inputs.flatten_params(first[0])
    except ValueError as exc:
        raise ValueError(f"{source}: the parameters of its first problem cannot be checked: {exc}") from None
    task = args.loss.rpartition(":")[2]
    signature = (
        f"FUNC must be FUNC(params, *args) -> the gradient of {task} with the structure of params "
        f"({_inputs.expected(names, leaves)}) (gradcheck check --help)"
    )

    def search(func: Any, _task: str) -> _search.SearchResult:
        try:
            return _search_loss.search_loss(
                loss, func, problems, example=example, examples=args.examples, random_seed=args.seed
            )
        except _search.ProblemError as exc:
            raise ValueError(f"`--loss {args.loss}` on {source}: {exc}") from None

    return Grading((task,), tuple(names), signature, search)


def _load(flag: str, spec: str, *, any_value: bool) -> Any:
    try:
        return _submissions.load(spec, any_value=any_value)
    except _submissions.LoadError as exc:
        raise ValueError(f"`{flag} {spec}`: {exc}") from None


def _strategy(spec: str) -> st.SearchStrategy[Any]:
    """The strategy that `--problems` names, or that the function it names returns."""
    value = _load("--problems", spec, any_value=True)
    if callable(value) and not isinstance(value, st.SearchStrategy):
        try:
            value = value()
        except Exception as exc:  # noqa: BLE001 - the instructor's code: told, with its traceback
            trace = _submissions.user_traceback(exc, value.folder)
            raise ValueError(f"`--problems {spec}`: calling it failed:\n{trace}") from None
    if not isinstance(value, st.SearchStrategy):
        raise ValueError(
            f"`--problems {spec}` must name a Hypothesis strategy of tuples (params, *args), or a function of no "
            f"arguments that returns one; got {type(value).__name__}."
        )
    return value
