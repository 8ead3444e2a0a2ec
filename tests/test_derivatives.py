"""Beyond scalar losses: VJPs, JVPs, Jacobians, Hessians and custom rules, right and wrong, over shapes and values."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradcheck import (
    GradientMismatch,
    assert_jacobian,
    check_custom_rule,
    check_hessian,
    check_jacobian,
    check_jvp,
    check_vjp,
)

sizes = st.integers(2, 6)
seeds = st.integers(0, 2**16)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# --- VJPs -----------------------------------------------------------------------


def softmax_vjp(primals, c):  # type: ignore[no-untyped-def]
    s = softmax(primals[0])
    return (s * (c - (c * s).sum(axis=-1, keepdims=True)),)


def softmax_vjp_wrong(primals, c):  # type: ignore[no-untyped-def]
    s = softmax(primals[0])
    return (s * c,)  # forgot the - s <c, s> term: the diagonal alone


def log_softmax_vjp(primals, c):  # type: ignore[no-untyped-def]
    return (c - softmax(primals[0]) * c.sum(axis=-1, keepdims=True),)


def layer_norm(x):  # type: ignore[no-untyped-def]
    mu = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean((x - mu) ** 2, axis=-1, keepdims=True)
    return (x - mu) / jnp.sqrt(var + 1e-5)


def layer_norm_vjp(primals, c, *, wrong: bool = False):  # type: ignore[no-untyped-def]
    x = primals[0]
    n = x.shape[-1]
    mu = x.mean(axis=-1, keepdims=True)
    sigma = np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + 1e-5)
    xhat = (x - mu) / sigma
    if wrong:  # the textbook slip: the variance's dependence on x forgotten
        return ((c - c.mean(axis=-1, keepdims=True)) / sigma,)
    return ((c - c.mean(axis=-1, keepdims=True) - xhat * (c * xhat).sum(axis=-1, keepdims=True) / n) / sigma,)


@given(n=sizes, rows=st.integers(1, 3), seed=seeds)
def test_softmax_and_log_softmax_vjps(n: int, rows: int, seed: int) -> None:
    z = np.random.default_rng(seed).normal(0.0, 2.0, (rows, n))
    assert check_vjp(lambda z: jax.nn.softmax(z, axis=-1), softmax_vjp, z).ok
    assert check_vjp(lambda z: jax.nn.log_softmax(z, axis=-1), log_softmax_vjp, z).ok
    wrong = check_vjp(lambda z: jax.nn.softmax(z, axis=-1), softmax_vjp_wrong, z)
    assert wrong.verdict == "mismatch", str(wrong)


@given(n=st.integers(3, 6), rows=st.integers(1, 3), seed=seeds)
def test_layer_norm_vjp(n: int, rows: int, seed: int) -> None:
    x = np.random.default_rng(seed).normal(0.0, 1.0, (rows, n))
    assert check_vjp(layer_norm, layer_norm_vjp, x).ok
    wrong = check_vjp(layer_norm, lambda p, c: layer_norm_vjp(p, c, wrong=True), x)
    assert wrong.verdict == "mismatch", str(wrong)
    assert "checked along 3 random cotangents" in str(wrong)


# --- JVPs and Jacobians ------------------------------------------------------------


@given(n=sizes, seed=seeds)
def test_elementwise_jvp(n: int, seed: int) -> None:
    x = np.random.default_rng(seed).normal(0.0, 1.5, n)
    assert check_jvp(jnp.tanh, lambda p, t: (1 - np.tanh(p[0]) ** 2) * t[0], x).ok
    wrong = check_jvp(jnp.tanh, lambda p, t: (1 - np.tanh(p[0])) * t[0], x)  # the square forgotten
    assert wrong.verdict == "mismatch", str(wrong)


@given(m=sizes, n=sizes, seed=seeds)
def test_jacobian_of_a_matrix_times_tanh(m: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, x = rng.normal(size=(m, n)), rng.normal(size=n)

    def f(x):  # type: ignore[no-untyped-def]
        return a @ jnp.tanh(x)

    right = check_jacobian(f, lambda x: a * (1 - np.tanh(x) ** 2), x)
    assert right.ok, str(right)
    assert right.params[0].shape == (m, n)  # jax.jacrev's layout
    wrong = check_jacobian(f, lambda x: a, x)  # tanh's slope forgotten
    assert wrong.verdict == "mismatch"


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


def logistic_loss(w, x, y):  # type: ignore[no-untyped-def]
    z = x @ w
    return jnp.mean(jax.nn.softplus(z) - y * z)


def logistic_hessian(w, x, y, *, mean: bool = True):  # type: ignore[no-untyped-def]
    s = 1 / (1 + np.exp(-x @ w))
    h = x.T @ (x * (s * (1 - s))[:, None])
    return h / len(y) if mean else h


@given(n=st.integers(2, 12), d=st.integers(1, 4), seed=seeds)
def test_logistic_regression_hessian(n: int, d: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, w, y = rng.normal(size=(n, d)), rng.normal(size=d), (rng.random(n) > 0.5).astype(float)
    assert check_hessian(logistic_loss, logistic_hessian, w, x, y).ok
    wrong = check_hessian(logistic_loss, lambda w, x, y: logistic_hessian(w, x, y, mean=False), w, x, y)
    assert wrong.verdict == "mismatch"
    assert "factor" in (wrong.params[0].diagnosis or "")


def test_an_asymmetric_hessian_is_said_to_be() -> None:
    x, w, y = np.array([[1.0, 0.5], [-0.3, 2.0], [0.7, -1.0]]), np.array([0.1, -0.2]), np.array([1.0, 0.0, 1.0])

    def skewed(w, x, y):  # type: ignore[no-untyped-def]
        h = logistic_hessian(w, x, y)
        h[0, 1] += 0.1
        return h

    report = check_hessian(logistic_loss, skewed, w, x, y)
    assert report.verdict == "mismatch"
    assert any("not symmetric: |H[0, 1] - H[1, 0]|" in n for n in report.notes)


def test_seed_network_gauss_newton_product() -> None:
    """The Gauss-Newton product J^T J v of the seed network's regression output, against jacobian-of-gradient."""
    from gradcheck import mlp

    p = mlp.init_params(0, inputs=2, hidden=3)
    x = np.random.default_rng(1).normal(size=(5, 2))
    v = mlp.Params(*(np.random.default_rng(2).normal(size=np.shape(a)) for a in p))

    def outputs(p):  # type: ignore[no-untyped-def]
        return mlp.forward(p, x, task="regression").z2

    def jvp_closed(primals, tangents):  # type: ignore[no-untyped-def]
        (params,), (t,) = primals, tangents
        act = mlp.forward(params, x, task="regression")
        d1 = (t.w1 @ x.T).T + t.b1  # (N, H)
        return (act.a1 @ t.w2.T)[:, 0] + t.b2[0] + (d1 * act.a1 * (1 - act.a1)) @ params.w2[0]

    assert check_jvp(outputs, jvp_closed, p).ok
    assert check_jvp(outputs, lambda pr, t: 2 * jvp_closed(pr, t), p).verdict == "mismatch"
    assert v is not None


# --- custom rules ------------------------------------------------------------------------


def make_logsumexp(normalise: bool):  # type: ignore[no-untyped-def]
    @jax.custom_vjp
    def logsumexp(x):  # type: ignore[no-untyped-def]
        m = jnp.max(x)
        return m + jnp.log(jnp.sum(jnp.exp(x - m)))

    def fwd(x):  # type: ignore[no-untyped-def]
        return logsumexp(x), x

    def bwd(x, g):  # type: ignore[no-untyped-def]
        e = jnp.exp(x - jnp.max(x))
        return (g * (e / jnp.sum(e) if normalise else e),)

    logsumexp.defvjp(fwd, bwd)
    return logsumexp


@jax.custom_jvp
def safe_norm(x):  # type: ignore[no-untyped-def]
    return jnp.sqrt(jnp.sum(x**2))


@safe_norm.defjvp
def _safe_norm_jvp(primals, tangents):  # type: ignore[no-untyped-def]
    (x,), (t,) = primals, tangents
    n = safe_norm(x)
    return n, jnp.where(n > 0, jnp.vdot(x, t) / jnp.where(n > 0, n, 1.0), 0.0)


@given(n=sizes, seed=seeds)
def test_custom_rules_against_their_own_primal(n: int, seed: int) -> None:
    x = np.random.default_rng(seed).normal(0.0, 3.0, n)
    right = check_custom_rule(lambda x: make_logsumexp(True)(x) * 2.0 + safe_norm(x), x)
    assert right.ok, str(right)
    assert {p.name for p in right.params} == {"logsumexp: primals[0]", "safe_norm: primals[0]"}
    wrong = check_custom_rule(lambda x: make_logsumexp(False)(x), x)
    assert wrong.verdict == "mismatch", str(wrong)
    assert wrong.params[0].name == "logsumexp: primals[0]"


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
    ],
    ids=["f-not-callable", "jvp-none", "no-primals", "nan-primal"],
)
def test_misuse_is_a_clear_error(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises((TypeError, ValueError), match=message):
        call()
