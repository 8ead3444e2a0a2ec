"""`check_gradients`: a closed form against autodiff and finite differences.

The pipeline, one stage per module::

    inputs checked (`_inputs`) -> references (`_references`: autodiff, Monte
    Carlo noise, finite differences, by NumPy or compiled) -> judgement
    (`_judge`: tolerances, comparison, kinks) -> report (`_report`, with
    `_diagnose` and the Taylor test of `_taylor`)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from gradcheck import _inputs, _judge, _references, _taylor, _tolerance, _validate
from gradcheck._report import GradientMismatch, ParamResult, ReferencesDisagree, Report, misuse_exception


def check_gradients(
    loss_fn: Callable[..., Any],
    grad_fn: Callable[..., Any],
    params: Any,
    *args: Any,
    seed: int = 0,
) -> Report:
    """Check `grad_fn` against float64 autodiff and finite differences of `loss_fn`.

    Args:
        loss_fn: ``loss_fn(params, *args)`` returns a scalar; written with
            ``jax.numpy`` (or any code JAX can trace).
        grad_fn: ``grad_fn(params, *args)`` returns the gradient with the same
            structure as `params` (a NamedTuple, dict or tuple; a dict with the
            same field names as a NamedTuple also matches), as NumPy arrays.
        params: the point to check at, a pytree of real arrays.
        *args: further arguments of both functions (data, targets).
        seed: seeds the Monte Carlo arithmetic that measures rounding noise.

    Returns:
        A `Report`; ``report.ok`` is true when every parameter passes.

    Examples:
        >>> from functools import partial
        >>> import numpy as np
        >>> from gradcheck import check_gradients, mlp
        >>> p = mlp.init_params(0)
        >>> x, y = np.array([[0.5, -1.0], [2.0, 0.0]]), np.array([1.0, 0.0])
        >>> loss = partial(mlp.loss, task="classification")
        >>> grads = partial(mlp.closed_form_gradients, task="classification")
        >>> check_gradients(loss, grads, p, x, y).ok
        True
    """
    return judged(loss_fn, grad_fn, params, *args, seed=seed).report


class Judged(NamedTuple):
    """A report, and the arrays behind each mismatched parameter's verdict."""

    report: Report
    #: For each parameter judged "mismatch", by name: (closed form, autodiff, tolerance).
    arrays: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]


def judged(
    loss_fn: Callable[..., Any],
    grad_fn: Callable[..., Any],
    params: Any,
    *args: Any,
    seed: int = 0,
    penalties: bool = True,
) -> Judged:
    """`check_gradients`, with the arrays of what it found wrong (for a diagnosis across several checks).

    `penalties=False`: `params` are a function's inputs, not a model's
    parameters, so an error proportional to them is no forgotten penalty.
    """
    for label, fn in (("loss_fn", loss_fn), ("grad_fn", grad_fn)):
        if not callable(fn):
            raise TypeError(f"`{label}` must be a function, got {type(fn).__name__} {fn!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"`seed` must be an integer in [0, 2**32), got {seed!r}.")
    names, leaves, treedef = _inputs.flatten_params(params)
    ref_args = tuple(_validate.data_argument(f"args[{i}]", a) for i, a in enumerate(args))
    try:
        # The user's function gets its own copies: it may not move the data
        # that the references are computed from.
        returned = grad_fn(params, *(np.array(a, copy=True) for a in args))
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - the user's code (even sys.exit): reported, not raised
        return Judged(_misuse(names, leaves, _inputs.call_failed(exc, names, leaves, ref_args), exc), {})
    positional = isinstance(params, (tuple, list)) and isinstance(returned, (tuple, list))
    closed, problems = _inputs.match_structure(names, leaves, returned, positional=positional)
    if not closed:  # nothing returned matches any parameter: not a gradient of `params` at all
        return Judged(_misuse(names, leaves, _inputs.not_a_gradient(returned, names, leaves)), {})
    precision = _tolerance.precision_of([c.dtype for c in closed.values()])
    eps = float(np.finfo(precision).eps)
    cf = np.concatenate(
        [
            closed[n].astype(np.float64).ravel()
            if n in closed and closed[n].shape == leaf.shape
            else np.zeros(leaf.size)
            for n, leaf in zip(names, leaves)
        ]
    )
    cf = np.where(np.isfinite(cf), cf, 0.0)  # non-finite entries are reported apart
    with jax.enable_x64(True):
        evaluation = _references.evaluation(
            loss_fn, treedef, leaves, ref_args, eps / 2, seed, cf, screen=_references.SCREEN
        )
        refs, tol = refine(evaluation, cf, precision)
        report = _judge.judge(names, leaves, closed, problems, refs, precision, cf, penalties=penalties, tol=tol)
        if evaluation.screened and not _settled(report, refs):  # judged again, on the measured noise
            evaluation = evaluation.measured()
            refs, tol = refine(evaluation, cf, precision)
            report = _judge.judge(names, leaves, closed, problems, refs, precision, cf, penalties=penalties, tol=tol)
    if evaluation.screened:
        report = dataclasses.replace(report, notes=(*report.notes, SCREENED_NOTE))
    report = dataclasses.replace(report, references=evaluation.path)
    if report.verdict == "mismatch" and not problems:
        direction = _taylor.along_error(cf, refs.autodiff, np.random.default_rng(seed))
        theta = np.concatenate([leaf.ravel() for leaf in leaves])
        observed = _taylor.rate(evaluation.losses, theta, cf, direction)
        report = dataclasses.replace(report, notes=(*report.notes, _taylor.describe(observed)), taylor_rate=observed)
    offsets = np.cumsum([0, *(leaf.size for leaf in leaves)])
    arrays = {
        r.name: (cf[a:b].reshape(leaf.shape), refs.autodiff[a:b].reshape(leaf.shape), tol[a:b].reshape(leaf.shape))
        for r, leaf, a, b in zip(report.params, leaves, offsets[:-1], offsets[1:])
        if r.status == "mismatch"
    }
    return Judged(report, arrays)


#: The note of a check that the screen settled (`_references.SCREEN`).
SCREENED_NOTE = (
    "rounding noise not measured: every entry passed within the least allowances (tol: the floor, "
    f"{_tolerance.FLOOR_ULPS:.0f} ulps of the largest entry; ± err: no rounding noise), which measured noise "
    "only widens"
)


def _settled(report: Report, refs: _references.References) -> bool:
    """Whether a screened check stands (`_references.SCREEN`): a pass, with no kink found.

    Measured noise only widens the tolerances and the finite differences' error bounds, so a pass
    stands. It makes the kink tests less sensitive, so a kink the screen found (an element not
    judged) might be judged with the noise measured, and then fail.
    """
    kinks = bool(np.any(refs.kink)) or (refs.along is not None and bool(np.any(refs.along.kink)))
    return report.verdict == "pass" and not kinks


def _misuse(names: list[str], leaves: list[np.ndarray], message: str, cause: BaseException | None = None) -> Report:
    """The report of a wrong call: verdict "error", told once, and nothing compared."""
    results = tuple(ParamResult(n, leaf.shape, "error") for n, leaf in zip(names, leaves))
    return Report(results, error=message, cause=cause)


def refine(
    evaluation: _references.Evaluation, closed: np.ndarray, precision: np.dtype
) -> tuple[_references.References, np.ndarray]:
    """The references, with finite differences retaken at finer steps where they disagree with autodiff,
    and the tolerances (which refining leaves alone: it retakes only the finite differences)."""
    first = evaluation.references
    tol = _judge.tolerances(first.autodiff, first.noise, precision)  # refining retakes only the finite differences
    refs = _judge.refined_until_agreed(evaluation, closed, precision, tol)
    if refs.along is None:
        # Still in doubt after the finest step: a kink within it, where autodiff's own gradient jumps?
        doubt = _judge.reference_doubt(refs, closed, precision, tol) & ~refs.kink
        if doubt.any():
            where = np.flatnonzero(doubt)
            kink = refs.kink.copy()
            kink[where] = evaluation.kinks_within_steps(where, tol)
            refs = refs._replace(kink=kink)
    return refs, tol


def assert_gradients(
    loss_fn: Callable[..., Any], grad_fn: Callable[..., Any], params: Any, *args: Any, seed: int = 0
) -> Report:
    """Like `check_gradients`, but raise unless every parameter passes.

    Raises:
        GradientMismatch: the closed form disagrees with the references (an
            `AssertionError` whose message is the report).
        ReferencesDisagree: autodiff and finite differences disagree with each
            other (for example at a non-differentiable point).
        TypeError: a wrong call, not a wrong gradient: `grad_fn` does not take
            ``(params, *args)`` (it raised `TypeError`), or it returned
            something that is not a gradient of `params` (None, say). The
            message says which, with the user's traceback; the exception
            `grad_fn` raised is chained.
        ValueError: `grad_fn` raised any other exception (data of a shape it
            does not take, say); the same message, and the exception chained.
    """
    report = check_gradients(loss_fn, grad_fn, params, *args, seed=seed)
    if report.verdict == "error":
        raise misuse_exception(report) from report.cause
    if report.verdict == "mismatch":
        raise GradientMismatch(report)
    if report.verdict == "inconclusive":
        raise ReferencesDisagree(report)
    return report
