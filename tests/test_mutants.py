"""The mutation suite: wrong derivations people really write, each caught and shrunk.

For every mutant in `tests/derivations.py`:
- Hypothesis searches typical problems for one where `check_gradients`
  flags it, and shrinks that to a minimal counterexample, which must be small
  (N <= 2 samples, H <= 2 hidden units);
- on generic problems (no zero weights, no coincident sizes) it is always
  caught, in the parameters the mutation touches;
- where the mistake has a known kind, the diagnosis names it.

For every mutant in `RULE_MUTANTS` (wrong VJPs, JVPs, Jacobians, Hessians and
custom rules), on every generic point Hypothesis draws: the wrong version is
flagged, with its diagnosis where it has a known kind, and the right version
passes.
"""

from __future__ import annotations

import functools
from functools import partial

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, given, note, settings
from hypothesis import strategies as st

from gradcheck import Report, check_gradients, mlp, problems
from gradcheck import strategies as gs
from gradcheck._search import search
from tests.derivations import MUTANTS, RULE_MUTANTS, Mutant

# Entries bounded away from zero, so that no product in the derivation vanishes
# by coincidence and hides a mistake (w2 = 0 makes any sigma' factor invisible).
AWAY_FROM_ZERO = st.floats(0.2, 2.5) | st.floats(-2.5, -0.2)


def decayed_loss(p, x, y, *, task, weight_decay):  # type: ignore[no-untyped-def]
    """The loss with an L2 penalty on the weights, as in a regularised model."""
    return mlp.loss(p, x, y, task=task) + 0.5 * weight_decay * (jnp.sum(p.w1**2) + jnp.sum(p.w2**2))


def loss_for(m: Mutant, task: mlp.Task):  # type: ignore[no-untyped-def]
    # Equal partials share one compilation across calls.
    if not m.weight_decay:
        return partial(mlp.loss, task=task)
    return partial(decayed_loss, task=task, weight_decay=m.weight_decay)


def check(m: Mutant, prob: problems.Problem) -> Report:
    return check_gradients(loss_for(m, prob.task), partial(m.grad, task=prob.task), *prob[:3])


def _distinct_samples(prob: problems.Problem) -> bool:
    return len(np.unique(prob.x, axis=0)) == len(prob.x)


@functools.cache
def strategy(m: Mutant, *, generic: bool) -> st.SearchStrategy[problems.Problem]:
    """Typical problems; `generic` ones avoid coincidences that hide a mistake.

    Sizes are kept to a few shapes, since JAX compiles the references once per shape.
    """
    if generic:
        k = 3 if m.square else None
        return gs.problems(inputs=k or 2, hidden=k or 3, batch=st.integers(4, 5), elements=AWAY_FROM_ZERO).filter(
            _distinct_samples
        )
    sizes = st.integers(1, 3) if m.square else None
    batch = st.integers(1, 5)
    if sizes is not None:
        square = {k: gs.problems(inputs=k, hidden=k, batch=batch) for k in range(1, 4)}  # built once each
        return sizes.flatmap(square.__getitem__)
    return gs.problems(inputs=2, hidden=st.integers(1, 3), batch=batch)


# Generate and shrink only: the explain phase would re-run hundreds of checks
# to annotate a counterexample that these tests print themselves.
SHRINK = settings(
    max_examples=300,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize("name", MUTANTS)
def test_mutant_is_found_and_shrunk_to_a_small_counterexample(name: str) -> None:
    m = MUTANTS[name]
    minimal = find(strategy(m, generic=False), lambda prob: check(m, prob).verdict == "mismatch", settings=SHRINK)
    hidden, n = minimal.params.w1.shape[0], minimal.x.shape[0]
    report = check(m, minimal)
    assert n <= 2, f"{name}: counterexample not small: {minimal.describe()}\n{report}"
    assert hidden <= 2, f"{name}: counterexample not small: {minimal.describe()}\n{report}"
    assert report.verdict == "mismatch"


@pytest.mark.parametrize("name", MUTANTS)
@given(data=st.data())
def test_mutant_is_always_caught_on_generic_problems(name: str, data: st.DataObject) -> None:
    m = MUTANTS[name]
    prob = data.draw(strategy(m, generic=True), label="problem")
    note(prob.describe())
    report = check(m, prob)
    assert report.verdict == "mismatch", str(report)
    flagged = {p.name for p in report.params if not p.ok}
    assert flagged == set(m.broken), f"flagged {flagged}, the mutation touches exactly {m.broken}\n{report}"


@pytest.mark.parametrize("name", [n for n, m in MUTANTS.items() if m.kind])
@pytest.mark.parametrize("task", mlp.TASKS)
def test_mutant_kind_is_diagnosed(name: str, task: mlp.Task) -> None:
    m = MUTANTS[name]
    k = 3 if m.square else None
    prob = problems.sample(
        np.random.default_rng(11), task=task, inputs=k or 2, hidden=k or 3, batch=5, regime="typical"
    )
    report = check(m, prob)
    diagnoses = [p.diagnosis or "" for p in report.params if not p.ok]
    assert diagnoses, str(report)
    assert all(m.kind in d for d in diagnoses), f"expected '{m.kind}' in every diagnosis:\n{report}"


def test_suite_has_at_least_fifteen_mutants() -> None:
    assert len(MUTANTS) >= 15


#: Points per rule mutant: a quarter of the profile's examples (10 in `ci`), since
#: each point runs two full checks (the right and the wrong version); a third of
#: that for a `slow` one (the Gauss-Newton product: each of its checks traces
#: the JVP of a linearised network's gradient, about 0.3 s, along 3 tangents).
RULE_EXAMPLES = max(3, settings().max_examples // 4)
SLOW_RULE_EXAMPLES = max(3, RULE_EXAMPLES // 3)


@pytest.mark.parametrize("name", [n for n, m in RULE_MUTANTS.items() if not m.slow])
@settings(max_examples=RULE_EXAMPLES)
@given(data=st.data())
def test_rule_mutant_is_always_caught_and_the_right_rule_passes(name: str, data: st.DataObject) -> None:
    _caught_and_right_passes(name, data)


@pytest.mark.parametrize("name", [n for n, m in RULE_MUTANTS.items() if m.slow])
@settings(max_examples=SLOW_RULE_EXAMPLES)
@given(data=st.data())
def test_slow_rule_mutant_is_always_caught_and_the_right_rule_passes(name: str, data: st.DataObject) -> None:
    _caught_and_right_passes(name, data)


def _caught_and_right_passes(name: str, data: st.DataObject) -> None:
    m = RULE_MUTANTS[name]
    point = data.draw(m.points, label="point")
    wrong = m.check(*m.wrong(point))
    assert wrong.verdict == "mismatch", str(wrong)
    if m.kind:
        diagnoses = [p.diagnosis or "" for p in wrong.params if not p.ok]
        assert all(m.kind in d for d in diagnoses), f"expected '{m.kind}' in every diagnosis:\n{wrong}"
    if m.note:
        assert any(m.note in n for n in wrong.notes), f"expected a note saying '{m.note}':\n{wrong}"
    right = m.check(*m.right(point))
    assert right.ok, str(right)


def test_suite_has_rule_mutants_of_every_check() -> None:
    checks = {m.check.__name__ for m in RULE_MUTANTS.values()}
    assert checks == {"check_vjp", "check_jvp", "check_jacobian", "check_hessian", "check_custom_rule"}


# What `gradcheck check` and the pytest plugin say: the search's diagnoses
# (confirmed by recomputation on generic problems of two batch sizes, else what
# one generic problem shows, plus the sigma' test on one sample).
SEARCH_KINDS = {
    **{name: m.kind for name, m in MUTANTS.items() if m.kind},
    "missing_sigmoid_slope": "missing sigma' factor",
    "sum_not_mean": "a sum where a mean belongs",
    "noncanonical_delta": "an extra factor sigma'(z2) = a2 (1 - a2) in the output error",
}


@pytest.mark.parametrize("name", SEARCH_KINDS)
def test_search_names_the_mistake(name: str) -> None:
    result = search(partial(MUTANTS[name].grad, task="classification"), task="classification", examples=60)
    assert not result.ok
    diagnoses = result.diagnoses()
    assert any(SEARCH_KINDS[name] in d for d in diagnoses.values()), diagnoses


def _drawn(random_seed: int) -> list[bytes]:
    """The problems a passing search draws with `random_seed`, in order (their x and y, as bytes)."""
    seen: list[bytes] = []

    def recording(params, x, y):  # type: ignore[no-untyped-def]
        seen.append(np.asarray(x).tobytes() + np.asarray(y).tobytes())
        return mlp.closed_form_gradients(params, x, y, task="regression")

    assert search(recording, task="regression", examples=8, random_seed=random_seed).ok
    return seen


def test_the_search_is_seeded() -> None:
    """The same seed draws the same problems, run after run; another seed draws others."""
    first = _drawn(0)
    assert len(first) >= 8
    assert _drawn(0) == first
    assert _drawn(1) != first


def test_every_source_mutation_of_benchmarks_mutate_applies_exactly_once() -> None:
    """benchmarks/mutate.py edits the source by text: a mutation whose text moved (a module split, a
    rewritten line) would silently mutate nothing, or the wrong place."""
    import importlib.util
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("gradcheck_mutate", root / "benchmarks" / "mutate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    for mutation in module.MUTATIONS:
        count = (root / mutation.path).read_text().count(mutation.old)
        assert count == 1, f"{mutation.name}: its text occurs {count} times in {mutation.path}"
