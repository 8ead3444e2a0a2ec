"""The pytest plugin: fixtures that turn a gradient, VJP, JVP, Jacobian, Hessian or custom rule into a test."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gradcheck import GradientMismatch, ReferencesDisagree, mlp
from gradcheck.pytest_plugin import CUSTOM_RULE, HESSIAN, JACOBIAN, JVP, VJP, check_property
from tests.derivations import (
    LOGSUMEXP,
    MUTANTS,
    SAFE_NORM,
    SAFE_NORM_UNDIVIDED,
    a_tanh,
    a_tanh_jacobian,
    jax_softmax,
    logistic_hessian,
    logistic_hessian_sign,
    logistic_loss,
    sin_jvp,
    sin_jvp_sign,
    softmax_vjp,
    softmax_vjp_unnormalised,
)

pytest_plugins = ["pytester"]


def test_fixture_passes_a_correct_derivation(gradcheck_property) -> None:  # type: ignore[no-untyped-def]
    gradcheck_property(mlp.closed_form_gradients, task="classification", examples=20)


def test_wrong_derivation_fails_with_counterexample_and_diagnosis() -> None:
    with pytest.raises(GradientMismatch) as info:
        check_property(MUTANTS["sum_not_mean"].grad, task="regression", examples=50)
    text = str(info.value)
    assert "minimal counterexample" in text
    assert "batch=2" in text  # shrunk: a sum equals a mean for one sample
    assert (
        "  w2: a sum where a mean belongs: off by a factor N, the batch size; divide the sum over the samples by N"
        in text
    )
    assert "Taylor remainder shrinks like h^1" in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "ranking"}, r"`task` must be one of"),
        ({"examples": 0}, r"`examples` must be a positive integer, got 0"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=message):
        check_property(mlp.closed_form_gradients, **kwargs)


def test_plugin_is_registered_and_renders_failures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_student="""
        import numpy as np
        from gradcheck import mlp

        def doubled(params, x, y, *, task):
            return mlp.Params(*(2 * g for g in mlp.closed_form_gradients(params, x, y, task=task)))

        def test_right(gradcheck_property):
            gradcheck_property(mlp.closed_form_gradients, task="regression", examples=5)

        def test_wrong(gradcheck_property):
            gradcheck_property(doubled, task="regression", examples=20)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*GradientMismatch*", "*likely mistake: off by a constant factor 2*"])


# --- the derivative checks' fixtures ----------------------------------------------------------


def test_derivative_fixtures_check_at_a_point(  # type: ignore[no-untyped-def]
    gradcheck_vjp, gradcheck_jvp, gradcheck_jacobian, gradcheck_hessian, gradcheck_custom_rule
) -> None:
    z = np.array([[0.5, -1.0, 2.0]])
    assert gradcheck_vjp(jax_softmax, softmax_vjp, z).ok
    assert gradcheck_jvp(jnp.sin, sin_jvp, z[0]).ok
    a = np.array([[1.0, 2.0], [0.5, -1.0], [3.0, 0.25]])
    assert gradcheck_jacobian(a_tanh(a), a_tanh_jacobian(a), np.array([0.2, -0.7])).ok
    x, y = np.array([[1.0, 0.5], [-0.3, 2.0], [0.7, -1.0]]), np.array([1.0, 0.0, 1.0])
    assert gradcheck_hessian(logistic_loss, logistic_hessian, np.array([0.1, -0.2]), x, y).ok
    assert gradcheck_custom_rule(LOGSUMEXP, z[0]).ok
    with pytest.raises(GradientMismatch, match=r"likely mistake: sign flipped"):
        gradcheck_jvp(jnp.sin, sin_jvp_sign, z[0])
    with pytest.raises(TypeError, match=r"`vjp_fn` raised TypeError"):
        gradcheck_vjp(jax_softmax, lambda primals: primals, z)


def test_vjp_property_passes_a_right_rule_over_drawn_shapes() -> None:
    rows_and_width = st.tuples(st.integers(1, 3), st.integers(2, 4))
    VJP.property(jax_softmax, softmax_vjp, shapes=[rows_and_width], examples=8)


def test_vjp_property_fails_a_wrong_rule_at_a_minimal_counterexample() -> None:
    with pytest.raises(GradientMismatch) as info:
        VJP.property(jax_softmax, softmax_vjp_unnormalised, shapes=[st.tuples(st.integers(1, 3), st.integers(2, 4))])
    text = str(info.value)
    assert "minimal counterexample:\n  primals[0] = [[0., 0.]]\n" in text  # shrunk: one row of two zeros
    assert "gradcheck: MISMATCH in 1 of 1 parameters" in text
    assert "Taylor remainder shrinks like h^1" in text


def test_hessian_property_names_the_point_and_the_mistake() -> None:
    """Shapes that depend on each other: one strategy draws them all."""
    shapes = st.tuples(st.integers(3, 6), st.integers(1, 3)).map(lambda nd: [(nd[1],), (nd[0], nd[1]), (nd[0],)])
    with pytest.raises(GradientMismatch) as info:
        HESSIAN.property(logistic_loss, logistic_hessian_sign, shapes=shapes, examples=10)
    text = str(info.value)
    assert "\n  params = " in text
    assert "\n  args[1] = " in text
    assert "likely mistake: sign flipped" in text
    HESSIAN.property(logistic_loss, logistic_hessian, shapes=shapes, examples=5)


def test_primals_strategy_draws_pytrees_for_a_custom_rule() -> None:
    vectors = hnp.arrays(np.float64, st.integers(2, 4), elements=st.floats(0.5, 2.0))
    CUSTOM_RULE.property(lambda d: SAFE_NORM(d["x"]), primals=vectors.map(lambda x: ({"x": x},)), examples=5)
    with pytest.raises(GradientMismatch, match=r"minimal counterexample:\n  primals\[0\] = \{x: \[") as info:
        CUSTOM_RULE.property(lambda d: SAFE_NORM_UNDIVIDED(d["x"]), primals=vectors.map(lambda x: ({"x": x},)))
    assert "safe_norm: primals[0]" in str(info.value)


def test_references_that_disagree_everywhere_are_not_a_pass() -> None:
    @jax.custom_jvp
    def cube(t):  # type: ignore[no-untyped-def]
        return t**3

    cube.defjvp(lambda primals, tangents: (cube(primals[0]), 2 * primals[0] ** 2 * tangents[0]))  # wrong: 3 t^2
    with pytest.raises(ReferencesDisagree):
        JVP.property(cube, lambda p, t: 3 * p[0] ** 2 * t[0], shapes=[(2,)], elements=st.floats(0.5, 2.0), examples=3)


def test_a_wrong_call_is_misuse_not_a_counterexample() -> None:
    with pytest.raises(TypeError, match=r"could not check jac_fn at the first point drawn; no search was run") as info:
        JACOBIAN.property(jnp.tanh, lambda x, y: x, shapes=[(3,)])
    assert "`jac_fn` is called as jac_fn(*primals)" in str(info.value)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: VJP.property(jax_softmax, shapes=[(3,)]), TypeError, r"takes 2 functions \(f, vjp_fn\).*got 1"),
        (lambda: CUSTOM_RULE.property(LOGSUMEXP, LOGSUMEXP, shapes=[(3,)]), TypeError, r"takes 1 function \(f\)"),
        (lambda: JVP.property(jnp.sin, "cos", shapes=[(3,)]), TypeError, r"`jvp_fn` must be a function, got str"),
        (lambda: VJP.property(jax_softmax, softmax_vjp), ValueError, r"give either `shapes`.*not neither"),
        (
            lambda: VJP.property(jax_softmax, softmax_vjp, shapes=[(3,)], primals=st.just((np.ones(3),))),
            ValueError,
            r"not both",
        ),
        (lambda: VJP.property(jax_softmax, softmax_vjp, shapes=[(3, 0)]), ValueError, r"`shapes\[0\]` must be a tuple"),
        (
            lambda: VJP.property(jax_softmax, softmax_vjp, shapes=(2, 3)),
            ValueError,
            r"`shapes\[0\]` must be a tuple .* got 2; for one argument of shape \(2, 3\) write shapes=\[\(2, 3\)\]",
        ),
        (lambda: VJP.property(jax_softmax, softmax_vjp, shapes=[]), ValueError, r"`shapes` must be a non-empty list"),
        (
            lambda: VJP.property(jax_softmax, softmax_vjp, primals=(np.ones(3),)),
            TypeError,
            r"`primals` must be a Hypothesis strategy.*hypothesis\.strategies\.just",
        ),
        (
            lambda: VJP.property(jax_softmax, softmax_vjp, shapes=[(3,)], elements=(0.0, 1.0)),
            TypeError,
            r"`elements` must be a strategy for floats or None",
        ),
        (
            lambda: VJP.property(jax_softmax, softmax_vjp, shapes=[(3,)], examples=0),
            ValueError,
            r"`examples` must be a positive integer, got 0",
        ),
    ],
    ids=[
        "one-function-for-two",
        "two-functions-for-one",
        "not-a-function",
        "no-shapes-no-primals",
        "shapes-and-primals",
        "zero-length-axis",
        "a-shape-for-the-list",
        "no-shapes",
        "primals-not-a-strategy",
        "elements-not-a-strategy",
        "no-examples",
    ],
)
def test_property_misuse_is_a_clear_error(call, error: type[Exception], message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=message):
        call()


def test_derivative_fixtures_are_registered_and_render_failures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_rules="""
        import jax
        import numpy as np
        from hypothesis import strategies as st

        def f(z):
            return jax.nn.log_softmax(z, axis=-1)

        def right(primals, c):
            (z,) = primals
            s = np.exp(z - z.max(axis=-1, keepdims=True))
            s /= s.sum(axis=-1, keepdims=True)
            return (c - s * c.sum(axis=-1, keepdims=True),)

        def wrong(primals, c):
            return (c,)  # the log-normaliser's derivative forgotten

        shapes = [st.tuples(st.integers(1, 3), st.integers(2, 5))]

        def test_right(gradcheck_vjp):
            gradcheck_vjp.property(f, right, shapes=shapes, examples=5)

        def test_wrong(gradcheck_vjp):
            gradcheck_vjp.property(f, wrong, shapes=shapes, examples=5)

        def test_wrong_at_a_point(gradcheck_vjp):
            gradcheck_vjp(f, wrong, np.array([0.5, 1.0, -2.0]))
        """
    )
    # -rN: no short summary, whose length pytest changes under CI=1 (it untruncates the messages there)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rN")
    result.assert_outcomes(passed=1, failed=2)
    out = result.stdout.str()
    assert (
        "GradientMismatch: first failure at point 1; minimal counterexample:\nE         primals[0] = [[0., 0.]]" in out
    )
    assert "gradcheck_vjp = gradcheck_vjp(f, vjp_fn, *primals)" in out  # the fixture, as pytest shows it
    assert "_derivatives.py" not in out  # the user's lines, not gradcheck's
    assert "pytest_plugin.py" not in out
    assert out.count("MISMATCH in 1 of 1 parameters") == 2


def test_a_failing_assertion_shows_the_users_line_and_the_report_not_gradchecks_source(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_student="""
        from functools import partial
        import numpy as np
        from gradcheck import assert_gradients, mlp

        def doubled(params, x, y):
            return mlp.Params(*(2 * g for g in mlp.closed_form_gradients(params, x, y, task="regression")))

        def test_assert():
            p, x, y = mlp.init_params(0), np.array([[0.5, -1.0], [2.0, 0.0]]), np.array([1.0, 0.0])
            assert_gradients(partial(mlp.loss, task="regression"), doubled, p, x, y)  # the user's line

        def test_property(gradcheck_property):
            gradcheck_property(lambda p, x, y, *, task: doubled(p, x, y), task="regression", examples=5)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rf")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert "# the user's line" in out
    assert "gradcheck/_check.py" not in out
    assert "gradcheck/pytest_plugin.py" not in out
    assert "def assert_gradients(" not in out
    assert "def check_property(" not in out
    assert out.count("FAILED test_student.py::") == 2
    assert "gradcheck.GradientMismatch" in out  # the public name, whole in pytest's summary
    assert "gradcheck._report" not in out


# --- the gradient of any loss: gradcheck_gradient ---------------------------------------------


def _softmax_loss(p: dict, x: np.ndarray, labels: np.ndarray):  # type: ignore[no-untyped-def,type-arg]
    z = x @ p["W"].T + p["b"]
    return jnp.mean(
        jax.nn.logsumexp(z, axis=1) - jnp.take_along_axis(z, labels[:, None], axis=1)[:, 0]
    ) + 0.05 * jnp.sum(p["W"] ** 2)


def _softmax_grad(p: dict, x: np.ndarray, labels: np.ndarray, decay: float = 0.1) -> dict:  # type: ignore[type-arg]
    z = x @ p["W"].T + p["b"]
    s = np.exp(z - z.max(axis=1, keepdims=True))
    s /= s.sum(axis=1, keepdims=True)
    s[np.arange(len(labels)), labels] -= 1.0  # dL/dz = softmax - one_hot, per sample
    d = s / len(labels)  # (N, C)
    return {"W": d.T @ x + decay * p["W"], "b": d.sum(axis=0)}


EXAMPLE = ({"W": np.zeros((3, 4)), "b": np.zeros(3)}, np.ones((6, 4)), np.array([0, 2, 1, 0, 2, 1]))


def test_the_gradient_fixture_checks_any_loss_at_a_point_and_over_drawn_problems() -> None:
    from gradcheck.pytest_plugin import GRADIENT
    from gradcheck.strategies import shaped_like

    rng = np.random.default_rng(0)
    params, x, labels = {"W": rng.normal(size=(3, 4)), "b": rng.normal(size=3)}, rng.normal(size=(6, 4)), EXAMPLE[2]
    assert GRADIENT(_softmax_loss, _softmax_grad, params, x, labels).verdict == "pass"
    GRADIENT.property(_softmax_loss, _softmax_grad, primals=shaped_like(EXAMPLE), examples=15)  # passes
    forgot = partial(_softmax_grad, decay=0.0)  # the weight decay's gradient forgotten
    with pytest.raises(GradientMismatch, match=r"minimal counterexample(.|\n)*params = (.|\n)*W: likely mistake"):
        GRADIENT.property(_softmax_loss, forgot, primals=shaped_like(EXAMPLE), examples=15)


def test_the_network_fixture_on_your_own_model_points_to_the_gradient_fixture() -> None:
    with pytest.raises(TypeError, match="use the fixture gradcheck_gradient"):
        check_property(lambda p, x, y: {"w": p}, task="regression", examples=2)
