"""Derivations of the seed network's gradient, right and wrong, as people write them.

`CORRECT`: correct reformulations that must never be flagged.
`MUTANTS`: wrong derivations that learners and engineers really write; each
names the mistake kind the diagnosis should find (``None``: no confirmed
diagnosis is expected, only the failure).

Every function of those two has the signature of `mlp.closed_form_gradients`.

`RULE_MUTANTS`: the same for derivatives beyond a scalar loss's gradient
(VJPs, JVPs, Jacobians, Hessians, custom rules), each beside its right version.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gradcheck import check_custom_rule, check_hessian, check_jacobian, check_jvp, check_vjp, mlp, problems
from gradcheck import strategies as gs

GradFn = Callable[..., Any]


def _parts(p: mlp.Params, x: np.ndarray, y: np.ndarray, task: mlp.Task) -> tuple[mlp.Activations, np.ndarray]:
    act = mlp.forward(mlp.Params(*map(np.asarray, p)), np.asarray(x), task=task)
    return act, act.a2 - y


# --- correct reformulations ------------------------------------------------------


def per_sample_loop(p: mlp.Params, x: np.ndarray, y: np.ndarray, *, task: mlp.Task) -> mlp.Params:
    """Column-vector formulas, one sample at a time, then averaged."""
    total = [np.zeros_like(a) for a in p]
    for xn, yn in zip(x, y):
        xn = xn[:, None]  # (I, 1)
        z1 = p.w1 @ xn + p.b1[:, None]  # (H, 1)
        a1 = mlp.sigmoid(z1)
        z2 = (p.w2 @ a1 + p.b2[:, None]).item()
        a2 = z2 if task == "regression" else float(mlp.sigmoid(np.float64(z2)))
        d2 = a2 - yn
        d1 = p.w2.T * d2 * a1 * (1 - a1)  # (H, 1)
        for acc, g in zip(total, (d1 @ xn.T, d1[:, 0], d2 * a1.T, np.array([d2]))):
            acc += g
    return mlp.Params(*(g / len(x) for g in total))


def einsum_form(p: mlp.Params, x: np.ndarray, y: np.ndarray, *, task: mlp.Task) -> mlp.Params:
    act, d2 = _parts(p, x, y, task)
    n = len(x)
    d1 = np.einsum("n,oh,nh->nh", d2, p.w2, act.a1 * (1 - act.a1))
    return mlp.Params(
        np.einsum("nh,ni->hi", d1, x) / n,
        np.einsum("nh->h", d1) / n,
        np.einsum("n,nh->h", d2, act.a1)[None] / n,
        np.array([d2.sum() / n]),
    )


def symmetric_sigmoid_slope(p: mlp.Params, x: np.ndarray, y: np.ndarray, *, task: mlp.Task) -> mlp.Params:
    """sigma'(z) = sigma(z) sigma(-z), accurate where a1 (1 - a1) rounds to 0."""
    act, d2 = _parts(p, x, y, task)
    slope = mlp.sigmoid(act.z1) * mlp.sigmoid(-act.z1)
    d1 = d2[:, None] * p.w2 * slope
    n = len(x)
    return mlp.Params(d1.T @ x / n, d1.mean(0), (d2 @ act.a1)[None] / n, np.array([d2.mean()]))


def as_dict(p: mlp.Params, x: np.ndarray, y: np.ndarray, *, task: mlp.Task) -> dict[str, np.ndarray]:
    return mlp.closed_form_gradients(p, x, y, task=task)._asdict()


def in_float32(p: mlp.Params, x: np.ndarray, y: np.ndarray, *, task: mlp.Task) -> mlp.Params:
    """The same formula, computed throughout in float32."""
    p32 = mlp.Params(*(np.asarray(a, np.float32) for a in p))
    x32, y32 = np.asarray(x, np.float32), np.asarray(y, np.float32)
    act = mlp.forward(p32, x32, task=task)
    return mlp.backward(p32, x32, act.a1, act.a2 - y32)


def params_for(name: str, p: mlp.Params) -> mlp.Params:
    """The parameters a correct formulation is checked at: float32 for the float32 one, judged at float32
    precision on purpose. (A float32 result for float64 parameters is an accident, and an error.)"""
    return mlp.Params(*(np.asarray(a, np.float32) for a in p)) if name == "float32" else p


CORRECT: dict[str, GradFn] = {
    "closed_form": mlp.closed_form_gradients,
    "per_sample_loop": per_sample_loop,
    "einsum": einsum_form,
    "symmetric_sigmoid_slope": symmetric_sigmoid_slope,
    "as_dict": as_dict,
    "float32": in_float32,
}


# --- right, but digit-losing: a textbook sigmoid that cancels (derivation or precision) ------------------


def sig_tanh(z: np.ndarray) -> np.ndarray:
    """The overflow-free sigmoid 0.5 (1 + tanh(z/2)): right, but it cancels for z << 0."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def sig_exp(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def textbook(sig: Callable[[np.ndarray], np.ndarray], w1_factor: float = 1.0) -> Callable[..., mlp.Params]:
    """The classification gradient as a textbook writes it, with `sig` for the sigmoid; `w1_factor` != 1 is a
    real mistake on top."""

    def grads(p: mlp.Params, x: np.ndarray, y: np.ndarray) -> mlp.Params:
        n = x.shape[0]
        a1 = sig(x @ p.w1.T + p.b1)  # (N, H)
        a2 = sig(a1 @ p.w2.T + p.b2)[:, 0]  # (N,)
        d2 = (a2 - y)[:, None] / n  # (N, 1): dL/dz2, per sample, over N
        d1 = (d2 @ p.w2) * a1 * (1 - a1)  # (N, H): dL/dz1
        return mlp.Params(w1_factor * (d1.T @ x), d1.sum(0), d2.T @ a1, d2.sum(0))

    return grads


def confident(seed: int) -> tuple[mlp.Params, np.ndarray, np.ndarray]:
    """The issue's construction: labels that agree with the network, output layer times 30 (z2 far below 0)."""
    rng = np.random.default_rng(seed)
    p = mlp.Params(rng.normal(size=(2, 2)), rng.normal(size=2), rng.normal(size=(1, 2)), rng.normal(size=1))
    x = rng.normal(size=(21, 2))
    y = ((sig_exp(x @ p.w1.T + p.b1) @ p.w2.T + p.b2)[:, 0] > 0).astype(float)
    return p._replace(w2=p.w2 * 30, b2=p.b2 * 30), x, y


# --- wrong derivations --------------------------------------------------------------


@dataclass(frozen=True)
class Mutant:
    """A wrong derivation, the parameters it breaks, and the diagnosis expected."""

    grad: GradFn
    broken: tuple[str, ...]
    kind: str | None = None  # a word the diagnosis must contain
    weight_decay: float = 0.0  # the loss has this L2 term; the gradient forgets it
    square: bool = False  # needs inputs == hidden for its shapes to fit


def _with(
    p: mlp.Params, x: np.ndarray, y: np.ndarray, task: mlp.Task, *, d2: Any = None, slope: Any = None
) -> mlp.Params:
    """The standard backward pass with one ingredient replaced."""
    act, delta2 = _parts(p, x, y, task)
    d2 = delta2 if d2 is None else d2
    slope = act.a1 * (1 - act.a1) if slope is None else slope
    d1 = d2[:, None] * p.w2 * slope
    n = len(x)
    return mlp.Params(d1.T @ x / n, d1.mean(0), (d2 @ act.a1)[None] / n, np.array([d2.mean()]))


def _correct(p: mlp.Params, x: np.ndarray, y: np.ndarray, task: mlp.Task) -> mlp.Params:
    return mlp.closed_form_gradients(p, x, y, task=task)


def residual_sign(p, x, y, *, task):
    return _with(p, x, y, task, d2=-_parts(p, x, y, task)[1])


def missing_sigmoid_slope(p, x, y, *, task):
    return _with(p, x, y, task, slope=np.ones_like(_parts(p, x, y, task)[0].a1))


def slope_of_z(p, x, y, *, task):
    z1 = _parts(p, x, y, task)[0].z1
    return _with(p, x, y, task, slope=z1 * (1 - z1))


def tanh_slope(p, x, y, *, task):
    """tanh's derivative 1 - a1^2 where the sigmoid's a1 (1 - a1) belongs."""
    a1 = _parts(p, x, y, task)[0].a1
    return _with(p, x, y, task, slope=1 - a1**2)


def sum_not_mean(p, x, y, *, task):
    return mlp.Params(*(g * len(x) for g in _correct(p, x, y, task)))


def bias_mean_wrong_axis(p, x, y, *, task):
    act, d2 = _parts(p, x, y, task)
    d1 = d2[:, None] * p.w2 * act.a1 * (1 - act.a1)
    return _correct(p, x, y, task)._replace(b1=d1.mean(axis=1))


def typo_w1_for_w2(p, x, y, *, task):
    """The source text's dL/db1 = (a2 - y) w1 a1 (1 - a1): w1 where w2 belongs."""
    act, d2 = _parts(p, x, y, task)
    slope = act.a1 * (1 - act.a1)  # (N, H)
    db1 = np.mean(d2[:, None] * (slope @ p.w1.T), axis=0)  # w1 (H, I=H) acting where w2 belongs
    return _correct(p, x, y, task)._replace(b1=db1)


def z1_for_a1(p, x, y, *, task):
    act, d2 = _parts(p, x, y, task)
    return _correct(p, x, y, task)._replace(w2=(d2 @ act.z1)[None] / len(x))


def noncanonical_delta(p, x, y, *, task):
    """(a2 - y) a2 (1 - a2): the chain rule through sigma kept after it cancelled."""
    act, d2 = _parts(p, x, y, task)
    s = mlp.sigmoid(act.z2)
    return _with(p, x, y, task, d2=d2 * s * (1 - s))


def shuffled_outer_product(p, x, y, *, task):
    act, d2 = _parts(p, x, y, task)
    d1 = d2[:, None] * p.w2 * act.a1 * (1 - act.a1)
    return _correct(p, x, y, task)._replace(w1=(x.T @ d1 / len(x)))


def factor_two(p, x, y, *, task):
    return mlp.Params(*(2.0 * g for g in _correct(p, x, y, task)))


def first_sample_only(p, x, y, *, task):
    return _correct(p, x[:1], y[:1], task)


def nan_entry(p, x, y, *, task):
    g = _correct(p, x, y, task)
    w1 = g.w1.copy()
    w1.flat[0] = np.nan
    return g._replace(w1=w1)


def scalar_bias(p, x, y, *, task):
    g = _correct(p, x, y, task)
    return g._replace(b2=g.b2[0])


def relative_1e6(p, x, y, *, task):
    return mlp.Params(*(g * (1 + 1e-6) for g in _correct(p, x, y, task)))


def bias_sum_not_mean(p, x, y, *, task):
    g = _correct(p, x, y, task)
    return g._replace(b2=g.b2 * len(x))


def all_zero_hidden(p, x, y, *, task):
    g = _correct(p, x, y, task)
    return g._replace(w1=np.zeros_like(g.w1))


MUTANTS: dict[str, Mutant] = {
    "residual_sign": Mutant(residual_sign, ("w1", "b1", "w2", "b2"), "sign"),
    "missing_sigmoid_slope": Mutant(missing_sigmoid_slope, ("w1", "b1")),
    "slope_of_z": Mutant(slope_of_z, ("w1", "b1")),
    "tanh_slope": Mutant(tanh_slope, ("w1", "b1")),
    "sum_not_mean": Mutant(sum_not_mean, ("w1", "b1", "w2", "b2"), "factor"),
    "bias_mean_wrong_axis": Mutant(bias_mean_wrong_axis, ("b1",), "over the hidden units (axis 1)"),
    "typo_w1_for_w2": Mutant(typo_w1_for_w2, ("b1",), square=True),
    "z1_for_a1": Mutant(z1_for_a1, ("w2",)),
    "noncanonical_delta": Mutant(noncanonical_delta, ("w1", "b1", "w2", "b2")),
    "shuffled_outer_product": Mutant(shuffled_outer_product, ("w1",), "transpose", square=False),
    "factor_two": Mutant(factor_two, ("w1", "b1", "w2", "b2"), "factor 2"),
    "first_sample_only": Mutant(first_sample_only, ("w1", "b1", "w2", "b2")),
    "nan_entry": Mutant(nan_entry, ("w1",), "non-finite"),
    "scalar_bias": Mutant(scalar_bias, ("b2",), "shape"),
    "relative_1e-6": Mutant(relative_1e6, ("w1", "b1", "w2", "b2"), "factor"),
    "bias_sum_not_mean": Mutant(bias_sum_not_mean, ("b2",), "factor"),
    "all_zero_hidden": Mutant(all_zero_hidden, ("w1",), "zeros"),
    "forgotten_weight_decay": Mutant(mlp.closed_form_gradients, ("w1", "w2"), weight_decay=1e-6),  # b1, b2 not decayed
}


# --- beyond scalar losses: VJPs, JVPs, Jacobians, Hessians, custom rules -------------------
#
# Each operation written once in jax.numpy (the function checked) and its
# derivative by hand in NumPy, right and wrong. `RULE_MUTANTS` pairs them with
# the generic points where the wrong one must fail and the right one pass.


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def jax_softmax(z):
    return jax.nn.softmax(z, axis=-1)


def jax_log_softmax(z):
    return jax.nn.log_softmax(z, axis=-1)


def softmax_vjp(primals, c):
    """ds_i/dz_j = s_i (delta_ij - s_j), so J^T c = s * (c - <c, s>)."""
    s = softmax(primals[0])
    return (s * (c - (c * s).sum(axis=-1, keepdims=True)),)


def softmax_vjp_unnormalised(primals, c):
    """The diagonal s_i delta_ij alone: the - s_i s_j of the normaliser forgotten."""
    return (softmax(primals[0]) * c,)


def log_softmax_vjp(primals, c):
    """d log s_i/dz_j = delta_ij - s_j, so J^T c = c - s * sum(c)."""
    return (c - softmax(primals[0]) * c.sum(axis=-1, keepdims=True),)


def log_softmax_vjp_unnormalised(primals, c):
    """d(z_i - log sum exp z)/dz_j taken as delta_ij: the log-normaliser's derivative forgotten."""
    return (c,)


#: Layer norm's epsilon, inside the square root.
LAYER_NORM_EPS = 1e-5


def layer_norm(x):
    mu = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean((x - mu) ** 2, axis=-1, keepdims=True)
    return (x - mu) / jnp.sqrt(var + LAYER_NORM_EPS)


def _layer_norm_parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = x.mean(axis=-1, keepdims=True)
    sigma = np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + LAYER_NORM_EPS)
    return (x - mu) / sigma, sigma


def layer_norm_vjp(primals, c):
    """x_hat = (x - mu) / sigma; J^T c = (c - mean(c) - x_hat mean(c x_hat)) / sigma."""
    xhat, sigma = _layer_norm_parts(primals[0])
    return ((c - c.mean(axis=-1, keepdims=True) - xhat * (c * xhat).mean(axis=-1, keepdims=True)) / sigma,)


def layer_norm_vjp_no_mean_term(primals, c):
    """The mean's dependence on x forgotten: the - mean(c) term is missing."""
    xhat, sigma = _layer_norm_parts(primals[0])
    return ((c - xhat * (c * xhat).mean(axis=-1, keepdims=True)) / sigma,)


def layer_norm_vjp_no_variance_term(primals, c):
    """The variance's dependence on x forgotten: the - x_hat mean(c x_hat) term is missing."""
    _, sigma = _layer_norm_parts(primals[0])
    return ((c - c.mean(axis=-1, keepdims=True)) / sigma,)


def batch_norm(x):
    """Layer norm's arithmetic along the batch axis (0): each feature normalised over the samples."""
    return layer_norm(x.T).T


def batch_norm_vjp(primals, c):
    """As `layer_norm_vjp`, along axis 0: (c - mean_0(c) - x_hat mean_0(c x_hat)) / sigma."""
    (g,) = layer_norm_vjp((primals[0].T,), c.T)
    return (g.T,)


def batch_norm_vjp_no_mean_term(primals, c):
    """The batch mean's dependence on x forgotten (CS231n's batchnorm_backward without its - mean(dx_hat))."""
    (g,) = layer_norm_vjp_no_mean_term((primals[0].T,), c.T)
    return (g.T,)


def batch_norm_vjp_no_variance_term(primals, c):
    """The batch variance's dependence on x forgotten."""
    (g,) = layer_norm_vjp_no_variance_term((primals[0].T,), c.T)
    return (g.T,)


def sin_jvp(primals, tangents):
    return np.cos(primals[0]) * tangents[0]


def sin_jvp_sign(primals, tangents):
    """d sin = -cos: the derivative of cos written for sin's."""
    return -np.cos(primals[0]) * tangents[0]


def tanh_jvp(primals, tangents):
    return (1 - np.tanh(primals[0]) ** 2) * tangents[0]


def tanh_jvp_unsquared(primals, tangents):
    """1 - tanh, the square forgotten."""
    return (1 - np.tanh(primals[0])) * tangents[0]


def a_tanh(a: np.ndarray):
    """x -> A tanh(x), for the matrix `a`."""
    return lambda x: a @ jnp.tanh(x)


def a_tanh_jacobian(a: np.ndarray):
    """J[i, j] = A[i, j] sech^2(x_j): column j scaled by tanh's slope at x_j."""
    return lambda x: a * (1 - np.tanh(x) ** 2)


def a_tanh_jacobian_transposed(a: np.ndarray):
    """The input-by-output layout (what a VJP's matrix looks like): J^T."""
    return lambda x: (a * (1 - np.tanh(x) ** 2)).T


def a_tanh_jacobian_no_slope(a: np.ndarray):
    """A alone: tanh's slope sech^2(x) forgotten."""
    return lambda x: a


def logistic_loss(w, x, y):
    z = x @ w
    return jnp.mean(jax.nn.softplus(z) - y * z)


def logistic_hessian(w, x, y):
    """X^T diag(s (1 - s)) X / N, with s = sigmoid(X w)."""
    s = 1 / (1 + np.exp(-x @ w))
    return x.T @ (x * (s * (1 - s))[:, None]) / len(y)


def logistic_hessian_no_mean(w, x, y):
    """The 1/N of the mean forgotten."""
    return logistic_hessian(w, x, y) * len(y)


def logistic_hessian_sign(w, x, y):
    """The Hessian of the log-likelihood (which is maximised), not of the loss: the sign flipped."""
    return -logistic_hessian(w, x, y)


def logistic_hessian_upper_triangle(w, x, y):
    """The upper triangle filled in, as a loop over j >= i does, and never mirrored."""
    return np.triu(logistic_hessian(w, x, y))


def _curvature(z2: np.ndarray, task: mlp.Task) -> np.ndarray:
    """d^2 l / dz2^2 per sample: 1 for squared error, sigma'(z2) for the log loss."""
    if task == "regression":
        return np.ones_like(z2)
    s = mlp.sigmoid(z2)
    return s * (1 - s)


def network_jvp(p: mlp.Params, x: np.ndarray, v: mlp.Params, task: mlp.Task, *, slope: bool = True) -> np.ndarray:
    """J v: how the outputs z2 move when the parameters move along v (forward mode, by hand)."""
    act = mlp.forward(p, x, task=task)
    dz1 = x @ v.w1.T + v.b1  # (N, H)
    da1 = dz1 * act.a1 * (1 - act.a1) if slope else dz1  # sigma'(z1), or forgotten
    return (act.a1 @ v.w2.T)[:, 0] + v.b2[0] + da1 @ p.w2[0]


def gauss_newton_product(prob: problems.Problem, *, slope: bool = True):
    """``(delta, v) -> G v = J^T diag(l'') J v / N``, the Gauss-Newton matrix times v, at the problem's parameters.

    `slope=False` forgets sigma'(z1) in the J v term (the J^T term keeps it).
    """
    p, x = mlp.Params(*map(np.asarray, prob.params)), np.asarray(prob.x)
    act = mlp.forward(p, x, task=prob.task)

    def product(primals, tangents):
        jv = network_jvp(p, x, tangents[0], prob.task, slope=slope)
        return mlp.backward(p, x, act.a1, _curvature(act.z2, prob.task) * jv)  # J^T (.) / N

    return product


def linearised_loss_gradient(prob: problems.Problem):
    """``delta -> grad of the loss with the network linearised at the problem's parameters``.

    Its Jacobian is the Gauss-Newton matrix, so its JVP along v is G v.
    """
    p, x, y = prob.params, prob.x, prob.y

    def outputs(q):
        return mlp.forward(q, x, task=prob.task).z2

    def linearised(delta):
        z2, jd = jax.jvp(outputs, (p,), (delta,))
        return jnp.mean(mlp.per_sample_loss(z2 + jd, y, task=prob.task))

    return jax.grad(linearised)


def make_logsumexp(*, normalise: bool = True):
    """A `jax.custom_vjp` log-sum-exp; with `normalise=False` its rule forgets the softmax's denominator."""

    @jax.custom_vjp
    def logsumexp(x):
        m = jnp.max(x)
        return m + jnp.log(jnp.sum(jnp.exp(x - m)))

    def fwd(x):
        return logsumexp(x), x

    def bwd(x, g):
        e = jnp.exp(x - jnp.max(x))
        return (g * (e / jnp.sum(e) if normalise else e),)

    logsumexp.defvjp(fwd, bwd)
    return logsumexp


def make_safe_norm(*, divide: bool = True):
    """A `jax.custom_jvp` norm with tangent <x, t> / |x| (0 at x = 0); `divide=False` forgets the / |x|."""

    @jax.custom_jvp
    def safe_norm(x):
        return jnp.sqrt(jnp.sum(x**2))

    @safe_norm.defjvp
    def _(primals, tangents):
        (x,), (t,) = primals, tangents
        n = safe_norm(x)
        along = jnp.vdot(x, t)
        return n, jnp.where(n > 0, along / jnp.where(n > 0, n, 1.0), 0.0) if divide else along

    return safe_norm


LOGSUMEXP, LOGSUMEXP_UNNORMALISED = make_logsumexp(), make_logsumexp(normalise=False)
SAFE_NORM, SAFE_NORM_UNDIVIDED = make_safe_norm(), make_safe_norm(divide=False)


# Generic points: entries bounded away from zero (no product vanishes by
# coincidence), a few shapes (JAX compiles once per shape).
GENERIC = st.floats(0.2, 2.5) | st.floats(-2.5, -0.2)


@functools.lru_cache(maxsize=1024)
def _float_arrays(shape: tuple[int, ...], elements: st.SearchStrategy[float]) -> st.SearchStrategy[np.ndarray]:
    """One strategy object per shape: building a strategy costs more than drawing from it."""
    return hnp.arrays(np.float64, shape, elements=elements)


def _arrays(*shape: Any, elements: st.SearchStrategy[float] = GENERIC) -> st.SearchStrategy[np.ndarray]:
    return st.tuples(*(st.just(s) if isinstance(s, int) else s for s in shape)).flatmap(
        lambda s: _float_arrays(s, elements)
    )


def _distinct(x: np.ndarray) -> bool:
    """No two entries of a row within 0.1 of each other (a softmax or layer norm of near-ties is still generic,
    but a Jacobian column scale must differ from column to column)."""
    s = np.sort(x.reshape(-1, x.shape[-1]), axis=-1)
    return bool(np.all(np.diff(s, axis=-1) > 0.1))


_ROWS, _WIDTHS = st.integers(1, 3), st.integers(2, 5)
_LOGITS = _arrays(_ROWS, _WIDTHS).map(lambda z: (z,))
_FEATURES = _arrays(_ROWS, st.integers(3, 5)).filter(_distinct).map(lambda x: (x,))
_VECTORS = _arrays(_WIDTHS).map(lambda x: (x,))
#: A batch of 3-5 samples (axis 0) of 1-3 features, distinct within each feature.
_BATCHES = _arrays(st.integers(3, 5), _ROWS).filter(lambda x: _distinct(x.T)).map(lambda x: (x,))
# Distinct |x_j|: tanh's slope sech^2(x_j) differs from column to column (sech^2(x) = sech^2(-x)).
_MATRIX_AND_POINT = st.tuples(_WIDTHS, _WIDTHS).flatmap(
    lambda mn: st.tuples(_arrays(*mn), _arrays(mn[1]).filter(lambda x: _distinct(np.abs(x))))
)


@st.composite
def _logistic_problems(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n, d = draw(st.integers(3, 8)), draw(st.integers(2, 4))
    return (
        draw(_arrays(d, elements=st.floats(-1.0, 1.0))),
        draw(_arrays(n, d)),
        draw(hnp.arrays(np.float64, n, elements=st.sampled_from([0.0, 1.0]))),
    )


def _distinct_samples(prob: problems.Problem) -> bool:
    return len(np.unique(prob.x, axis=0)) == len(prob.x)


_NETWORK_PROBLEMS = (
    st.sampled_from(mlp.TASKS)
    .flatmap(lambda task: gs.problems(task=task, inputs=2, hidden=3, batch=st.integers(4, 5), elements=GENERIC))
    .filter(_distinct_samples)
)

Point = tuple[Any, ...]


@dataclass(frozen=True)
class RuleMutant:
    """A wrong hand-written derivative beside the right one, and the generic points where it must fail.

    `right` and `wrong` map a drawn point to the check's whole argument list.
    """

    check: Callable[..., Any]
    right: Callable[[Point], Point]
    wrong: Callable[[Point], Point]
    points: st.SearchStrategy[Point]
    kind: str | None = None  # a word every flagged element's diagnosis must contain
    note: str | None = None  # a phrase one of the report's notes must contain
    #: Each check traces a large program (no closure is shared between points): fewer points.
    slow: bool = False


def _before(*functions: Any) -> Callable[[Point], Point]:
    """The check's functions, then the point: ``(f, vjp_fn, *point)``."""
    return lambda point: (*functions, *point)


def _with_matrix(make_f: Any, make_derivative: Any) -> Callable[[Point], Point]:
    """For ``(A, x)`` points: ``(f_A, derivative_A, x)``."""
    return lambda point: (make_f(point[0]), make_derivative(point[0]), point[1])


def _gauss_newton(slope: bool) -> Callable[[Point], Point]:
    def args(point: Point) -> Point:
        (prob,) = point
        zeros = mlp.Params(*(np.zeros(np.shape(a)) for a in prob.params))
        return (linearised_loss_gradient(prob), gauss_newton_product(prob, slope=slope), zeros)

    return args


RULE_MUTANTS: dict[str, RuleMutant] = {
    "softmax_vjp_unnormalised": RuleMutant(
        check_vjp,
        _before(jax_softmax, softmax_vjp),
        _before(jax_softmax, softmax_vjp_unnormalised),
        _LOGITS,
        "a missing term",
    ),
    "log_softmax_vjp_unnormalised": RuleMutant(
        check_vjp,
        _before(jax_log_softmax, log_softmax_vjp),
        _before(jax_log_softmax, log_softmax_vjp_unnormalised),
        _LOGITS,
        "a missing term",
    ),
    "layer_norm_vjp_no_mean_term": RuleMutant(
        check_vjp,
        _before(layer_norm, layer_norm_vjp),
        _before(layer_norm, layer_norm_vjp_no_mean_term),
        _FEATURES,
        "a missing term",
    ),
    "layer_norm_vjp_no_variance_term": RuleMutant(
        check_vjp,
        _before(layer_norm, layer_norm_vjp),
        _before(layer_norm, layer_norm_vjp_no_variance_term),
        _FEATURES,
        "a missing term of rank one: along all 3 random cotangents, closed form - reference is a multiple of one "
        "fixed vector",
    ),
    "batch_norm_vjp_no_mean_term": RuleMutant(
        check_vjp,
        _before(batch_norm, batch_norm_vjp),
        _before(batch_norm, batch_norm_vjp_no_mean_term),
        _BATCHES,
        "a missing term",
    ),
    "batch_norm_vjp_no_variance_term": RuleMutant(
        check_vjp,
        _before(batch_norm, batch_norm_vjp),
        _before(batch_norm, batch_norm_vjp_no_variance_term),
        _BATCHES,
        "proportional to the output f(x)",
    ),
    "sin_jvp_sign": RuleMutant(check_jvp, _before(jnp.sin, sin_jvp), _before(jnp.sin, sin_jvp_sign), _VECTORS, "sign"),
    "tanh_jvp_unsquared": RuleMutant(
        check_jvp, _before(jnp.tanh, tanh_jvp), _before(jnp.tanh, tanh_jvp_unsquared), _VECTORS, "factor"
    ),
    "a_tanh_jacobian_transposed": RuleMutant(
        check_jacobian,
        _with_matrix(a_tanh, a_tanh_jacobian),
        _with_matrix(a_tanh, a_tanh_jacobian_transposed),
        _MATRIX_AND_POINT,
        "transpose",
    ),
    "a_tanh_jacobian_no_slope": RuleMutant(
        check_jacobian,
        _with_matrix(a_tanh, a_tanh_jacobian),
        _with_matrix(a_tanh, a_tanh_jacobian_no_slope),
        _MATRIX_AND_POINT,
        "each column (input) is off by its own factor",
    ),
    "logistic_hessian_no_mean": RuleMutant(
        check_hessian,
        _before(logistic_loss, logistic_hessian),
        _before(logistic_loss, logistic_hessian_no_mean),
        _logistic_problems(),
        "factor",
    ),
    "logistic_hessian_sign": RuleMutant(
        check_hessian,
        _before(logistic_loss, logistic_hessian),
        _before(logistic_loss, logistic_hessian_sign),
        _logistic_problems(),
        "sign",
    ),
    "logistic_hessian_upper_triangle": RuleMutant(
        check_hessian,
        _before(logistic_loss, logistic_hessian),
        _before(logistic_loss, logistic_hessian_upper_triangle),
        _logistic_problems(),
        note="not symmetric",
    ),
    "gauss_newton_no_hidden_slope": RuleMutant(
        check_jvp,
        _gauss_newton(slope=True),
        _gauss_newton(slope=False),
        _NETWORK_PROBLEMS.map(lambda p: (p,)),
        slow=True,
    ),
    "logsumexp_rule_unnormalised": RuleMutant(
        check_custom_rule, _before(LOGSUMEXP), _before(LOGSUMEXP_UNNORMALISED), _VECTORS, "factor"
    ),
    "safe_norm_rule_undivided": RuleMutant(
        check_custom_rule, _before(SAFE_NORM), _before(SAFE_NORM_UNDIVIDED), _VECTORS, "factor"
    ),
}
