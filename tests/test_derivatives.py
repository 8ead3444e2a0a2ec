"""Beyond scalar losses: the checks' layouts, names, notes and misuse (their right and wrong rules: test_mutants.py)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradcheck import (
    GradientMismatch,
    assert_hessian,
    assert_jacobian,
    assert_jvp,
    assert_vjp,
    check_custom_rule,
    check_hessian,
    check_jacobian,
    check_jvp,
    check_vjp,
)
from tests.derivations import (
    LOGSUMEXP,
    LOGSUMEXP_UNNORMALISED,
    SAFE_NORM,
    a_tanh,
    a_tanh_jacobian,
    layer_norm,
    layer_norm_vjp,
    logistic_hessian,
    logistic_loss,
    softmax_vjp,
)

# Right and wrong versions of each check on generic points (softmax, layer norm, an
# elementwise JVP, A tanh(x), the logistic Hessian, the Gauss-Newton product, the
# custom rules) are the mutation suite's: tests/test_mutants.py, RULE_MUTANTS.


@given(m=st.integers(1, 4), n=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_a_jacobian_is_judged_in_jacrev_layout(m: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, x = rng.normal(size=(m, n)), rng.normal(size=n)
    report = check_jacobian(a_tanh(a), a_tanh_jacobian(a), x)
    assert report.ok, str(report)
    assert [(p.name, p.shape) for p in report.params] == [("jacobian", (m, n))]


def test_a_vjp_is_checked_along_several_cotangents() -> None:
    x = np.array([[0.3, -1.2, 2.0, 0.7]])
    assert "checked along 3 random cotangents" in str(check_vjp(layer_norm, layer_norm_vjp, x))
    assert "checked along 5 random cotangents" in str(check_vjp(layer_norm, layer_norm_vjp, x, directions=5))


def test_a_wrong_jacobian_entry_is_pinned_to_its_output_and_input() -> None:
    a, x = np.arange(6.0).reshape(2, 3) + 1.0, np.array([0.1, -0.3, 0.8])

    def jac(x):  # type: ignore[no-untyped-def]
        j = a * (1 - np.tanh(x) ** 2)
        j[1, 2] *= 1 + 1e-8
        return j

    with pytest.raises(GradientMismatch) as raised:
        assert_jacobian(lambda x: a @ jnp.tanh(x), jac, x)
    assert raised.value.report.params[0].index == (1, 2)


def test_jacobians_of_several_primals_and_outputs() -> None:
    x, y = np.array([0.5, -1.0]), np.array([2.0, 0.3, -0.7])

    def f(x, y):  # type: ignore[no-untyped-def]
        return {"outer": jnp.outer(x, y), "dot": jnp.sum(x) * jnp.sum(y)}

    expected = jax.jacrev(f, argnums=(0, 1))
    with jax.enable_x64(True):
        exact = jax.tree_util.tree_map(np.asarray, expected(x, y))
    assert check_jacobian(f, lambda x, y: exact, x, y).ok
    broken = jax.tree_util.tree_map(np.copy, exact)
    broken["dot"][1][0] *= 2.0
    report = check_jacobian(f, lambda x, y: broken, x, y)
    assert report.verdict == "mismatch"
    assert [p.name for p in report.params if p.status == "mismatch"] == ["dot.1"]


# --- Hessians -------------------------------------------------------------------------


def test_an_asymmetric_hessian_is_said_to_be() -> None:
    x, w, y = np.array([[1.0, 0.5], [-0.3, 2.0], [0.7, -1.0]]), np.array([0.1, -0.2]), np.array([1.0, 0.0, 1.0])

    def skewed(w, x, y):  # type: ignore[no-untyped-def]
        h = logistic_hessian(w, x, y)
        h[0, 1] += 0.1
        return h

    report = check_hessian(logistic_loss, skewed, w, x, y)
    assert report.verdict == "mismatch"
    assert any("not symmetric: |H[0, 1] - H[1, 0]|" in n for n in report.notes)


def test_each_custom_rule_is_named_by_its_function() -> None:
    x = np.array([0.5, -2.0, 1.5])
    right = check_custom_rule(lambda x: LOGSUMEXP(x) * 2.0 + SAFE_NORM(x), x)
    assert right.ok, str(right)
    assert [p.name for p in right.params] == ["logsumexp: primals[0]", "safe_norm: primals[0]"]
    wrong = check_custom_rule(lambda x: LOGSUMEXP_UNNORMALISED(x) * 2.0 + SAFE_NORM(x), x)
    assert [p.name for p in wrong.params if not p.ok] == ["logsumexp: primals[0]"]


def test_a_function_without_custom_rules_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"`f` calls no jax\.custom_vjp or jax\.custom_jvp function"):
        check_custom_rule(jnp.sin, np.ones(3))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: check_vjp("f", softmax_vjp, np.ones(2)), r"`f` must be a function, got str 'f'"),
        (lambda: check_jvp(jnp.tanh, None, np.ones(2)), r"`jvp_fn` must be a function, got NoneType None"),
        (lambda: check_jacobian(jnp.tanh, jnp.tanh), r"no `primals` given"),
        (lambda: check_vjp(jnp.tanh, softmax_vjp, np.array([np.nan])), r"primals\[0\]"),
        (lambda: assert_vjp(jnp.tanh, lambda p, c: p[0].bad, np.ones(2)), r"`vjp_fn` raised AttributeError"),
        (lambda: assert_jvp(jnp.tanh, lambda p: p, np.ones(2)), r"`jvp_fn` is called as jvp_fn\(primals, tangents\)"),
        (lambda: assert_jacobian(jnp.tanh, lambda x: None, np.ones(2)), r"`jac_fn` returned NoneType \(a missing"),
        (
            lambda: assert_hessian(lambda w: jnp.sum(w**4), lambda w, x: w, np.ones(2)),
            r"`hess_fn` is called as hess_fn\(params, \*args\)",
        ),
    ],
    ids=[
        "f-not-callable",
        "jvp-none",
        "no-primals",
        "nan-primal",
        "vjp-raises",
        "jvp-wrong-signature",
        "jac-returns-none",
        "hessian-wrong-signature",
    ],
)
def test_misuse_is_a_clear_error(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises((TypeError, ValueError), match=message):
        call()
