"""`check_batch`: many problems of one shape, checked in one compiled call.

The references of `check_gradients` (float64 autodiff, its Monte Carlo
rounding noise, Richardson finite differences with error bounds) are one
traceable function of one problem; here it is `jax.vmap`-ed over a leading
problem axis, compiled once per shape with XLA's full optimisation, and
sharded over every JAX device. The verdict's arithmetic is the same function
(`_judge.compare`), run over ``(B, P)`` arrays. Problems that do not pass
are re-checked one by one by `check_gradients`, so that every failure comes
with the full report (values, diagnosis, Taylor rate) of the careful path,
and its verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import numpy as np

from gradcheck import _check, _inputs, _judge, _references, _tolerance, _validate
from gradcheck._batch_references import (
    ELEMENTWISE_WORK,
    _batch_references,
    _CompiledBatch,
    _stacked_references,
)
from gradcheck._batch_report import WORST_FIELDS, BatchReport
from gradcheck._references import _trace
from gradcheck._report import Report

__all__ = ["BatchReport", "check_batch"]


def check_batch(
    loss_fn: Callable[..., Any],
    grad_fn: Callable[..., Any],
    params: Any,
    *args: Any,
    seed: int = 0,
    batched: bool = True,
) -> BatchReport:
    """Check B problems at once: `check_gradients` over a leading problem axis.

    Args:
        loss_fn: ``loss_fn(params, *args)`` for ONE problem (no problem axis),
            as for `check_gradients`.
        grad_fn: the closed form. With ``batched=True`` it is called once on
            the whole stack and must return gradients with the leading axis B
            (NumPy code written with ``...`` axes does, e.g.
            `mlp.closed_form_gradients`); with ``batched=False`` it is called
            once per problem, a Python loop that costs its own time per problem.
        params: a pytree whose every leaf has the leading axis B.
        *args: data arrays, each with the leading axis B.
        seed: seeds the Monte Carlo arithmetic and the random directions,
            shared by every problem (so they are drawn once). A problem that
            does not pass is re-checked by ``check_gradients(..., seed=seed)``.
        batched: whether `grad_fn` handles the problem axis itself.

    Returns:
        A `BatchReport`.

    Examples:
        >>> from functools import partial
        >>> import numpy as np
        >>> from gradcheck import check_batch, mlp
        >>> rng = np.random.default_rng(0)
        >>> p = mlp.Params(*(rng.normal(size=(5, *s)) for s in [(3, 2), (3,), (1, 3), (1,)]))
        >>> x, y = rng.normal(size=(5, 4, 2)), rng.normal(size=(5, 4))
        >>> report = check_batch(
        ...     partial(mlp.loss, task="regression"), partial(mlp.closed_form_gradients, task="regression"), p, x, y
        ... )
        >>> report.verdicts
        ('pass', 'pass', 'pass', 'pass', 'pass')
    """
    names, leaves, treedef = _stacked_params(params)
    b = leaves[0].shape[0]
    data = tuple(_validate.data_argument(f"args[{i}]", a) for i, a in enumerate(args))
    for i, a in enumerate(data):
        if a.ndim == 0 or a.shape[0] != b:
            raise ValueError(f"`args[{i}]` has shape {a.shape}, but every argument needs the leading problem axis {b}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"`seed` must be an integer in [0, 2**32), got {seed!r}.")

    def problem(k: int) -> tuple[Any, tuple[np.ndarray, ...]]:
        return jax.tree_util.tree_unflatten(treedef, [leaf[k] for leaf in leaves]), tuple(a[k] for a in data)

    def careful(k: int, closed: list[np.ndarray] | None = None) -> Report:
        """Problem k by `check_gradients`, with the closed form it already has, or
        `grad_fn` called on it as a batch of one (a batch-aware closed form may
        need the problem axis)."""
        p, a = problem(k)
        one = grad_fn if not batched else partial(_as_batch_of_one, grad_fn)
        if closed is not None:
            known = jax.tree_util.tree_unflatten(treedef, [c[k] for c in closed])
            # Where it fails, `one` is called again on this problem alone, in wider arithmetic (`_precision`),
            # once it is seen to reproduce the values computed for the whole batch.
            return _check.judged(loss_fn, lambda *_: known, p, *a, seed=int(seed), rerun=one).report
        return _check.check_gradients(loss_fn, one, p, *a, seed=int(seed))

    closed = _closed_forms(grad_fn, params, data, names, leaves, problem, batched=batched)
    if closed is None:  # the closed form does not stack cleanly: every problem the careful way
        reports = {k: careful(k) for k in range(b)}
        return _summarise(names, reports, {k: r for k, r in reports.items() if r.verdict != "pass"})
    precision = _tolerance.precision_of([c.dtype for c in closed])
    given = [np.asarray(leaf).dtype for leaf in jax.tree_util.tree_leaves(params)]
    if precision != np.float64 and all(dtype == np.float64 for dtype in given):
        # A narrower closed form for float64 parameters: each problem the careful way, which calls a float32
        # JAX result again with x64 on, and makes a float32 NumPy one an error that says how to fix it.
        reports = {k: careful(k) for k in range(b)}
        return _summarise(names, reports, {k: r for k, r in reports.items() if r.verdict != "pass"})
    eps = float(np.finfo(precision).eps)
    theta = np.concatenate([leaf.reshape(b, -1) for leaf in leaves], axis=1)  # (B, P)
    cf = np.concatenate([c.reshape(b, -1).astype(np.float64) for c in closed], axis=1)
    shapes = tuple(leaf.shape[1:] for leaf in leaves)
    first = problem(0)
    # Every coordinate's finite differences cost 6 P loss evaluations per problem over its data;
    # along BATCH_DIRECTIONS random directions, 12, whatever P. Coordinates where that pays.
    data_size = sum(int(np.prod(a.shape[1:])) for a in data)
    elementwise = theta.shape[1] <= _references.MAX_COORDINATES and theta.shape[1] * data_size <= ELEMENTWISE_WORK

    def references(rows: np.ndarray | None, screen: bool) -> _references.References:
        """The references of problems `rows` (None: every one, no copies), refined in the batch, by the
        path that pays."""

        def take(a: np.ndarray) -> np.ndarray:
            return a if rows is None else a[rows]

        sub_leaves, sub_data = [take(leaf) for leaf in leaves], tuple(take(a) for a in data)
        sub_theta, sub_cf = take(theta), take(cf)
        refs = _stacked_references(
            loss_fn, treedef, shapes, sub_leaves, sub_data, seed, eps / 2, sub_cf, precision, elementwise, screen
        )
        if refs is not None:
            return refs
        traced = _trace.trace_loss(loss_fn, treedef, shapes, first[1])
        with jax.enable_x64(True):
            refs = _references.assemble(
                _batch_references(
                    traced, sub_theta, sub_data, seed, eps / 2, sub_cf, elementwise=elementwise, screen=screen
                )
            )
            if elementwise:
                batch = _CompiledBatch(traced, refs, sub_theta, sub_data, int(seed), eps / 2, sub_cf)
                refs = _judge.refined_until_agreed(batch, sub_cf, precision)
        return refs

    # The screen (`_references.SCREEN`) pays where the Monte Carlo runs are most of the cost: problems
    # whose finite differences run along directions (a large batch: about 60% of the references).
    # Along every coordinate they are 13-25%, and a regime the screen rarely settles (perfect fits,
    # confident classifiers) pays for both: benchmarks/regimes.py measured 31,900 -> 14,000 problems/s.
    screen = _references.SCREEN and not elementwise
    refs = references(None, screen)
    judged = _Judged(refs, cf, precision)
    screened = np.zeros(b, bool)
    if screen:
        # The screen (`_references.SCREEN`): what passes without the noise measured stands (a kink
        # found is a doubt, so unfinished); the rest is judged again on the measured noise, in the batch.
        screened = ~judged.unfinished
        if not screened.all():
            rows = np.flatnonzero(~screened)
            refs = _spliced(refs, references(rows, screen=False), rows)
            judged = _Judged(refs, cf, precision)
    tol, c, unfinished_mask = judged.tol, judged.c, judged.unfinished
    unfinished = sorted(int(k) for k in np.flatnonzero(unfinished_mask))
    rechecked = {k: careful(k, closed) for k in unfinished}
    failures = {k: r for k, r in rechecked.items() if r.verdict != "pass"}
    not_judged = [0] * b
    for k, r in rechecked.items():
        not_judged[k] = r.not_judged
    settled = np.ones(b, bool)
    settled[unfinished] = False  # re-checked one by one: their reports say how it went
    worst = _worst(names, leaves, refs, tol, c, settled)
    along_used = math.nan
    if refs.along is not None:
        gap = np.maximum(
            np.abs(refs.along.autodiff - refs.along.finite_diff), np.abs(refs.along.closed - refs.along.finite_diff)
        )
        along_used = float((gap / judged.allowed)[settled].max()) if settled.any() else math.nan
    verdicts = ["pass"] * b
    for k, r in failures.items():
        verdicts[k] = r.verdict
    for name in names:  # the careful reports' extremes count too
        for r in rechecked.values():
            for f in WORST_FIELDS:
                worst[name][f] = _max(worst[name][f], getattr(r[name], f))
    return BatchReport(
        tuple(verdicts), failures, worst, along_used, tuple(not_judged), int(screened.sum()), len(unfinished)
    )


#: The finite differences must confirm autodiff to this relative accuracy
#: (their error bound, times FD_SAFETY, against |autodiff . d| + sum(tol))
#: for `check_batch` to pass a problem itself; otherwise the problem is
#: re-checked along every coordinate, with step refinement, as
#: `check_gradients` would. Smooth typical problems of the seed network
#: confirm to 1e-9 (median) and 2e-5 (worst of 200 per regime); a ReLU network,
#: whose directional step crosses kinks, to 1e-3 at best. Problems whose
#: gradient is tiny next to its finite differences' error (saturated, perfect
#: fits, confident classifiers) are re-checked too: same verdict, more time.
LOOSE = 1e-4


class _Judged:
    """The verdict's arithmetic over a batch's references: tolerances, the comparison, and which problems
    the batch cannot settle itself (re-checked one by one)."""

    def __init__(self, refs: _references.References, cf: np.ndarray, precision: np.dtype):
        self.tol = tol = _judge.tolerances(refs.autodiff, refs.noise, precision)
        self.c = c = _judge.compared(cf, refs, tol)
        self.allowed = np.full(cf.shape[0], math.nan)
        if refs.along is None:
            # Every coordinate's finite differences, refined in the batch where they disagreed: the
            # verdict's arithmetic is check_gradients' own. Only problems that fail it, or whose
            # references still disagree (a kink, a loss not finite nearby), are re-checked one by one.
            self.unfinished = c.blamed.any(axis=1) | c.doubt.any(axis=1) | ~np.isfinite(cf).all(axis=1)
            return
        # Along the random directions: autodiff and the closed form against the finite differences.
        self.allowed = allowed = _tolerance.along_allowance(refs.along.fd_error, tol)
        doubt = _judge.along_doubt(refs.along, tol).any(axis=1) | c.doubt.any(axis=1)
        # A pass needs the finite differences to confirm autodiff to LOOSE along
        # every direction; where their own error is larger (a step across ReLU
        # kinks, a loss that bends sharply) the careful path decides.
        scale = np.abs(refs.along.autodiff) + tol.sum(axis=1, keepdims=True)
        loose = (_tolerance.fd_allowance(refs.along.fd_error, 0.0) > LOOSE * scale).any(axis=1)
        blamed = c.blamed.any(axis=1) | (np.abs(refs.along.closed - refs.along.finite_diff) > allowed).any(axis=1)
        self.unfinished = blamed | doubt | loose | ~np.isfinite(cf).all(axis=1)


def _spliced(
    refs: _references.References, rows_refs: _references.References, rows: np.ndarray
) -> _references.References:
    """`refs` with problems `rows` taken from `rows_refs` (the references of those problems alone)."""

    def splice(whole: np.ndarray, part: np.ndarray) -> np.ndarray:
        out = np.array(whole, copy=True)
        out[rows] = part
        return out

    if (refs.along is None) != (rows_refs.along is None):
        raise ValueError("references of one batch with finite differences along coordinates and along directions")
    along = None
    if refs.along is not None and rows_refs.along is not None:
        along = _references.Along(*(splice(w, p) for w, p in zip(refs.along, rows_refs.along)))
    autodiff, noise, fd, fd_error, kink = (splice(w, p) for w, p in zip(refs[:5], rows_refs[:5]))
    return _references.References(autodiff, noise, fd, fd_error, kink, along)


def _as_batch_of_one(grad_fn: Callable[..., Any], params: Any, *args: Any) -> Any:
    """`grad_fn` on one problem given a problem axis of length 1, and the axis taken off again."""
    stacked = jax.tree_util.tree_map(lambda leaf: np.asarray(leaf)[None], (params, args))
    out = grad_fn(stacked[0], *stacked[1])
    return jax.tree_util.tree_map(lambda leaf: np.asarray(leaf)[0] if np.ndim(leaf) else leaf, out)


def _stacked_params(params: Any) -> tuple[list[str], list[np.ndarray], Any]:
    names, leaves, treedef = _inputs.named_leaves(params)
    sizes = {leaf.shape[0] if leaf.ndim else None for leaf in leaves}
    if len(sizes) != 1 or None in sizes or 0 in sizes:
        got = {name: leaf.shape for name, leaf in zip(names, leaves)}
        raise ValueError(
            f"every leaf of `params` needs the same leading problem axis B >= 1, got shapes {got}; "
            "stack the problems with np.stack."
        )
    return names, leaves, treedef


def _closed_forms(
    grad_fn: Callable[..., Any],
    params: Any,
    data: tuple[np.ndarray, ...],
    names: list[str],
    leaves: list[np.ndarray],
    problem: Callable[[int], tuple[Any, tuple[np.ndarray, ...]]],
    *,
    batched: bool,
) -> list[np.ndarray] | None:
    """The closed form of every problem, stacked per parameter; None if it does not stack as the params do."""
    b = leaves[0].shape[0]
    positional = isinstance(params, (tuple, list))
    try:
        if batched:
            returned = [grad_fn(params, *(a.copy() for a in data))]
        else:
            returned = [grad_fn(p, *(a.copy() for a in args)) for p, args in map(problem, range(b))]
    except KeyboardInterrupt:
        raise
    except BaseException:  # noqa: BLE001 - the careful path reports the user's error, problem by problem
        if batched:
            _per_problem(grad_fn, names, leaves, problem, positional)
        return None
    stacked = []
    for r in returned:
        closed, problems = _inputs.match_structure(
            names, [leaf if batched else leaf[0] for leaf in leaves], r, positional=positional
        )
        if problems and not all("returned" in m and "at index" in m for m in problems.values()):
            if batched:
                _per_problem(grad_fn, names, leaves, problem, positional)
            return None  # wrong shapes or structure: each problem's report says so
        stacked.append([closed[n] for n in names])
    if batched:
        return stacked[0]
    return [np.stack([s[i] for s in stacked]) for i in range(len(names))]


def _per_problem(
    grad_fn: Callable[..., Any],
    names: list[str],
    leaves: list[np.ndarray],
    problem: Callable[[int], tuple[Any, tuple[np.ndarray, ...]]],
    positional: bool,
) -> None:
    """Raise if `grad_fn`, which failed on the stack, takes one problem at a time (then batched=False is meant)."""
    p, a = problem(0)
    try:
        one = grad_fn(p, *(x.copy() for x in a))
    except Exception:  # noqa: BLE001 - not a per-problem function either: the reports say what it does
        return
    _, problems = _inputs.match_structure(names, [leaf[0] for leaf in leaves], one, positional=positional)
    if not problems:
        raise ValueError(
            "`grad_fn` takes one problem at a time: called on problem 0 alone it returns a gradient of the right "
            "shapes, but on the stack of all problems (`batched=True`, the default) it fails or returns the wrong "
            "shapes. Pass `batched=False` to check_batch, or make `grad_fn` handle the leading problem axis."
        )


def _worst(
    names: list[str],
    leaves: list[np.ndarray],
    refs: _references.References,
    tol: np.ndarray,
    c: _judge.Comparison,
    settled: np.ndarray,
) -> dict[str, dict[str, float]]:
    """Per parameter, the largest error fields over the problems the batch settled (`ParamResult` fields).

    The finite-difference fields are NaN where the batch took its finite
    differences along random directions (models above MAX_COORDINATES; see
    `BatchReport.along_used`). Problems re-checked one by one add their own.
    """
    offsets = np.cumsum([0, *(leaf[0].size for leaf in leaves)])
    elementwise = refs.along is None
    worst = {}
    for name, lo, hi in zip(names, offsets[:-1], offsets[1:]):
        s = (settled, slice(lo, hi))
        ratio = np.fmax(c.ratio_ad[s], c.ratio_fd[s]) if elementwise else c.ratio_ad[s]
        worst[name] = {
            "max_abs_err_autodiff": float(c.err_ad[s].max(initial=0.0)),
            "max_rel_err_autodiff": _judge.resolved_relative(c.err_ad[s], refs.autodiff[s], tol[s]),
            "max_abs_err_fd": float(c.err_fd[s].max(initial=0.0)) if elementwise else math.nan,
            "max_rel_err_fd": _judge.resolved_relative(c.err_fd[s], refs.finite_diff[s], c.allowed[s])
            if elementwise
            else math.nan,
            "tolerance_used": float(ratio.max(initial=0.0)),
        }
    return worst


def _summarise(names: list[str], reports: dict[int, Report], failures: dict[int, Report]) -> BatchReport:
    worst = {name: dict.fromkeys(WORST_FIELDS, math.nan) for name in names}
    for r in reports.values():
        for p in r.params:
            for f in WORST_FIELDS:
                worst[p.name][f] = _max(worst[p.name][f], getattr(p, f))
    verdicts = tuple(reports[k].verdict for k in sorted(reports))
    return BatchReport(verdicts, failures, worst, not_judged=tuple(reports[k].not_judged for k in sorted(reports)))


def _max(a: float, b: float) -> float:
    """The larger, ignoring NaN (not measured) unless both are."""
    return float(np.fmax(a, b))
