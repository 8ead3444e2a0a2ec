"""Search for a minimal problem on which a closed-form gradient fails.

Hypothesis draws problems in every regime (`gradcheck.strategies.problems`),
checks the gradient on each, and shrinks the first failure to a minimal
counterexample. The CLI's ``gradcheck check`` and the pytest plugin use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky

from gradcheck import _diagnose, _references, mlp
from gradcheck import strategies as gs
from gradcheck._check import check_gradients
from gradcheck._inputs import match_structure
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
    counterexample: Problem | None = None
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
    #: batch size in `GENERIC_BATCHES` (`_diagnose.confirm`), by parameter.
    confirmed: dict[str, str] = field(default_factory=dict)
    #: Set when `grad_fn` could not be checked on the first, generic problem
    #: (a wrong call: it raised, or returned no gradient): no search was run,
    #: and `report` (verdict "error") says why, with the user's traceback.
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.counterexample is None and self.error is None

    @property
    def verdict(self) -> str:
        """ "error" (a wrong call: no search), "mismatch" (a counterexample was found) or "pass"."""
        return "error" if self.error is not None else ("pass" if self.counterexample is None else "mismatch")

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


MISSING_SLOPE = "missing sigma' factor: multiplied by a1 (1 - a1) elementwise it is right (sigma'(z1) = a1 (1 - a1))"


def search(
    grad_fn: Callable[..., Any],
    *,
    task: mlp.Task,
    examples: int = 200,
    random_seed: int = 0,
    regime: str = "any",
) -> SearchResult:
    """Check ``grad_fn(params, x, y)`` on `examples` problems; shrink the first failure.

    `grad_fn` has the signature of `mlp.closed_form_gradients` without the
    `task` keyword. Problems whose verdict is "inconclusive" do not count as
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
    tried = 0
    first_failure = 0
    failing: list[tuple[Problem, Report]] = []

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
    @given(gs.problems(task=task, regime=regime, inputs=SIZES, hidden=SIZES, batch=BATCHES))
    def probe(prob: Problem) -> None:
        nonlocal tried, first_failure
        tried += 1
        report = check_gradients(loss, grad_fn, *prob[:3])
        if report.verdict in ("mismatch", "error"):
            first_failure = first_failure or tried
            failing.append((prob, report))
            raise _Failed

    flaky = False
    try:
        probe()
    except _Failed:
        pass
    except Flaky:  # the same problem passed once and failed once
        flaky = True
    if not failing:
        return SearchResult(tried)
    prob, report = failing[0] if flaky else failing[-1]  # Hypothesis replays the shrunk example last
    return SearchResult(
        first_failure,
        prob,
        report,
        generic_report if generic_report.verdict == "mismatch" else None,
        _missing_slope(grad_fn, task, random_seed),
        flaky,
        _confirmed(grad_fn, task, generics),
    )


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
    """The mistakes that `_diagnose.confirm` confirms on the generic problems, by parameter."""
    evidence = []
    for prob in generics:
        closed = _closed_form(grad_fn, prob)
        if closed is None:
            return {}
        cf, problems = closed
        params = {k: np.asarray(v) for k, v in prob.params._asdict().items()}
        kept = {k: v for k, v in cf.items() if k not in problems}
        evidence.append(_diagnose.Evidence(params, prob.x, prob.y[:, None], kept))
    inputs, hidden = generics[0].params.w1.shape[::-1]
    return _diagnose.confirm(mlp.network_for(task, inputs=inputs, hidden=hidden), evidence)


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
        scale = float(np.abs(a).max()) or 1.0
        fixed = np.allclose(c * factor, a, rtol=1e-10, atol=1e-12 * scale)
        if fixed and not np.allclose(c, a, rtol=1e-10, atol=1e-12 * scale):
            found.append(name)
    return tuple(found)
