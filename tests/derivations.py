"""Derivations of the seed network's gradient, right and wrong, as people write them.

`CORRECT`: correct reformulations that must never be flagged.
`MUTANTS`: wrong derivations that learners and engineers really write; each
names the mistake kind the diagnosis should find (``None``: no confirmed
diagnosis is expected, only the failure).

Every function has the signature of `mlp.closed_form_gradients`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gradcheck import mlp

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


CORRECT: dict[str, GradFn] = {
    "closed_form": mlp.closed_form_gradients,
    "per_sample_loop": per_sample_loop,
    "einsum": einsum_form,
    "symmetric_sigmoid_slope": symmetric_sigmoid_slope,
    "as_dict": as_dict,
    "float32": in_float32,
}


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
    "sum_not_mean": Mutant(sum_not_mean, ("w1", "b1", "w2", "b2"), "factor"),
    "bias_mean_wrong_axis": Mutant(bias_mean_wrong_axis, ("b1",), "shape"),
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
