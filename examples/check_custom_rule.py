"""JAX custom rules checked against autodiff of the function they replace: a custom_vjp and a custom_jvp.

Run: python examples/check_custom_rule.py
"""

import jax
import jax.numpy as jnp
import numpy as np

from gradcheck import check_custom_rule


def make_logsumexp(*, normalise):
    """log sum exp(x), stable, with a hand-written backward pass: softmax(x) times the cotangent."""

    @jax.custom_vjp
    def logsumexp(x):
        m = jnp.max(x)
        return m + jnp.log(jnp.sum(jnp.exp(x - m)))

    def forward(x):
        return logsumexp(x), x

    def backward(x, g):
        e = jnp.exp(x - jnp.max(x))
        return (g * (e / jnp.sum(e) if normalise else e),)  # normalise=False: the softmax's denominator forgotten

    logsumexp.defvjp(forward, backward)
    return logsumexp


@jax.custom_jvp
def safe_norm(x):
    """|x|, whose derivative x / |x| is taken as 0 at x = 0 rather than NaN."""
    return jnp.sqrt(jnp.sum(x**2))


@safe_norm.defjvp
def safe_norm_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    n = safe_norm(x)
    return n, jnp.where(n > 0, jnp.vdot(x, t) / jnp.where(n > 0, n, 1.0), 0.0)


def model(logsumexp):
    """A function that calls both rules, as a loss would."""
    return lambda x: logsumexp(x) + 0.1 * safe_norm(x) ** 2


x = np.random.default_rng(0).normal(size=4)
for normalise in (True, False):
    report = check_custom_rule(model(make_logsumexp(normalise=normalise)), x)
    print(f"== logsumexp rule {'normalised' if normalise else 'not normalised'}: {report.verdict}")
    print(report)
