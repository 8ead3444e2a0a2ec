"""Search for a minimal problem on which a closed-form gradient fails.

Hypothesis draws problems in every regime (`gradcheck.strategies.problems`),
checks the gradient on each, and shrinks the first failure to a minimal
counterexample. The CLI's ``gradcheck check`` and the pytest plugin use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from gradcheck import mlp
from gradcheck import strategies as gs
from gradcheck._check import check_gradients
from gradcheck._report import Report
from gradcheck.problems import Problem, sample

#: Sizes searched: small, so that counterexamples are readable and shapes (one
#: compilation each) are few.
SIZES = st.integers(1, 3)
BATCHES = st.integers(1, 4)


@dataclass(frozen=True)
class SearchResult:
    """The outcome of a search: the examples tried and the minimal failure, if any."""

    examples: int
    counterexample: Problem | None = None
    report: Report | None = None
    #: The same gradient checked on a generic problem (no zeros, distinct
    #: sizes), whose diagnoses are not fooled by the minimal example's
    #: coincidences (a batch of 2 makes "sum for mean" look like "factor 2").
    generic: Report | None = None

    def diagnoses(self) -> dict[str, str]:
        """The likely mistake for each failing parameter, preferring the generic problem."""
        found: dict[str, str] = {}
        for report in (self.report, self.generic):
            for p in report.params if report else ():
                if p.diagnosis and not p.diagnosis.startswith("unclassified"):
                    found[p.name] = p.diagnosis
                elif p.diagnosis:
                    found.setdefault(p.name, p.diagnosis)
        return found

    @property
    def ok(self) -> bool:
        return self.counterexample is None


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
    """
    loss = partial(mlp.loss, task=task)
    tried = 0
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
        nonlocal tried
        tried += 1
        report = check_gradients(loss, grad_fn, *prob[:3])
        if report.verdict == "mismatch":
            failing.append((prob, report))
            raise _Failed

    try:
        probe()
    except _Failed:
        prob, report = failing[-1]  # Hypothesis replays the shrunk example last
        generic = generic_problem(task, random_seed)
        generic_report = check_gradients(loss, grad_fn, *generic[:3])
        return SearchResult(tried, prob, report, generic_report if generic_report.verdict == "mismatch" else None)
    return SearchResult(tried)


def generic_problem(task: mlp.Task, random_seed: int = 0) -> Problem:
    """A typical problem with distinct sizes (inputs 2, hidden 3, batch 5) and no zero entries."""
    return sample(np.random.default_rng([random_seed, 7]), task=task, inputs=2, hidden=3, batch=5)


class _Failed(Exception):
    """Raised inside the search to tell Hypothesis that an example fails."""
