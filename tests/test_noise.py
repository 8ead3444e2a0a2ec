"""Monte Carlo arithmetic: the measured rounding noise behaves like rounding."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradcheck._references import _noise

U = 2.0**-53


def _samples(f, *args, n=16, u=U):  # type: ignore[no-untyped-def]
    with jax.enable_x64(True):
        run = jax.jit(jax.vmap(_noise.perturbed(f, u), (0, *([None] * len(args)))))
        return np.asarray(run(jnp.arange(n, dtype=jnp.uint32), *map(jnp.asarray, args)))


def test_same_stream_same_noise_other_stream_other_noise() -> None:
    x = np.linspace(0.1, 1.0, 7)
    a = _samples(lambda v: jnp.sum(jnp.exp(v)), x)
    b = _samples(lambda v: jnp.sum(jnp.exp(v)), x)
    np.testing.assert_array_equal(a, b)
    assert len(set(a.tolist())) > 1


def test_exact_operations_add_no_noise_beyond_the_inputs() -> None:
    x = np.array([1.0, 2.0, 4.0])
    moved = _samples(lambda v: -jnp.flip(v).reshape(3, 1), x)[:, :, 0]
    # Negation, flip and reshape are exact: only the inputs' own rounding (u) shows.
    assert np.all(np.abs(moved + np.flip(x)) <= U * np.flip(x) * (1 + 1e-12))
    rounded = _samples(lambda v: jnp.exp(v), x)
    assert np.abs(rounded / np.exp(x) - 1).max() > U  # whereas exp adds its own


def test_a_max_is_exact_so_its_gradient_finds_it_again() -> None:
    # The gradient of max compares the inputs with the max (eq) and divides by
    # the number of ties; a perturbed max matched nothing and gave NaN noise,
    # hence a NaN tolerance (found with examples/custom_loss.py's stable softmax).
    x = np.array([[0.3, -1.2, 0.8], [2.0, 0.1, -0.5]])
    g = jax.grad(lambda z: jnp.exp(z - z.max(axis=1, keepdims=True)).sum())
    s = _samples(g, x)
    assert np.isfinite(s).all()
    with jax.enable_x64(True):
        plain = np.asarray(g(jnp.asarray(x)))
    assert np.abs(s - plain).max() <= 1e3 * U * np.abs(plain).max()


def test_noise_is_relative_and_of_unit_roundoff_size() -> None:
    x = np.array([3.0])
    s = _samples(lambda v: jnp.exp(v)[0], x, n=64)
    rel = np.abs(s / np.exp(3.0) - 1)
    # exp of an input perturbed by u|3|, one rounding of the result, and the
    # float64 arithmetic of the perturbation itself (a few ulps).
    assert rel.max() <= (3 + 1 + 4) * U
    assert rel.max() >= 0.5 * U


def test_sum_noise_scales_with_the_terms_not_the_result() -> None:
    """A cancelling sum errs by up to (n - 1) u sum|x|, far more than u |sum x|."""
    x = np.array([1e8, 1.0, -1e8])
    s = _samples(jnp.sum, x, n=64)
    spread = np.abs(s - 1.0).max()
    assert spread > 1e3 * U * 1.0
    assert spread <= (2 + 2) * U * 2e8


@pytest.mark.parametrize("u", [2.0**-24, 2.0**-53])
def test_noise_follows_the_requested_precision(u: float) -> None:
    s = _samples(lambda v: jnp.log1p(v)[0], np.array([0.5]), n=64, u=u)
    rel = np.abs(s / np.log1p(0.5) - 1).max()
    assert u / 4 < rel < 8 * u
