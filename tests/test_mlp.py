"""The seed network: hand-computed cases, one definition for NumPy and JAX, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradcheck import mlp
from gradcheck import strategies as gs

# A 1-input, 1-hidden-unit network small enough to do by hand:
# w1 = 0, b1 = 0  ->  z1 = 0, a1 = 1/2;  w2 = 2, b2 = -1  ->  z2 = 0.
TINY = mlp.Params(w1=np.array([[0.0]]), b1=np.array([0.0]), w2=np.array([[2.0]]), b2=np.array([-1.0]))
X, Y = np.array([[3.0]]), np.array([1.0])


def test_forward_by_hand() -> None:
    act = mlp.forward(TINY, X, task="classification")
    assert act.z1.tolist() == [[0.0]]
    assert act.a1.tolist() == [[0.5]]
    assert act.z2.tolist() == [0.0]
    assert act.a2.tolist() == [0.5]  # sigma(0)


def test_losses_by_hand() -> None:
    # regression: a2 = z2 = 0, L = 1/2 (1 - 0)^2
    assert mlp.loss(TINY, X, Y, task="regression") == pytest.approx(0.5, abs=0)
    # classification: a2 = 1/2, L = -log(1/2)
    assert mlp.loss(TINY, X, Y, task="classification") == pytest.approx(np.log(2.0), rel=1e-15)


@pytest.mark.parametrize(("task", "delta2"), [("regression", -1.0), ("classification", -0.5)])
def test_gradients_by_hand(task: mlp.Task, delta2: float) -> None:
    g = mlp.closed_form_gradients(TINY, X, Y, task=task)
    slope = 0.25  # a1 (1 - a1) at a1 = 1/2
    assert g.b2.tolist() == [delta2]
    assert g.w2.tolist() == [[delta2 * 0.5]]  # delta2 * a1
    assert g.b1.tolist() == [delta2 * 2.0 * slope]  # delta2 * w2 * sigma'
    assert g.w1.tolist() == [[delta2 * 2.0 * slope * 3.0]]  # ... * x


def test_shapes_follow_params() -> None:
    p = mlp.init_params(1, inputs=4, hidden=5)
    assert [a.shape for a in p] == [(5, 4), (5,), (1, 5), (1,)]
    g = mlp.closed_form_gradients(p, np.ones((7, 4)), np.zeros(7), task="regression")
    assert [a.shape for a in g] == [a.shape for a in p]


def test_leading_problem_axis_matches_one_at_a_time() -> None:
    rng = np.random.default_rng(0)
    stack = [(mlp.init_params(s), rng.normal(size=(5, 2)), rng.random(5)) for s in range(3)]
    batched_params = mlp.Params(*(np.stack(leaves) for leaves in zip(*(p for p, _, _ in stack))))
    x = np.stack([x for _, x, _ in stack])
    y = np.stack([y for _, _, y in stack])
    act = mlp.forward(batched_params, x, task="classification")
    batched = mlp.backward(batched_params, x, act.a1, act.a2 - y)
    for k, (p, xk, yk) in enumerate(stack):
        single = mlp.closed_form_gradients(p, xk, yk, task="classification")
        for a, b in zip(batched, single):
            np.testing.assert_allclose(a[k], b, rtol=1e-14, atol=1e-16)


@given(gs.problems(regime="any"))
def test_numpy_and_jax_evaluate_the_same_definition(prob) -> None:  # type: ignore[no-untyped-def]
    numpy_loss = mlp.loss(prob.params, prob.x, prob.y, task=prob.task)
    assert isinstance(numpy_loss, np.floating)
    with jax.enable_x64(True):
        params = mlp.Params(*map(jnp.asarray, prob.params))
        jax_loss = jax.jit(mlp.loss, static_argnames="task")(
            params, jnp.asarray(prob.x), jnp.asarray(prob.y), task=prob.task
        )
    assert isinstance(jax_loss, jax.Array)
    # Near a perfect fit the loss is 1/2 r^2 of a residual r that is rounding alone: each
    # evaluation may round z2 differently by a few ulps of its terms (|b2| + sum |w2| with
    # a1 <= 1, and |y|), so the two losses may differ by up to 1/2 (16 eps scale)^2 there.
    scale = np.abs(prob.params.b2).sum() + np.abs(prob.params.w2).sum() + np.abs(prob.y).max()
    atol = 0.5 * (16 * np.finfo(float).eps * scale) ** 2 if prob.task == "regression" else 1e-300
    np.testing.assert_allclose(float(jax_loss), numpy_loss, rtol=1e-12, atol=atol)


@given(st.floats(-745.0, 745.0))
def test_sigmoid_and_softplus_are_accurate_everywhere(z: float) -> None:
    # Reference values in extended precision where the platform has it.
    zl = np.longdouble(z)
    exact_sigmoid = 1 / (1 + np.exp(-zl))
    assert mlp.sigmoid(np.float64(z)) == pytest.approx(float(exact_sigmoid), rel=4e-16, abs=1e-320)
    assert np.isfinite(mlp.softplus(np.float64(z)))


def test_sigmoid_slope_at_zero_is_a_quarter_under_autodiff() -> None:
    with jax.enable_x64(True):
        assert float(jax.grad(mlp.sigmoid)(jnp.float64(0.0))) == 0.25
        assert float(jax.grad(mlp.softplus)(jnp.float64(0.0))) == 0.5


@given(gs.problems(regime="any"))
def test_autodiff_output_error_is_a2_minus_y(prob) -> None:  # type: ignore[no-untyped-def]
    """The derivation's key step: dL_n/dz2_n = a2_n - y_n for both tasks."""
    z2 = mlp.forward(prob.params, prob.x, task=prob.task).z2
    with jax.enable_x64(True):
        autodiff = jax.grad(lambda z: mlp.per_sample_loss(z, jnp.asarray(prob.y), task=prob.task).sum())(
            jnp.asarray(z2)
        )
    claimed = mlp.output_activation(z2, task=prob.task) - prob.y
    np.testing.assert_allclose(
        np.asarray(autodiff), claimed, rtol=0, atol=4 * np.finfo(float).eps * max(1.0, np.abs(prob.y).max())
    )


GOOD = mlp.init_params(0)
BAD_INPUT = [
    pytest.param({"task": "regresion"}, r"`task` must be one of .*got 'regresion'", id="unknown-task"),
    pytest.param({"x": np.ones((4, 3))}, r"`x` has shape \(4, 3\) but expected \(N, 2\)", id="x-wrong-features"),
    pytest.param({"x": np.ones(4)}, r"`x` has shape \(4,\) but expected \(N, 2\)", id="x-1d"),
    pytest.param({"y": np.ones(3)}, r"`y` has shape \(3,\) but expected \(4,\)", id="y-wrong-length"),
    pytest.param(
        {"y": np.array([0.0, 1.0, np.nan, 0.0])}, r"`y` must be finite, got .*nan.* at index \(2,\)", id="y-nan"
    ),
    pytest.param({"x": np.full((4, 2), np.inf)}, r"`x` must be finite, got .*inf.* at index \(0, 0\)", id="x-inf"),
    pytest.param(
        {"params": GOOD._replace(w2=np.array([[np.nan, 0, 0]]))}, r"`params.w2` must be finite", id="params-nan"
    ),
    pytest.param(
        {"params": GOOD._replace(b1=np.ones(4))}, r"`params.b1` has shape \(4,\) but expected \(3,\)", id="b1-shape"
    ),
    pytest.param(
        {"params": GOOD._replace(w2=np.ones(3))}, r"`params.w2` has shape \(3,\) but expected \(1, 3\)", id="w2-shape"
    ),
    pytest.param(
        {"y": np.array([0.0, 1.0, 2.0, 0.0])},
        r"`y` must lie in \[0, 1\] .*got 2\.0.*task='regression'",
        id="y-not-probability",
    ),
    pytest.param({"params": (1, 2)}, r"`params` must be an `mlp.Params", id="params-not-params"),
    pytest.param({"params": {"w1": GOOD.w1}}, r"`params` is missing \['b1', 'b2', 'w2'\]", id="params-dict-missing"),
]


@pytest.mark.parametrize(("change", "message"), BAD_INPUT)
def test_bad_input_names_argument_value_and_fix(change: dict, message: str) -> None:  # type: ignore[type-arg]
    problem = {"params": GOOD, "x": np.ones((4, 2)), "y": np.array([0.0, 1.0, 1.0, 0.0]), "task": "classification"}
    problem.update(change)
    with pytest.raises(ValueError, match=message):
        mlp.closed_form_gradients(problem["params"], problem["x"], problem["y"], task=problem["task"])


def test_params_dict_is_accepted() -> None:
    g = mlp.closed_form_gradients(GOOD._asdict(), np.ones((2, 2)), np.zeros(2), task="regression")
    assert isinstance(g, mlp.Params)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_init_params_rejects_bad_sizes(bad: object) -> None:
    with pytest.raises(ValueError, match=r"`hidden` must be a positive integer, got"):
        mlp.init_params(0, hidden=bad)  # type: ignore[arg-type]
