"""Name the likely mistake behind a failed parameter.

A diagnosis is stated only when it is confirmed: the implied fix is applied
to the closed form and the result passes the same tolerance. Facts that need
no confirmation (a wrong shape, a NaN, all zeros) are stated as facts.
Anything else is "unclassified", with the evidence.

`diagnose` looks at one problem. It states what that problem shows (a sign
flip, a transpose, a constant factor on this problem) and no cause that one
problem cannot tell apart from a coincidence: with a batch of 4 and z2 = 0,
sigma'(z2) = 1/4 looks just like 1/N. Causes are `_confirm`'s, across
problems of several batch sizes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

#: How many of the worst entries to list for "only some entries wrong".
WORST_SHOWN = 3


class Term(NamedTuple):
    """An array that a missing term may be proportional to, as the caller knows it."""

    words: str  # what it is, in words: "`W` itself", "the output f(x)"
    symbol: str  # how the equation names it: "`W`", "f(x)"
    value: np.ndarray  # shaped like the closed form
    cause: Callable[[float], str] = lambda k: ""  # the likely cause, given closed form - reference = k x value


def diagnose(
    name: str,
    cf: np.ndarray | None,
    ad: np.ndarray,
    tol: np.ndarray,
    reference: dict[str, tuple[np.ndarray, np.ndarray]],
    context: Sequence[Term] = (),
) -> str | None:
    """The likely mistake in `cf` (the closed form for `name`), or None if it has none.

    `ad` and `tol` are the reference and the tolerance for `name`;
    `reference` maps every parameter's name to its (reference, tolerance), for
    spotting swapped parameters. `context` holds arrays that the error may be
    proportional to (`Term`): a missing term ``k x`` such an array is named.
    """
    if cf is None:
        return None
    cf = np.asarray(cf, dtype=np.float64)

    def passes(candidate: np.ndarray) -> bool:
        return bool(np.all(np.abs(candidate - ad) <= tol))

    if cf.shape != ad.shape:
        if cf.ndim == 2 and cf.T.shape == ad.shape and passes(cf.T):
            return f"transposed: shape {cf.shape} where {ad.shape} belongs, and the transpose is right"
        if cf.size == ad.size and passes(cf.reshape(ad.shape)):
            return f"wrong shape {cf.shape}, expected {ad.shape}; the values are right once reshaped"
        return f"wrong shape: expected {ad.shape}, got {cf.shape}"
    finite = np.isfinite(cf)
    if not finite.all():
        where = [tuple(int(i) for i in ix) for ix in np.argwhere(~finite)[:WORST_SHOWN]]
        rest = "; the other entries are right" if passes(np.where(finite, cf, ad)) else ""
        return f"non-finite values at {', '.join(map(str, where))}{rest}"
    if not cf.any() and np.any(np.abs(ad) > tol):
        return "all zeros, but the reference is not: is this gradient ever written?"
    if cf.ndim == 2 and cf.shape[0] == cf.shape[1] and passes(cf.T):
        # The subtle case: a square matrix keeps its shape when transposed.
        return f"transposed: the transpose is right (a square {cf.shape} matrix, so its shape could not show it)"
    if passes(-cf):
        return "sign flipped: the closed form is -1 x the reference (a residual written y - a2 where a2 - y belongs?)"
    for other, (other_ad, other_tol) in reference.items():
        if other != name and other_ad.shape == cf.shape and np.all(np.abs(cf - other_ad) <= other_tol):
            return f"swapped: these values are the gradient of `{other}`"
    factor = best_factor(cf, ad)
    if factor is not None and passes(cf / factor):
        # A fact about this problem only: its cause (1/N, a missing 1/2, a
        # slope) needs problems of other sizes, which is `confirm`'s job.
        return f"off by a constant factor {format_factor(factor)} (on this problem)"
    bad = np.abs(cf - ad) > tol
    pattern = _pattern(cf, ad, tol, bad)
    if pattern is not None:
        return pattern
    if bad.sum() < cf.size:
        order = np.argsort(-(np.abs(cf - ad) / np.maximum(tol, np.finfo(float).tiny)).ravel())
        worst = [tuple(int(i) for i in np.unravel_index(k, cf.shape)) for k in order[: min(WORST_SHOWN, bad.sum())]]
        return f"only {int(bad.sum())} of {cf.size} entries wrong; worst at {', '.join(map(str, worst))}"
    structure = _structure(cf, ad, tol, context)
    if structure is not None:
        return structure
    return f"unclassified: closed form / reference ranges over {_ratio_range(cf, ad)}"


# --- where the wrong entries are: a mask, the diagonal, one per row, a stride ------------------


def _pattern(cf: np.ndarray, ad: np.ndarray, tol: np.ndarray, bad: np.ndarray) -> str | None:
    """The layout of the wrong entries, when it has one a person can act on; None otherwise."""
    zero_cf, zero_ad = np.abs(cf) <= tol, np.abs(ad) <= tol
    if (
        cf.size > 1
        and np.all(zero_cf | zero_ad)  # at every entry one of them is zero ...
        and np.any(zero_cf & ~zero_ad)  # ... the closed form where the reference is not ...
        and np.any(~zero_cf & zero_ad)  # ... and the reference where the closed form is not
    ):
        return (
            "a mask inverted: the closed form is non-zero exactly where the reference is zero, and zero where it "
            "is not (x <= 0 where x > 0 belongs, say)"
        )
    if bad.all() or not bad.any():
        return None
    error = cf - ad
    if cf.ndim == 2 and cf.shape[0] == cf.shape[1] > 1 and np.array_equal(bad, np.eye(cf.shape[0], dtype=bool)):
        diagonal = np.diag(error)
        same = np.allclose(diagonal, diagonal[0], rtol=1e-6, atol=float(np.max(np.diag(tol))))
        told = f"each off by {diagonal[0]:.6g}: a term {-diagonal[0]:.6g} I missing (a ridge or damping lambda I?)"
        return "only the diagonal is wrong; " + (told if same else f"off by {_listed(np.diag(error))}")
    if cf.ndim == 2 and cf.shape[0] > 1 and np.all(bad.sum(axis=1) == 1):
        columns = np.argmax(bad, axis=1)
        offs = error[np.arange(cf.shape[0]), columns]
        constant = np.allclose(offs, offs[0], rtol=1e-6, atol=float(np.max(tol)))
        by = f", each off by {offs[0]:.6g}" if constant else ""
        return (
            f"one entry per row is wrong, at columns {_listed(columns)}{by}: a per-row index, such as the label's "
            "column (softmax - one_hot without the one-hot, say)"
        )
    # Right at one end of an axis and wholly wrong at every other index along it: a step-to-step carry missing.
    # Three steps at least, and the right end holding real values (not zeros that any mistake keeps).
    for axis in range(cf.ndim if cf.ndim > 1 else 0):
        n = cf.shape[axis]
        if n < 3:
            continue
        slices = np.moveaxis(bad, axis, 0).reshape(n, -1)
        # Anything, and everything, wrong at each index along the axis.
        wrong_at, all_wrong_at = np.asarray(slices.any(axis=1)), np.asarray(slices.all(axis=1))
        real_at = np.asarray(np.moveaxis(np.abs(ad) > tol, axis, 0).reshape(n, -1).any(axis=1))
        for right, earlier in ((n - 1, "earlier"), (0, "later")):
            if not wrong_at[right] and real_at[right] and np.delete(all_wrong_at, right).all():
                where = "last" if right == n - 1 else "first"
                return (
                    f"along axis {axis} the {where} index is right and every {earlier} one is wrong: is what is "
                    "carried from step to step along it missing (a recurrence's gradient carried back through "
                    "time, dh from the later steps, or a running sum)?"
                )
    flat = np.flatnonzero(bad.ravel())
    if flat.size >= 3 and len(set(np.diff(flat))) == 1 and int(np.diff(flat)[0]) > 1:
        step = int(np.diff(flat)[0])
        nth = {2: "2nd", 3: "3rd"}.get(step, f"{step}th")
        return (
            f"every {nth} entry is wrong (flat indices {flat[0]}, {flat[1]}, ... {flat[-1]}) and the rest right: "
            "a stride or an offset in the indexing"
        )
    return None


def _listed(values: np.ndarray, shown: int = 8) -> str:
    text = ", ".join(f"{v:.6g}" if isinstance(v, float | np.floating) else str(v) for v in values.ravel()[:shown])
    return f"[{text}{', ...' if values.size > shown else ''}]"


# --- the shape of the error: a missing term, a factor per row or column ------------------
#
# Each is stated only when removing what it names leaves a closed form that
# passes the same tolerance, and only where it is a real constraint: an error
# "the same in every entry" of one entry, or "of rank one" in a matrix whose
# reference is itself of rank one, says nothing. `diagnose` (any gradient)
# looks for a term proportional to a known array or the same in every entry;
# `matrix` (a Jacobian or Hessian) and `across` (a VJP or JVP along several
# directions) look further, where the layout says what rows and columns are.

#: Factors are printed with this many entries at most.
SHOWN = 4


def _structure(cf: np.ndarray, ad: np.ndarray, tol: np.ndarray, context: Sequence[Term]) -> str | None:
    """A missing term in ``cf - ad``: proportional to one of `context`'s arrays, or the same in every entry."""

    def passes(candidate: np.ndarray) -> bool:
        return bool(np.all(np.abs(candidate - ad) <= tol))

    if cf.size < 2:
        return None
    e = cf - ad
    for term in context:
        k = best_factor(e, term.value) if np.shape(term.value) == cf.shape else None
        if k is not None and passes(cf - k * term.value):
            both = (
                f"; {term.symbol} is the same in every entry here, so a term the same in every entry fits as well"
                if np.ptp(term.value) == 0
                else ""
            )
            return (
                f"a missing term proportional to {term.words}: closed form - reference = {k:.6g} x {term.symbol}"
                + term.cause(k)
                + both
            )
    if passes(cf - e.mean()):
        return (
            f"a missing term, the same in every entry: closed form - reference = {e.mean():.6g} everywhere "
            "(the derivative of a mean, or of a normalising sum, forgotten?)"
        )
    return None


def matrix(cf: np.ndarray, ad: np.ndarray, tol: np.ndarray) -> str | None:
    """The shape of the error of a Jacobian (outputs by inputs) or Hessian, as a matrix: None if it has none.

    In order: a missing term the same in every entry or in each row; each
    column (input) or each row (output) off by its own factor, the slope of
    an elementwise function the chain rule passes through; an error of rank
    one, the outer-product term a normaliser's derivative adds (stated only
    where the reference has rank two or more).
    """
    cf, ad, tol = (np.asarray(a, dtype=np.float64) for a in (cf, ad, tol))
    if cf.ndim != 2 or min(cf.shape) < 2:
        return None

    def passes(candidate: np.ndarray) -> bool:
        return bool(np.all(np.abs(candidate - ad) <= tol))

    e = cf - ad
    if passes(cf - e.mean()):
        return (
            f"a missing term, the same in every entry: closed form - reference = {e.mean():.6g} everywhere "
            "(the derivative of a mean, or of a normalising sum, forgotten?)"
        )
    per_row = e.mean(axis=1, keepdims=True)
    if passes(cf - per_row):
        return (
            "a missing term, the same in each row: closed form - reference depends on the output alone "
            f"(from {per_row.min():.6g} to {per_row.max():.6g}): a term u 1^T (the derivative of a mean, or of a "
            "normalising sum, over the inputs forgotten?)"
        )
    for axis, line, side in ((0, "column", "input"), (1, "row", "output")):
        # Least squares per line: cf[:, j] ~ c_j ad[:, j] (columns), cf[i, :] ~ c_i ad[i, :] (rows).
        norms = (ad * ad).sum(axis=axis, keepdims=True)
        if not norms.all():
            continue
        c = (cf * ad).sum(axis=axis, keepdims=True) / norms
        if c.all() and passes(cf / c) and not passes(cf / c.mean()):  # one factor for all is no news
            factors = ", ".join(f"{v:.6g}" for v in c.ravel()[:SHOWN]) + (", ..." if c.size > SHOWN else "")
            return (
                f"each {line} ({side}) is off by its own factor ({factors}): divided by it, every {line} is right. "
                f"A factor of each {side}, missing or wrong: the slope of an elementwise function on the {side} "
                "side (the chain rule?)"
            )
    if _fits_rank_one(ad, tol):  # then any error along the reference's own vectors is of rank one too
        return None
    u, s, vt = np.linalg.svd(e)
    if passes(cf - s[0] * np.outer(u[:, 0], vt[0])):
        square = cf.shape[0] == cf.shape[1]
        symmetric = ", symmetric (u = v up to scale)" if square and abs(float(u[:, 0] @ vt[0])) > 1 - 1e-6 else ""
        return (
            f"a missing term of rank one: closed form - reference is an outer product u v^T{symmetric}, as the "
            "derivative of a normaliser (a sum, a mean, a log-sum-exp) adds (the -s s^T of a softmax's Jacobian?)"
        )
    return None


def across(
    cf: Sequence[np.ndarray],
    ad: Sequence[np.ndarray],
    tol: Sequence[np.ndarray],
    what: str,
    context: Sequence[Term] = (),
) -> str | None:
    """The shape of the error of a VJP or JVP along several random directions (`what`: "cotangent", "tangent").

    Along direction k the error is ``E_k t_k`` for the one wrong matrix E (a
    Jacobian's error, or its transpose), so what every direction shares
    tells E's shape:

    - each element off by its own factor, the same along every direction:
      E is the Jacobian scaled elementwise, a wrong slope of an elementwise
      function (no missing term);
    - the error along every direction a multiple of one fixed vector v (in
      each row along the last axis, for a batch of rows): E = u v^T is of
      rank one, a missing outer-product term, the mark of a normaliser's
      derivative (a sum, a mean, a log-sum-exp); v is named when it is a
      constant or one of `context`'s arrays.

    Each is stated only when the closed form with it removed passes on
    every direction, and only where it constrains: two directions at least,
    and two entries in a row.
    """
    if len(cf) < 2 or cf[0].size < 2:
        return None
    cfs, ads, tols = (np.stack([np.asarray(a, dtype=np.float64) for a in arrays]) for arrays in (cf, ad, tol))

    def passes(candidate: np.ndarray) -> bool:
        return bool(np.all(np.abs(candidate - ads) <= tols))

    directions = f"{len(cf)} random {what}s"
    norms = (ads * ads).sum(axis=0)
    if norms.all():
        d = (cfs * ads).sum(axis=0) / norms  # least squares per element, across the directions
        if d.all() and passes(cfs / d) and not passes(cfs / d.mean()):  # one factor for all is no news
            return (
                f"each element is off by its own factor, the same along all {directions} (from {d.min():.6g} to "
                f"{d.max():.6g}): divided by it, every element is right. A factor that depends on the point, not "
                "the direction: an elementwise function's slope f'(x) written wrong (no term is missing)"
            )
    # Along the last axis first (a layer norm's rows, a softmax's), then along each other axis (a batch
    # norm's columns, along the batch axis): the first along which the error is of rank one is told.
    for axis in reversed(range(cfs.ndim - 1)):
        found = _rank_one_along(cfs - ads, ads, tols, axis, directions, context)
        if found is not None:
            return found
    return None


def _rank_one_along(
    errors: np.ndarray, ads: np.ndarray, tols: np.ndarray, axis: int, directions: str, context: Sequence[Term]
) -> str | None:
    """`across`'s missing term of rank one in each slice along `axis` (of the arrays without the directions' axis),
    or None. `errors`, `ads`, `tols`: (directions, *shape)."""
    k, shape = errors.shape[0], errors.shape[1:]
    if shape[axis] < 2:
        return None

    def slices(a: np.ndarray) -> np.ndarray:  # (slices, directions, entries along `axis`)
        moved = np.moveaxis(a, axis + 1, -1)
        sliced: np.ndarray = moved.reshape(k, -1, shape[axis]).transpose(1, 0, 2)
        return sliced

    errors, reference_rows, tolerance_rows = slices(errors), slices(ads), slices(tols)
    # Where a slice's reference is itself a multiple of one vector w along every direction (a Jacobian block
    # of rank one), an error along w is "of rank one" whatever the mistake: it is no evidence of a term.
    for a, e, t in zip(reference_rows, errors, tolerance_rows):
        if _fits_rank_one(a, t):
            w = np.linalg.svd(a)[2][0]
            if np.all(np.abs(e - np.outer(e @ w, w)) <= t):
                return None
    term = np.empty_like(errors)
    for r, e in enumerate(errors):
        u, s, vt = np.linalg.svd(e)
        term[r] = s[0] * np.outer(u[:, 0], vt[0])
    if not np.all(np.abs(errors - term) <= tolerance_rows):
        return None
    last = axis == len(shape) - 1
    if errors.shape[0] == 1:
        where = ""
    elif last:
        where = " of each row (along the last axis)"
    else:
        where = f" of each slice along axis {axis} (as a batch norm's columns, along the batch axis)"
    head = (
        f"a missing term of rank one: along all {directions}, closed form - reference is a multiple of one fixed "
        f"vector{where}"
    )
    cause = "the derivative of a normaliser (a sum, a mean, a log-sum-exp) forgotten?"
    if not last:
        cause = cause[:-1] + f", or a reduction over another axis than {axis}?"
    if np.all(np.abs(errors - errors.mean(axis=2, keepdims=True)) <= tolerance_rows):
        mean = "the derivative of a mean, or of a normalising sum, forgotten?"
        return f"{head}, the same in every entry: {mean if last else mean[:-1] + f' (over axis {axis})?'}"
    for t in context:
        if np.shape(t.value) != shape:
            continue
        value = np.moveaxis(np.asarray(t.value, dtype=np.float64), axis, -1).reshape(-1, 1, shape[axis])
        v = np.broadcast_to(value, errors.shape)
        vv = (v * v).sum(axis=2, keepdims=True)
        if vv.all() and np.all(np.abs(errors - (errors * v).sum(axis=2, keepdims=True) / vv * v) <= tolerance_rows):
            return f"{head}, proportional to {t.words}: {cause}"
    return f"{head} (an outer-product term u v^T missing from the Jacobian): {cause}"


def _fits_rank_one(m: np.ndarray, tol: np.ndarray) -> bool:
    """Whether the matrix `m` is of rank one (or zero) within `tol`."""
    u, s, vt = np.linalg.svd(m)
    return bool(np.all(np.abs(s[0] * np.outer(u[:, 0], vt[0]) - m) <= tol))


def best_factor(cf: np.ndarray, ad: np.ndarray) -> float | None:
    """Least-squares c with cf ~ c * ad, or None if the reference is zero."""
    denominator = float(np.vdot(ad, ad))
    if denominator == 0.0:
        return None
    c = float(np.vdot(cf, ad)) / denominator
    return c if c != 0.0 else None


def format_factor(c: float) -> str:
    """``2``, ``0.25`` or, close to 1, ``1 + 1.0e-08`` (so a tiny error still shows)."""
    return f"1 {'+' if c > 1 else '-'} {abs(c - 1):.1e}" if abs(c - 1) < 1e-4 else f"{c:.6g}"


def _ratio_range(cf: np.ndarray, ad: np.ndarray) -> str:
    nonzero = ad != 0
    if not nonzero.any():
        return "nothing (the reference is zero)"
    ratios = cf[nonzero] / ad[nonzero]
    return f"[{format_factor(float(ratios.min()))}, {format_factor(float(ratios.max()))}]"
