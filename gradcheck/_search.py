"""Search for a minimal problem on which a closed-form gradient fails.

Hypothesis draws problems in every regime (`gradcheck.strategies.problems`),
checks the gradient on each, and shrinks the first failure to a minimal
counterexample. The CLI's ``gradcheck check`` and the pytest plugin use it.
`search_loss` does the same for any loss: an instructor's loss, and problems
``(params, *args)`` drawn from a strategy (``gradcheck check --loss``).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import jax
import numpy as np
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky

from gradcheck import _caches, _confirm, _references, _tolerance, mlp
from gradcheck import strategies as gs
from gradcheck._check import check_gradients, with_diagnoses
from gradcheck._inputs import match_structure
from gradcheck._references import _trace
from gradcheck._report import Report
from gradcheck.problems import Problem, sample

#: Sizes searched: small, so that counterexamples are readable and shapes (one
#: compilation each) are few.
SIZES = st.integers(1, 3)
BATCHES = st.integers(1, 4)
#: Batch sizes of the generic problems on which diagnoses are confirmed: two,
#: so that a factor N, 1/N or a constant cannot pass for one another, and
#: neither equal to the inputs (2) or hidden units (3), so that no shape
#: coincides. The first is `generic_problem`'s.
GENERIC_BATCHES = (5, 7)


@dataclass(frozen=True)
class SearchResult:
    """The outcome of a search: the examples tried and the minimal failure, if any."""

    examples: int  # problems checked before the first failure (all of them on a pass)
    counterexample: Problem | LossProblem | None = None
    report: Report | None = None
    #: The same gradient checked on a generic problem (no zeros, distinct
    #: sizes), whose diagnoses are not fooled by the minimal example's
    #: coincidences (a batch of 2 makes "sum for mean" look like "factor 2").
    generic: Report | None = None

    #: Parameters whose closed form is right once multiplied by sigma'(z1).
    missing_slope: tuple[str, ...] = ()
    #: Set when the same problem passed once and failed once: the function
    #: under test is not deterministic.
    flaky: bool = False
    #: Mistakes confirmed by recomputation on the generic problems of every
    #: batch size in `GENERIC_BATCHES` (`_confirm.confirm`), by parameter.
    confirmed: dict[str, str] = field(default_factory=dict)
    #: Set when `grad_fn` could not be checked on the first, generic problem
    #: (a wrong call: it raised, or returned no gradient): no search was run,
    #: and `report` (verdict "error") says why, with the user's traceback.
    error: str | None = None
    #: The first problem on which the derivation was right but its float64 evaluation lost digits
    #: (verdict "imprecise"), with its report; None if there was none.
    imprecise: tuple[Any, Report] | None = None

    @property
    def ok(self) -> bool:
        """The derivation is right on every problem (some may be "imprecise": see `verdict`)."""
        return self.counterexample is None and self.error is None

    @property
    def verdict(self) -> str:
        """ "error" (a wrong call: no search), "mismatch" (a counterexample was found), "imprecise" (right,
        but some problem's float64 evaluation lost digits) or "pass"."""
        if self.error is not None:
            return "error"
        if self.counterexample is not None:
            # A function that raised on the counterexample is a wrong call there, told as its report tells it.
            return "error" if self.report is not None and self.report.verdict == "error" else "mismatch"
        return "pass" if self.imprecise is None else "imprecise"

    def told(self) -> Report | None:
        """The counterexample's report with `diagnoses` in place of its own: the one diagnosis per parameter that
        every output tells (console, JSON, Gradescope, JUnit, a pytest failure)."""
        if self.report is None:
            return None
        return with_diagnoses(self.report, self.diagnoses())

    def diagnoses(self) -> dict[str, str]:
        """The likely mistake for each failing parameter.

        Mistakes confirmed across batch sizes win; then the missing sigma'
        test; then what the generic problem shows when it fails too, else what
        the minimal example shows. A minimal example invites coincidences
        (with w2 = 1, a missing sigma' makes the b1 gradient equal the b2
        gradient, which looks like a swap; with z2 = 0 and 4 samples,
        sigma'(z2) = 1/4 looks like 1/N), and so does any one problem.
        """
        found: dict[str, str] = {}
        for source in (self.generic, self.report):
            found = {p.name: p.diagnosis for p in (source.params if source else ()) if p.diagnosis}
            if found:
                break
        for name in self.missing_slope:
            found[name] = MISSING_SLOPE
        found.update(self.confirmed)
        return found


#: How every output (the CLI's, the pytest plugin's) tells a search whose function is not deterministic.
FLAKY = "note: the same problem passed once and failed once: the function is not deterministic"
#: The problem on which a search's diagnosis is confirmed (`generic_problem`), in words.
GENERIC_PROBLEM = f"a generic problem (inputs 2, hidden 3, batch {GENERIC_BATCHES[0]})"

MISSING_SLOPE = "missing sigma' factor: multiplied by a1 (1 - a1) elementwise it is right (sigma'(z1) = a1 (1 - a1))"


def search(
    grad_fn: Callable[..., Any],
    *,
    task: mlp.Task,
    examples: int = 200,
    random_seed: int = 0,
    regime: Any = "any",
) -> SearchResult:
    """Check ``grad_fn(params, x, y)`` on `examples` problems; shrink the first failure.

    `grad_fn` has the signature of `mlp.closed_form_gradients` without the
    `task` keyword. `regime` is a regime, "any", or a strategy of regimes.
    Problems whose verdict is "inconclusive" do not count as
    failures.

    `grad_fn` is first checked on a generic problem (`generic_problem`). If it
    cannot be checked there (a wrong call: it raised, or returned no
    gradient), that is misuse, not a mismatch: no search is run, and the
    result's `error` says why. A problem found by the search on which it
    raises, though it ran on the generic one, is a failure like a mismatch:
    its minimal counterexample is reported with the user's traceback.
    """
    loss = partial(mlp.loss, task=task)
    generics = generic_problems(task, random_seed)
    generic_report = check_gradients(loss, grad_fn, *generics[0][:3])
    if generic_report.verdict == "error":
        return SearchResult(0, report=generic_report, error=generic_report.error)
    strategy = gs.problems(task=task, regime=regime, inputs=SIZES, hidden=SIZES, batch=BATCHES)

    def check(prob: Problem) -> Report:
        return check_gradients(loss, grad_fn, *prob[:3])

    drawn = _search_key(task, regime, examples, random_seed)
    passed = _replayed(_DRAWN.get(drawn) if drawn is not None else None, check)
    if passed is not None:
        return passed
    hunt = _hunt(strategy, check, examples, random_seed)
    if not hunt.failing:
        if drawn is not None:
            _trace.cached(_DRAWN, drawn, lambda: hunt.seen)
        return SearchResult(hunt.tried, imprecise=hunt.imprecise)
    prob, report = hunt.found()
    return SearchResult(
        hunt.first_failure,
        prob,
        report,
        generic_report if generic_report.verdict == "mismatch" else None,
        _missing_slope(grad_fn, task, random_seed),
        hunt.flaky,
        _confirmed(grad_fn, task, generics),
    )


#: The problems of every search that passed, in the order Hypothesis drew them, by `_search_key`. Hypothesis's
#: generation is seeded, and a probe that passes tells it nothing: every search with the same key that passes
#: draws exactly these. A class's searches replay them (`_replayed`), without Hypothesis, and share their
#: references (`_references.evaluation` keeps them); only a submission that fails one runs the search itself.
_DRAWN: collections.OrderedDict[Hashable, list[Any]] = _caches.registered(collections.OrderedDict())


def _search_key(task: mlp.Task, regime: Any, examples: int, random_seed: int) -> Hashable | None:
    """What decides the problems a passing `search` draws; None where `regime` is a strategy not known by value."""
    regime_key = regime if isinstance(regime, str) else repr(regime)
    if " at 0x" in regime_key:  # a strategy whose text names an object, not its values
        return None
    return (task, regime_key, examples, random_seed, SIZES, BATCHES)


def _replayed(problems: list[Any] | None, check: Callable[[Any], Report]) -> SearchResult | None:
    """The result of a search that passes on `problems`, the ones it would draw; None if one fails (or there are none).

    A failure is left to the search itself, which draws the same problems up to it and shrinks it.
    """
    if problems is None:
        return None
    imprecise = None
    for prob in problems:
        report = check(prob)
        if report.verdict in ("mismatch", "error"):
            return None
        if report.verdict == "imprecise" and imprecise is None:
            imprecise = (prob, report)
    return SearchResult(len(problems), imprecise=imprecise)


@dataclass(frozen=True)
class LossProblem:
    """One problem for any loss: the parameters (a pytree of arrays) and the loss's further arguments."""

    params: Any
    args: tuple[Any, ...]
    #: The further arguments' names, as the loss's signature calls them ("X", "y"); ``args[i]`` where it has none.
    arg_names: tuple[str, ...] = ()

    def names(self) -> tuple[str, ...]:
        return self.arg_names or tuple(f"args[{i}]" for i in range(len(self.args)))

    def named(self) -> tuple[list[tuple[str, np.ndarray]], list[tuple[str, np.ndarray]]]:
        """The parameters' arrays by the names the report gives them, then the arguments' (``X``, ``batch.x``)."""
        args = [leaf for name, arg in zip(self.names(), self.args) for leaf in named_arrays(arg, name)]
        return named_arrays(self.params), args

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array of the problem by name, the parameters' first."""
        params, args = self.named()
        return dict(params + args)

    def describe(self) -> str:
        """The shapes, e.g. ``w (3,), b (); X (8, 3), y (8,)``: what a counterexample's size is."""
        return "; ".join(", ".join(f"{n} {a.shape}" for n, a in part) for part in self.named() if part)


def named_arrays(tree: Any, prefix: str = "") -> list[tuple[str, np.ndarray]]:
    """The leaves of `tree` by name (``w``, ``layers.0.w``; under `prefix`: ``X``, ``batch.x``), as arrays."""
    named = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        key = jax.tree_util.keystr(path, simple=True, separator=".")
        named.append((".".join(n for n in (prefix, key) if n) or "params", np.asarray(leaf)))
    return named


class ProblemError(ValueError):
    """A problem that cannot be checked at all (not a tuple ``(params, *args)``, or the loss fails on it).

    Misuse by whoever wrote the loss or the problems, not by the gradient
    function under test; the message says which problem and why.
    """


@dataclass
class _Hunt:
    """What `_hunt` found: problems tried, the first failure's number, every failure in order, flakiness."""

    tried: int = 0
    first_failure: int = 0
    #: Each failing problem with its report, in the order Hypothesis tried them:
    #: the first is the one found, the last the shrunk one (Hypothesis replays it last).
    failing: list[tuple[Any, Report]] = field(default_factory=list)
    flaky: bool = False
    #: With ``first_error_is_misuse``: the report of a wrong call at the first problem, which ended the search.
    misuse: Report | None = None
    #: The first problem whose verdict was "imprecise" (a right derivation, digits lost in float64), and its report.
    imprecise: tuple[Any, Report] | None = None
    #: Every problem checked, in order.
    seen: list[Any] = field(default_factory=list)

    def found(self) -> tuple[Any, Report]:
        """The minimal failure: the shrunk one, or the first when the function is not deterministic."""
        return self.failing[0] if self.flaky else self.failing[-1]


def _hunt(
    strategy: st.SearchStrategy[Any],
    check: Callable[[Any], Report],
    examples: int,
    random_seed: int,
    *,
    first_error_is_misuse: bool = False,
) -> _Hunt:
    """Check problems drawn from `strategy` until one fails ("mismatch" or "error"); shrink it.

    With `first_error_is_misuse`, an "error" at the first problem is a wrong
    call, not a failure: it is kept as ``misuse`` and nothing more is checked.

    Exceptions that `check` raises (not a failed check: misuse by whoever
    wrote the problems or the loss) end the search and propagate, after
    Hypothesis has shrunk the problem that raised them.
    """
    hunt = _Hunt()

    @seed(random_seed)
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        derandomize=False,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(strategy)
    def probe(prob: Any) -> None:
        if hunt.misuse is not None:
            return
        hunt.tried += 1
        hunt.seen.append(prob)
        report = check(prob)
        if first_error_is_misuse and report.verdict == "error" and hunt.tried == 1:
            hunt.misuse = report
            return
        if report.verdict == "imprecise" and hunt.imprecise is None:
            hunt.imprecise = (prob, report)
        if report.verdict in ("mismatch", "error"):
            hunt.first_failure = hunt.first_failure or hunt.tried
            hunt.failing.append((prob, report))
            raise _Failed

    try:
        probe()
    except _Failed:
        pass
    except Flaky:  # the same problem passed once and failed once
        hunt.flaky = True
    return hunt


def generic_problem(task: mlp.Task, random_seed: int = 0) -> Problem:
    """A typical problem with distinct sizes (inputs 2, hidden 3, batch 5) and no zero entries."""
    return sample(np.random.default_rng([random_seed, 7]), task=task, inputs=2, hidden=3, batch=GENERIC_BATCHES[0])


def generic_problems(task: mlp.Task, random_seed: int = 0) -> list[Problem]:
    """`generic_problem`, then one more typical problem for each further size in `GENERIC_BATCHES`."""
    return [generic_problem(task, random_seed)] + [
        sample(np.random.default_rng([random_seed, 7, n]), task=task, inputs=2, hidden=3, batch=n)
        for n in GENERIC_BATCHES[1:]
    ]


class _Failed(Exception):
    """Raised inside the search to tell Hypothesis that an example fails."""


def _closed_form(grad_fn: Callable[..., Any], prob: Problem) -> tuple[dict[str, np.ndarray], dict[str, str]] | None:
    """The user's gradient on `prob`, matched to the parameters; None if their code raised (already reported)."""
    try:
        returned = grad_fn(*prob[:3])
        return match_structure(list(mlp.Params._fields), list(prob.params), returned, positional=True)
    except KeyboardInterrupt:
        raise
    except BaseException:  # noqa: BLE001 - the user's code; the main check already reported it
        return None


def _confirmed(grad_fn: Callable[..., Any], task: mlp.Task, generics: list[Problem]) -> dict[str, str]:
    """The mistakes that `_confirm.confirm` confirms on the generic problems, by parameter."""
    evidence = []
    for prob in generics:
        closed = _closed_form(grad_fn, prob)
        if closed is None:
            return {}
        cf, problems = closed
        params = {k: np.asarray(v) for k, v in prob.params._asdict().items()}
        kept = {k: v for k, v in cf.items() if k not in problems}
        evidence.append(_confirm.Evidence(params, prob.x, prob.y[:, None], kept))
    inputs, hidden = generics[0].params.w1.shape[::-1]
    return _confirm.confirm(mlp.network_for(task, inputs=inputs, hidden=hidden), evidence)


def _missing_slope(grad_fn: Callable[..., Any], task: mlp.Task, random_seed: int) -> tuple[str, ...]:
    """Which of w1, b1 are right once multiplied by sigma'(z1), on a one-sample problem.

    With one sample the hidden-layer gradients are ``delta2 w2 sigma'(z1)``
    (times x for w1), so a forgotten sigma' shows as an elementwise ratio
    of exactly a1 (1 - a1). The fix is applied and compared with autodiff.
    """
    prob = sample(np.random.default_rng([random_seed, 11]), task=task, inputs=2, hidden=3, batch=1)
    closed = _closed_form(grad_fn, prob)
    if closed is None:
        return ()
    cf, problems = closed
    ad = _references.autodiff(partial(mlp.loss, task=task), prob.params, prob.x, prob.y)
    a1 = mlp.forward(prob.params, prob.x, task=task).a1[0]
    slope = {"b1": a1 * (1 - a1), "w1": (a1 * (1 - a1))[:, None]}
    found = []
    for name, factor in slope.items():
        if name in problems or name not in cf:
            continue
        c, a = cf[name].astype(np.float64), np.asarray(getattr(ad, name))
        # The tolerance's floor alone (as `_confirm._agree`): a generic one-sample problem, well conditioned,
        # on which a right closed form misses autodiff by a few ulps of its largest entry at most.
        tol = _tolerance.tolerance(np.zeros(()), float(np.abs(a).max()), float(np.finfo(np.float64).eps))
        if np.all(np.abs(c * factor - a) <= tol) and not np.all(np.abs(c - a) <= tol):
            found.append(name)
    return tuple(found)
