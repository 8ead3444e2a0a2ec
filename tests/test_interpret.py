"""`_interpret` runs JAX's jaxprs with NumPy: each rule agrees with JAX, at concrete and symbolic shapes."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jax import export

from gradcheck._references import _interpret

# Functions written as users write losses; together they reach every rule of the table
# that JAX emits for them (and their gradients).
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "elementwise": lambda x, y: jnp.sum(jnp.exp(-(x**2)) * jnp.tanh(y) + jnp.log1p(x**2) - jax.nn.sigmoid(x * y)),
    "more_elementwise": lambda x, y: jnp.sum(
        jnp.sqrt(1 + x**2) + jnp.sin(x) * jnp.cos(y) + jnp.arctan2(x, 1 + y**2) + jnp.expm1(-jnp.abs(y))
    ),
    "matmul": lambda x, y: jnp.sum((x @ y.T) ** 2),
    "einsum_batch": lambda x, y: jnp.sum(jnp.einsum("ij,ij->i", x, y) ** 3),
    "reductions": lambda x, y: jnp.mean(x, axis=0).sum() + jnp.max(y) - jnp.min(x),
    "product": lambda x, y: jnp.prod(jnp.cos(y) + x, axis=1).sum(),
    "softmax_ce": lambda x, y: -jnp.sum(jax.nn.log_softmax(x, axis=-1) * jax.nn.softmax(y, axis=-1)),
    "logsumexp": lambda x, y: jax.nn.logsumexp(x * y),
    "where_relu": lambda x, y: jnp.sum(jnp.where(x > 0, x, 0.1 * x) * y) + jnp.sum(jax.nn.relu(y - x)),
    "indexing": lambda x, y: jnp.sum(x[:, 0] * y[:, -1]) + jnp.sum(x[1:] ** 2) + x[0, 0] * y[-1, 0],
    "take_along": lambda x, y: jnp.sum(jnp.take_along_axis(x, jnp.argmax(y, axis=1)[:, None], axis=1)),
    "concat_pad": lambda x, y: jnp.sum(jnp.concatenate([x, y], axis=1) ** 2) + jnp.sum(jnp.pad(x, ((1, 2), (0, 1)))),
    "reshape_transpose": lambda x, y: jnp.sum(x.T.reshape(-1) * y.T.reshape(-1)) + jnp.sum(jnp.flip(x, 0) * y),
    "cumsum": lambda x, y: jnp.sum(jnp.cumsum(x, axis=0) * y),
    "softplus_clip": lambda x, y: jnp.sum(jax.nn.softplus(x) - jnp.clip(y, -0.5, 0.5) * x),
    "norm": lambda x, y: jnp.linalg.norm(x - y) + jnp.sum(x / (1 + jnp.abs(y))),
}


def jaxpr_of(fn: Callable[..., Any], *shapes: tuple[Any, ...]) -> Any:
    with jax.enable_x64(True):
        return jax.make_jaxpr(jax.value_and_grad(fn, argnums=(0, 1)))(
            *(jax.ShapeDtypeStruct(s, np.float64) for s in shapes)
        )


@functools.cache
def _jitted(fn: Callable[..., Any]) -> Callable[..., Any]:
    """One jitted value-and-gradient per function, so that each shape compiles once, not once per example."""
    return jax.jit(jax.value_and_grad(fn, argnums=(0, 1)))


def reference(fn: Callable[..., Any], x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    with jax.enable_x64(True):
        value, (gx, gy) = _jitted(fn)(x, y)
    return [np.asarray(value), np.asarray(gx), np.asarray(gy)]


@pytest.mark.parametrize("name", list(FUNCTIONS))
# Four shapes (each costs JAX a compile per function; the symbolic test below covers sizes between), many points.
@given(n=st.sampled_from([2, 5]), k=st.sampled_from([2, 4]), seed=st.integers(0, 2**16))
def test_numpy_evaluation_agrees_with_jax_at_concrete_shapes(name: str, n: int, k: int, seed: int) -> None:
    fn = FUNCTIONS[name]
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(n, k)), rng.normal(size=(n, k))
    got = _interpret.evaluate(jaxpr_of(fn, x.shape, y.shape), [x, y])
    for a, b in zip(got, reference(fn, x, y)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# The gradient of a product needs its sizes as constants: `_trace.program` traces such
# losses at their concrete shapes instead (tests/test_references.py).
CONCRETE_ONLY = {"product"}


@pytest.mark.parametrize("name", [n for n in FUNCTIONS if n not in CONCRETE_ONLY])
def test_one_symbolic_trace_serves_every_size(name: str) -> None:
    fn = FUNCTIONS[name]
    n, k = export.symbolic_shape("n, k", constraints=["n >= 2", "k >= 2"])
    closed = jaxpr_of(fn, (n, k), (n, k))
    for size in ((2, 2), (3, 5), (6, 3)):
        rng = np.random.default_rng(sum(size))
        x, y = rng.normal(size=size), rng.normal(size=size)
        got = _interpret.evaluate(closed, [x, y], {"n": size[0], "k": size[1]})
        for a, b in zip(got, reference(fn, x, y)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_a_primitive_without_a_rule_is_unsupported_never_guessed() -> None:
    closed = jaxpr_of(lambda x, y: jnp.sum(jnp.sort(x) * y), (3, 2), (3, 2))
    with pytest.raises(_interpret.Unsupported, match="sort"):
        _interpret.evaluate(closed, [np.ones((3, 2)), np.ones((3, 2))])


def test_noise_perturbs_each_rounded_result_by_about_the_unit_roundoff() -> None:
    fn = FUNCTIONS["matmul"]
    x, y = np.random.default_rng(0).normal(size=(2, 4, 3))
    closed = jaxpr_of(fn, x.shape, y.shape)
    plain = _interpret.evaluate(closed, [x, y])
    u = 2.0**-40
    noisy = _interpret.evaluate(closed, [x, y], noise=_interpret.Noise(np.random.default_rng(1), u))
    for a, b in zip(plain, noisy):
        rel = np.abs(a - b) / np.maximum(np.abs(a), 1e-300)
        assert 0 < rel.max() < 1e3 * u  # moved, by a few dozen roundoffs at most
    again = _interpret.evaluate(closed, [x, y], noise=_interpret.Noise(np.random.default_rng(1), u))
    for a, b in zip(noisy, again):
        np.testing.assert_array_equal(a, b)  # seeded: the same noise every time


def test_non_finite_values_flow_through_as_in_jax() -> None:
    fn = FUNCTIONS["elementwise"]
    x = np.array([[np.inf, 1.0], [0.0, np.nan]])
    got = _interpret.evaluate(jaxpr_of(fn, x.shape, x.shape), [x, x])
    want = reference(fn, x, x)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))


@given(
    sizes=st.lists(st.integers(1, 4), min_size=5, max_size=5),
    order=st.permutations(range(4)),
    swap=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_dot_general_with_batch_dimensions_agrees_with_jax(
    sizes: list[int], order: list[int], swap: bool, seed: int
) -> None:
    """Batch dimensions anywhere, two contracting dimensions: the stacked-matmul rule is XLA's product."""
    b, m, k1, k2, n = sizes
    rng = np.random.default_rng(seed)
    lhs_dims = dict(zip("bmpq", (b, m, k1, k2)))
    axes = [list("bmpq")[i] for i in order]  # the lhs's axes in a random order
    lhs = rng.normal(size=[lhs_dims[a] for a in axes])
    rhs_axes = ["q", "n", "b", "p"] if swap else ["b", "p", "q", "n"]
    rhs = rng.normal(size=[{**lhs_dims, "n": n}[a] for a in rhs_axes])
    numbers = (
        ((axes.index("p"), axes.index("q")), (rhs_axes.index("p"), rhs_axes.index("q"))),
        ((axes.index("b"),), (rhs_axes.index("b"),)),
    )
    with jax.enable_x64(True):
        expected = np.asarray(jax.lax.dot_general(lhs, rhs, numbers))
    got = _interpret.RULES["dot_general"](lhs, rhs, dimension_numbers=numbers, preferred_element_type=None)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-13)
