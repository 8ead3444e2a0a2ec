"""Richardson-extrapolated central differences and their error bounds."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradcheck._references import _finite_diff


def _fd(f, theta, sigma_f=0.0, *params):  # type: ignore[no-untyped-def]
    """The Richardson differences of ``f(theta, *params)`` along every coordinate, jitted once per `f` (the
    Hypothesis tests pass what they draw as `params`, so that their examples share one compile)."""
    with jax.enable_x64(True):
        args = (jnp.asarray(p, jnp.float64) for p in params)
        out = _directional(f)(jnp.asarray(theta, jnp.float64), jnp.float64(sigma_f), *args)
        assert not np.asarray(out.kink).any()  # every function here is smooth
        return np.asarray(out.value), np.asarray(out.error)


@functools.cache
def _directional(f):  # type: ignore[no-untyped-def]
    def run(theta, sigma_f, *params):  # type: ignore[no-untyped-def]
        def g(t):  # type: ignore[no-untyped-def]
            return f(t, *params)

        steps = _finite_diff.FD_STEP * jnp.maximum(1.0, jnp.abs(theta))
        return _finite_diff.directional(g, theta, jnp.eye(theta.shape[0]), steps, sigma_f, g(theta))

    return jax.jit(run)


def test_tableau_weights_reproduce_a_linear_function() -> None:
    # Each estimate must be exact for f(t) = t: sum_k w_k * (2 h0 / ratio^k) / h0 == 1.
    for row in _finite_diff.WEIGHTS:
        assert sum(w * 2 / _finite_diff.RATIO**k for k, w in enumerate(row)) == pytest.approx(1.0, abs=1e-15)


def _polynomial(t, c):  # type: ignore[no-untyped-def]
    """c0 t0^3 + c1 t0^4 + c2 t0^5 + c3 t0^6, plus the other coordinates squared."""
    return sum(c[k] * t[0] ** (k + 3) for k in range(4)) + jnp.sum(t[1:] ** 2)


@given(st.lists(st.floats(-2, 2), min_size=1, max_size=4))
def test_polynomials_up_to_degree_six_are_exact(coefficients: list[float]) -> None:
    """Three levels cancel the h^2 and h^4 terms, so the error starts at h^6 f^(7)."""
    theta = np.array([0.7, -0.3])
    value, error = _fd(_polynomial, theta, 0.0, coefficients + [0.0] * (4 - len(coefficients)))
    exact = sum(c * (k + 3) * 0.7 ** (k + 2) for k, c in enumerate(coefficients))
    assert value[0] == pytest.approx(exact, abs=1e-11)
    assert value[1] == pytest.approx(-0.6, abs=1e-12)
    assert np.all(error < 1e-9)  # exact to rounding, and the bound says so: it is no blanket


def _exp_sin(t, k):  # type: ignore[no-untyped-def]
    return jnp.exp(k * t[0]) + jnp.sin(t[0])


@given(st.floats(-3, 3), st.floats(0.5, 4))
def test_error_bound_covers_the_actual_error(t: float, k: float) -> None:
    value, error = _fd(_exp_sin, np.array([t]), 1e-16 * np.exp(k * t), k)
    exact = k * np.exp(k * t) + np.cos(t)
    assert abs(value[0] - exact) <= error[0] + 1e-14 * abs(exact)


def test_rounding_part_grows_with_measured_noise() -> None:
    _, quiet = _fd(lambda th: th[0] ** 2, np.array([1.0]), sigma_f=0.0)
    _, noisy = _fd(lambda th: th[0] ** 2, np.array([1.0]), sigma_f=1e-10)
    expected = 2 * np.abs(_finite_diff.WEIGHTS[0]).sum() * 1e-10 / _finite_diff.FD_STEP
    assert noisy[0] - quiet[0] == pytest.approx(expected, rel=1e-6)


def test_a_loss_that_is_not_finite_at_the_step_is_refined_or_put_in_doubt() -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from gradcheck import check_gradients

    def grad(p):  # type: ignore[no-untyped-def]
        return {"t": 0.5 / np.sqrt(p["t"])}

    t = np.array([1e-3, 1.0, 2.0])  # sqrt is NaN at 1e-3 - 2^-7: the first step leaves its domain
    assert check_gradients(lambda p: jnp.sum(jnp.sqrt(p["t"])), grad, {"t": t}).verdict == "pass"  # refined

    def hidden(p):  # type: ignore[no-untyped-def]  # a term autodiff cannot see, on the same entry
        return jnp.sum(jnp.sqrt(p["t"])) + 5 * jax.lax.stop_gradient(p["t"][0])

    assert check_gradients(hidden, grad, {"t": t}).verdict == "inconclusive"  # never a silent pass


@pytest.mark.parametrize("chunk", [1, 3, 10**9])
def test_the_points_give_the_same_estimates_in_chunks_or_all_at_once(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunking the finite differences' points (`VMAP_CHUNK`, for speed) changes no estimate, bound or kink."""
    import jax
    import jax.numpy as jnp

    from gradcheck._references import _finite_diff

    def f(t: Any) -> Any:
        return jnp.sum(jnp.sin(3.0 * t) * jnp.abs(t - 0.2))  # a kink at 0.2

    with jax.enable_x64(True):
        theta = jnp.array([0.2, -0.7, 1.3, 0.05])
        steps = jnp.full(4, 1e-2)
        monkeypatch.setattr(_finite_diff, "VMAP_CHUNK", 10**9)  # every point in one vectorised call
        want = _finite_diff.directional(f, theta, jnp.eye(4), steps, jnp.array(1e-16), f(theta))
        monkeypatch.setattr(_finite_diff, "VMAP_CHUNK", chunk)
        got = _finite_diff.directional(f, theta, jnp.eye(4), steps, jnp.array(1e-16), f(theta))
    np.testing.assert_allclose(np.asarray(got.value), np.asarray(want.value), rtol=1e-13)
    np.testing.assert_allclose(
        np.asarray(got.error), np.asarray(want.error), rtol=1e-3
    )  # a bound: its last digits vary
    np.testing.assert_array_equal(np.asarray(got.kink), np.asarray(want.kink))
    assert bool(np.asarray(got.kink)[0])  # the kink is found either way
