"""pytest plugin: turn a hand-derived gradient into a property test.

Registered through the ``pytest11`` entry point, so it is active wherever
gradcheck is installed. It provides the fixture ``gradcheck_property``::

    def test_my_derivation(gradcheck_property):
        gradcheck_property(my_grads, task="classification", examples=100)

where ``my_grads(params, x, y, *, task)`` has the signature of
`gradcheck.mlp.closed_form_gradients`. Hypothesis searches problems in every
regime; on a mismatch the test fails with `GradientMismatch`, whose message
shows the minimal counterexample, the report table, the likely mistake, and
the Taylor-remainder evidence.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pytest

from gradcheck import _search, mlp
from gradcheck._report import GradientMismatch, misuse_exception


def check_property(
    grad_fn: Callable[..., Any], *, task: mlp.Task | str = "both", examples: int = 100, seed: int = 0
) -> None:
    """Search for a problem on which `grad_fn` fails; raise `GradientMismatch` if one is found.

    A wrong call (`grad_fn` raises on a typical problem, or returns no
    gradient) raises `TypeError` or `ValueError` instead, as
    `assert_gradients` does, and no search is run.

    This is what the fixture ``gradcheck_property`` returns.

    - `grad_fn`: ``grad_fn(params, x, y, *, task)``, the signature of
      `gradcheck.mlp.closed_form_gradients`.
    - `task`: "regression", "classification" or "both".
    - `examples`: problems searched per task (a positive integer).
    - `seed`: seeds the search; the same seed searches the same problems.

    Examples:
        >>> from gradcheck import mlp
        >>> check_property(mlp.closed_form_gradients, task="regression", examples=3)  # passes: returns None
    """
    if task not in (*mlp.TASKS, "both"):
        raise ValueError(f"`task` must be one of {(*mlp.TASKS, 'both')}, got {task!r}.")
    if not isinstance(examples, int) or examples < 1:
        raise ValueError(f"`examples` must be a positive integer, got {examples!r}.")
    tasks: list[mlp.Task] = list(mlp.TASKS) if task == "both" else [task]  # type: ignore[list-item]
    for t in tasks:
        result = _search.search(partial(grad_fn, task=t), task=t, examples=examples, random_seed=seed)
        if result.ok:
            continue
        if result.error is not None:  # a wrong call, not a wrong gradient
            assert result.report is not None
            context = f"`grad_fn` could not be checked for task {t!r}; no search was run."
            raise misuse_exception(result.report, context) from result.report.cause
        assert result.counterexample is not None
        assert result.report is not None
        prob = result.counterexample
        lines = [f"first failure at problem {result.examples}; minimal counterexample ({prob.describe()}):"]
        if result.flaky:
            lines.append("note: the same problem passed once and failed once: the function is not deterministic")
        for name, value in prob.arrays().items():
            lines.append(f"  {name} = {np.array2string(np.asarray(value), separator=', ')}")
        lines.append("diagnosis, confirmed on a generic problem (inputs 2, hidden 3, batch 5) where it fails too:")
        lines += [f"  {n}: {d}" for n, d in result.diagnoses().items()]
        raise GradientMismatch(result.report, context="\n".join(lines))


@pytest.fixture
def gradcheck_property() -> Callable[..., None]:
    """``gradcheck_property(grad_fn, task=..., examples=..., seed=...)``: a property test of `grad_fn`."""
    return check_property
