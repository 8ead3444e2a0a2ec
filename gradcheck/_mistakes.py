"""The mistakes people make in the seed network's backward pass, each recomputed to name it when it fits.

A closed form that fails is compared, parameter by parameter, with each of
these wrong derivations computed on the same problem by the package's own
forward pass. A mistake is named only when exactly one of them matches the
closed form to its tolerance, and that value differs from the right one by
more than the tolerance (so a coincidence of the problem, say ``w2 = 1``,
cannot name it). Each has a mutant in ``tests/derivations.py``.

The output error's mistakes (a factor, N or 1/N, the non-canonical output
error) are `_confirm.confirm`'s; these are the hidden layer's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from gradcheck import mlp


class Mistake(NamedTuple):
    """One wrong derivation: what it is, in words, and its gradients of the parameters it changes."""

    words: str
    #: ``wrong(params, x, y, task)``: the parameters it changes, by name, or None where the problem's shapes
    #: do not admit it (the source's typo needs as many inputs as hidden units).
    wrong: Callable[[mlp.Params, np.ndarray, np.ndarray, mlp.Task], dict[str, np.ndarray] | None]


def _hidden(
    p: mlp.Params, x: np.ndarray, y: np.ndarray, task: mlp.Task, slope: Callable[[mlp.Activations], np.ndarray]
) -> dict[str, np.ndarray]:
    """w1 and b1 with the hidden layer's slope sigma'(z1) replaced by `slope(activations)`."""
    delta1 = _hidden_error(p, x, y, task, slope)
    n = x.shape[0]
    return {"w1": delta1.T @ x / n, "b1": delta1.mean(axis=0)}


def _delta1(p: mlp.Params, x: np.ndarray, y: np.ndarray, task: mlp.Task) -> np.ndarray:
    """The hidden layer's error per sample, delta1 = (delta2 w2) * sigma'(z1): (N, H)."""
    return _hidden_error(p, x, y, task, lambda a: np.asarray(a.a1) * (1 - np.asarray(a.a1)))


def _hidden_error(
    p: mlp.Params, x: np.ndarray, y: np.ndarray, task: mlp.Task, slope: Callable[[mlp.Activations], np.ndarray]
) -> np.ndarray:
    act = mlp.forward(p, x, task=task)
    delta2 = np.asarray(act.a2) - y  # (N,): dL/dz2, for both tasks
    # delta1 = (delta2 w2) * slope, per sample: (N, 1) * (1, H) * (N, H) -> (N, H)
    delta1: np.ndarray = delta2[:, None] * np.asarray(p.w2) * slope(act)
    return delta1


def _typo(p: mlp.Params, x: np.ndarray, y: np.ndarray, task: mlp.Task) -> dict[str, np.ndarray] | None:
    """The source text's dL/db1 = (a2 - y) sigma'(z1) w1: w1 (H, I) acting where w2 belongs."""
    w1 = np.asarray(p.w1)
    if w1.shape[0] != w1.shape[1]:
        return None
    act = mlp.forward(p, x, task=task)
    delta2 = np.asarray(act.a2) - y
    slope = np.asarray(act.a1) * (1 - np.asarray(act.a1))  # (N, H)
    return {"b1": np.mean(delta2[:, None] * (slope @ w1.T), axis=0)}


def _z1_for_a1(p: mlp.Params, x: np.ndarray, y: np.ndarray, task: mlp.Task) -> dict[str, np.ndarray]:
    act = mlp.forward(p, x, task=task)
    delta2 = np.asarray(act.a2) - y
    return {"w2": (delta2 @ np.asarray(act.z1))[None] / x.shape[0]}


MISTAKES: tuple[Mistake, ...] = (
    Mistake(
        "the source text's typo: w1 where w2 belongs in dL/db1 = (a2 - y) w2 sigma'(z1) "
        '(docs/derivation.md, "The typo in the source text")',
        _typo,
    ),
    Mistake(
        "sigma'(z1) = a1 (1 - a1) forgotten in the hidden layer's error delta1 = (delta2 w2) * sigma'(z1)",
        lambda p, x, y, t: _hidden(p, x, y, t, lambda a: np.ones_like(np.asarray(a.a1))),
    ),
    Mistake(
        "sigma' taken of z1 instead of a1: z1 (1 - z1) where a1 (1 - a1) belongs",
        lambda p, x, y, t: _hidden(p, x, y, t, lambda a: np.asarray(a.z1) * (1 - np.asarray(a.z1))),
    ),
    Mistake(
        "tanh's derivative 1 - a1^2 where the sigmoid's a1 (1 - a1) belongs",
        lambda p, x, y, t: _hidden(p, x, y, t, lambda a: 1 - np.asarray(a.a1) ** 2),
    ),
    Mistake("z1 where a1 belongs in dL/dw2 = delta2 a1^T / N", _z1_for_a1),
    Mistake(
        "dL/db1 averaged over the hidden units (axis 1) where the batch belongs: delta1.mean(axis=0), "
        "the mean over the samples, is dL/db1",
        lambda p, x, y, t: {"b1": _delta1(p, x, y, t).mean(axis=1)},
    ),
    Mistake(
        "dL/db1 summed over the hidden units (axis 1) where the batch belongs: delta1.mean(axis=0), "
        "the mean over the samples, is dL/db1",
        # With one hidden unit the sum is the mean: the entry above names it.
        lambda p, x, y, t: {"b1": _delta1(p, x, y, t).sum(axis=1)} if np.shape(p.b1)[0] > 1 else None,
    ),
)


def named(
    params: mlp.Params,
    x: np.ndarray,
    y: np.ndarray,
    task: mlp.Task,
    failed: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> dict[str, str]:
    """The one mistake of `MISTAKES` that each failed parameter matches on this problem, by name.

    `failed` maps a parameter to its (closed form, autodiff, tolerance) arrays. A parameter that no mistake,
    or more than one, matches is left out (its own diagnosis stands).
    """
    p = mlp.Params(*(np.asarray(a, dtype=np.float64) for a in params))
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    found: dict[str, list[str]] = {name: [] for name in failed}
    for mistake in MISTAKES:
        with np.errstate(all="ignore"):
            wrong = mistake.wrong(p, x, y, task)
        for name, value in (wrong or {}).items():
            if name not in failed:
                continue
            cf, ad, tol = failed[name]
            if np.size(value) != cf.size:
                continue
            value = np.reshape(value, cf.shape)
            if cf.shape != ad.shape:  # a closed form of the wrong shape: its values against the mistake's
                fits, distinct = bool(np.all(np.abs(cf - value) <= np.max(tol))), True
            else:
                fits = bool(np.all(np.abs(cf - value) <= tol))
                distinct = bool(np.any(np.abs(value - ad) > tol))  # the problem tells it from the right gradient
            if fits and distinct:
                found[name].append(mistake.words)
    return {name: words[0] for name, words in found.items() if len(words) == 1}


def seed_problem(loss_fn: Any, params: Any) -> mlp.Task | None:
    """The task, when `loss_fn` is the seed network's loss (``partial(mlp.loss, task=...)``) on `mlp.Params`."""
    func, keywords = getattr(loss_fn, "func", None), getattr(loss_fn, "keywords", None) or {}
    if func is mlp.loss and isinstance(params, mlp.Params) and keywords.get("task") in mlp.TASKS:
        task: mlp.Task = keywords["task"]
        return task
    return None
