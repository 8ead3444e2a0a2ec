"""gradcheck.strategies and the regimes they draw: validity, regime properties, shrinking."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.extra import numpy as hnp

from gradcheck import _references, mlp, problems
from gradcheck import strategies as gs

INVALID = [
    pytest.param(lambda: gs.params(inputs=0), r"`inputs` must be a positive integer", id="params-inputs-zero"),
    pytest.param(
        lambda: gs.params(hidden=2.5), r"`hidden` must be a positive integer.*got 2.5", id="params-hidden-float"
    ),
    pytest.param(lambda: gs.params(elements=[1.0]), r"`elements` must be a strategy for floats", id="params-elements"),
    pytest.param(lambda: gs.inputs(batch=-1), r"`batch` must be a positive integer.*got -1", id="inputs-batch"),
    pytest.param(lambda: gs.inputs(features=True), r"`features` must be a positive integer", id="inputs-features-bool"),
    pytest.param(lambda: gs.targets("ranking"), r"`task` must be one of .*got 'ranking'", id="targets-task"),
    pytest.param(lambda: gs.targets("classification", soft="yes"), r"`soft` must be True or False", id="targets-soft"),
    pytest.param(lambda: gs.problems(regime="stiff"), r"`regime` must be one of .*got 'stiff'", id="problems-regime"),
    pytest.param(lambda: gs.problems(task="both"), r"`task` must be one of .*got 'both'", id="problems-task"),
    pytest.param(lambda: gs.problems(batch=0), r"`batch` must be a positive integer.*got 0", id="problems-batch"),
]


@pytest.mark.parametrize(("build", "message"), INVALID)
def test_invalid_arguments_are_rejected_when_the_strategy_is_built(build, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgument, match=message):
        build()


@given(gs.problems(regime="any", inputs=st.integers(1, 3), hidden=st.integers(1, 3)))
def test_problems_are_valid_for_the_network(prob: problems.Problem) -> None:
    mlp.validate_problem(prob.params, prob.x, prob.y, task=prob.task)  # raises if not
    assert prob.regime in problems.REGIMES


@given(gs.problems(regime="saturated"))
def test_saturated_hidden_units(prob: problems.Problem) -> None:
    z1 = mlp.forward(prob.params, prob.x, task=prob.task).z1
    assert np.all(np.abs(z1) >= problems.SATURATION - 3 * 3 * 3)  # |w1 x| <= I * 3 * 3


@given(gs.problems(regime="tiny"))
def test_tiny_weights(prob: problems.Problem) -> None:
    assert max(float(np.abs(a).max()) for a in prob.params) <= 3 * problems.TINY


@given(gs.problems(regime="confident"))
def test_confident_classifier_agrees_with_its_labels(prob: problems.Problem) -> None:
    z2 = mlp.forward(prob.params, prob.x, task=prob.task).z2
    assert np.all(np.abs(z2) >= problems.CONFIDENT - 5.0)
    assert np.all((z2 > 0) == (prob.y == 1.0))


@given(st.sampled_from(["perfect_fit", "perfect_fit_scaled"]).flatmap(lambda r: gs.problems(regime=r)))
def test_perfect_fit_targets_make_the_gradient_vanish(prob: problems.Problem) -> None:
    """A perfect fit is a minimum of the loss: autodiff's gradient is rounding, next to its size with the
    targets moved by 0.01 (not a recomputation of the targets the way the sampler makes them)."""
    loss = partial(mlp.loss, task=prob.task)
    # Float64 autodiff by gradcheck's NumPy references (tests/test_interpret.py holds them to JAX's): no
    # op-by-op dispatch, no compile per shape.
    at_fit = _references.autodiff(loss, prob.params, prob.x, prob.y)
    moved = _references.autodiff(loss, prob.params, prob.x, prob.y + 0.01)
    size = max(float(np.abs(np.asarray(g)).max()) for g in moved)
    assert size > 0
    assert max(float(np.abs(np.asarray(g)).max()) for g in at_fit) <= 1e-9 * size


@given(gs.problems(regime="large_batch"))
def test_large_batch(prob: problems.Problem) -> None:
    assert prob.x.shape[0] == problems.LARGE_BATCH


BASE = st.tuples(
    gs.params(inputs=2, hidden=2),
    gs.inputs(batch=3, features=2),
    hnp.arrays(np.float64, 3, elements=st.floats(0.0, 1.0)),
)


@given(BASE)
def test_soft_labels_are_the_drawn_probabilities(base) -> None:  # type: ignore[no-untyped-def]
    typical = problems.make_problem(*base, task="classification", regime="typical")
    soft = problems.make_problem(*base, task="classification", regime="soft_labels")
    np.testing.assert_array_equal(soft.y, base[2])  # not rounded to labels
    np.testing.assert_array_equal(typical.y, (base[2] > 0.5).astype(float))


@given(BASE)
def test_large_targets_scale_the_typical_targets(base) -> None:  # type: ignore[no-untyped-def]
    typical = problems.make_problem(*base, task="regression", regime="typical")
    large = problems.make_problem(*base, task="regression", regime="large_targets")
    np.testing.assert_array_equal(large.y, typical.y * problems.LARGE_TARGET)


@given(gs.problems(regime="duplicated"))
def test_duplicated_samples(prob: problems.Problem) -> None:
    assert np.all(prob.x == prob.x[0])
    assert np.all(prob.y == prob.y[0])


@given(gs.problems(regime="zero_inputs"))
def test_zero_inputs(prob: problems.Problem) -> None:
    assert not prob.x.any()


def test_shrinking_heads_for_the_simplest_problem() -> None:
    minimal = find(
        gs.problems(regime="typical"),
        lambda p: True,
        settings=settings(
            database=None, phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck)
        ),
    )
    assert minimal.x.shape == (1, 1)
    assert minimal.params.w1.shape == (1, 1)
    assert not any(np.any(a) for a in minimal.params)
    assert not minimal.x.any()


def test_strategies_accept_values_or_strategies() -> None:
    fixed = find(gs.params(inputs=2, hidden=4), lambda p: True)
    drawn = find(gs.params(inputs=st.just(2), hidden=st.just(4)), lambda p: True)
    assert [a.shape for a in fixed] == [a.shape for a in drawn] == [(4, 2), (4,), (1, 4), (1,)]
    assert find(gs.targets(st.just("classification"), batch=st.just(3), soft=True), lambda y: True).shape == (3,)
    assert find(gs.inputs(batch=st.just(2), features=3), lambda x: True).shape == (2, 3)
