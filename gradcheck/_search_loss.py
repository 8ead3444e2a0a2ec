"""Search any loss: an instructor's loss and problems ``(params, *args)`` drawn from a strategy.

`search_loss` does for ``gradcheck check --loss`` what `_search.search` does for the seed network: checks
the gradient on the problems Hypothesis draws, and shrinks the first failure to a minimal counterexample,
with `_search`'s hunt and result.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from gradcheck._check import check_gradients
from gradcheck._report import Report
from gradcheck._search import LossProblem, ProblemError, SearchResult, _Hunt, _hunt


def search_loss(
    loss_fn: Callable[..., Any],
    grad_fn: Callable[..., Any],
    problems: st.SearchStrategy[Any],
    *,
    example: Any = None,
    examples: int = 100,
    random_seed: int = 0,
) -> SearchResult:
    """Check ``grad_fn(params, *args)`` against `loss_fn` on `examples` problems; shrink the first failure.

    - `loss_fn`: ``loss_fn(params, *args)`` returns a scalar, written with ``jax.numpy``.
    - `grad_fn`: returns the gradient with the structure of `params`.
    - `problems`: a strategy of tuples ``(params, *args)``, every one with the
      same structure (`gradcheck.strategies.shaped_like` makes one from an example).
    - `example`: a problem ``(params, *args)`` checked first, as problem 1;
      then ``examples - 1`` are drawn.
    - `examples`: problems checked in all; `random_seed` seeds the search.

    `grad_fn` is first checked on `example`, or else on the first problem
    drawn. If it cannot be checked there (a wrong call), no search is run and
    the result's `error` says why, as in `search`. A failing search's generic
    report, which its diagnosis reads first, is the example's where the example
    fails, else that of the failing problem with the most non-zero entries among
    `GENERIC_DRAWS` fresh draws.

    Raises:
        ProblemError: a problem is not a tuple ``(params, *args)`` with the
            first problem's structure, or `loss_fn` fails on it (then the
            problem shown is the smallest that Hypothesis found to fail).
    """
    first = _loss_problem(loss_fn, example if example is not None else first_draw(problems, random_seed))
    structure: Any = jax.tree_util.tree_structure((first.params, *first.args))
    names = first.arg_names

    def check(prob: LossProblem) -> Report:
        try:
            return check_gradients(loss_fn, grad_fn, prob.params, *prob.args)
        except (ValueError, TypeError) as exc:
            raise ProblemError(f"the problem {prob.describe()} cannot be checked: {exc}") from None

    def problem(drawn: Any) -> LossProblem:
        prob = _loss_problem(loss_fn, drawn, names)
        found = jax.tree_util.tree_structure((prob.params, *prob.args))
        if found != structure:
            raise ProblemError(
                f"the problems differ in structure: the first is {structure}, another {found}; "
                "draw every problem with the same parameters and arguments (only their values and sizes may vary)."
            )
        return prob

    first_report = check(first)
    if first_report.verdict == "error":
        return SearchResult(0, report=first_report, error=first_report.error)
    counted = example is not None  # the example is problem 1, and the search draws the rest
    first_failed = counted and first_report.verdict == "mismatch"
    budget = examples - counted
    hunt = _hunt(problems.map(problem), check, budget, random_seed) if budget else _Hunt()
    if not hunt.failing and not first_failed:
        imprecise = (first, first_report) if first_report.verdict == "imprecise" else hunt.imprecise
        return SearchResult(hunt.tried + counted, imprecise=imprecise)
    found = [(first, first_report)] if first_failed else []
    found += hunt.failing
    prob, report = hunt.found() if hunt.failing else found[0]
    # The diagnosis reads a failing problem far from the simplest: the example where it fails, else the
    # failing draw with the most non-zero entries (the shrunk problem, all zeros but one, may show one
    # parameter's mistake and hide another's).
    generic = first_report if first_failed else _generic_failure(problems.map(problem), check, random_seed)
    return SearchResult(
        1 if first_failed else hunt.first_failure + counted,
        prob,
        report,
        generic if generic is not report else None,
        flaky=hunt.flaky,
    )


#: Problems drawn, once a search has failed, to find the failing one to diagnose (`_generic_failure`).
GENERIC_DRAWS = 20


def _generic_failure(
    strategy: st.SearchStrategy[LossProblem], check: Callable[[LossProblem], Report], random_seed: int
) -> Report | None:
    """The report of the failing problem with the most non-zero entries among `GENERIC_DRAWS` fresh draws.

    Drawn without shrinking, from a seed of their own; None if none of them fails.
    """
    best: tuple[int, Report] | None = None

    @seed(random_seed + 1)
    @settings(
        max_examples=GENERIC_DRAWS,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def probe(prob: LossProblem) -> None:
        nonlocal best
        report = check(prob)
        if report.verdict == "mismatch":
            score = sum(int(np.count_nonzero(a)) for a in prob.arrays().values())
            if best is None or score > best[0]:
                best = (score, report)

    probe()
    return best[1] if best is not None else None


def _loss_problem(loss_fn: Callable[..., Any], drawn: Any, names: tuple[str, ...] | None = None) -> LossProblem:
    """`drawn` as a `LossProblem`, its arguments named after `loss_fn`'s; `ProblemError` if it is no tuple."""
    if not isinstance(drawn, (tuple, list)) or not drawn:
        raise ProblemError(
            f"a problem must be a tuple (params, *args), the arguments of the loss; got {type(drawn).__name__} "
            f"{_short(drawn)}"
        )
    params, *args = drawn
    return LossProblem(params, tuple(args), _argument_names(loss_fn, len(args)) if names is None else names)


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _argument_names(loss_fn: Callable[..., Any], count: int) -> tuple[str, ...]:
    """The names of `loss_fn`'s `count` arguments after params, if its signature names them all; else ()."""
    try:
        parameters = list(inspect.signature(loss_fn).parameters.values())[1:]
    except (TypeError, ValueError):  # a builtin, or a callable with no signature
        return ()
    positional = [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return tuple(positional[:count]) if len(positional) >= count else ()


def first_draw(strategy: st.SearchStrategy[Any], random_seed: int = 0) -> Any:
    """The first value that the search seeded with `random_seed` draws from `strategy` (its simplest, usually)."""
    drawn: list[Any] = []

    @seed(random_seed)
    @settings(
        max_examples=1, database=None, deadline=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck)
    )
    @given(strategy)
    def take(value: Any) -> None:
        drawn.append(value)

    take()
    return drawn[0]
