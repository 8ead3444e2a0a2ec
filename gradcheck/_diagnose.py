"""Name the likely mistake behind a failed parameter.

A diagnosis is stated only when it is confirmed: the implied fix is applied
to the closed form and the result passes the same tolerance. Facts that need
no confirmation (a wrong shape, a NaN, all zeros) are stated as facts.
Anything else is "unclassified", with the evidence.

Two levels:

- `diagnose` looks at one problem. It states what that problem shows (a
  sign flip, a transpose, a constant factor on this problem) and no cause
  that one problem cannot tell apart from a coincidence: with a batch of 4
  and z2 = 0, sigma'(z2) = 1/4 looks just like 1/N.
- `confirm` tests hypotheses across problems of at least two batch sizes:
  the right output error or a likely wrong one (`OUTPUT_ERROR_MISTAKES`),
  scaled by a constant, by N or by 1/N. Each is recomputed with the shipped
  backward pass (`network.backward`) and compared with the submission; a
  cause is named only when exactly one hypothesis matches on every problem.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from gradcheck import _tolerance, network
from gradcheck.activations import sigmoid
from gradcheck.heads import HEADS, canonical_error

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
    factor = _best_factor(cf, ad)
    if factor is not None and passes(cf / factor):
        # A fact about this problem only: its cause (1/N, a missing 1/2, a
        # slope) needs problems of other sizes, which is `confirm`'s job.
        return f"off by a constant factor {_format_factor(factor)} (on this problem)"
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
        k = _best_factor(e, term.value) if np.shape(term.value) == cf.shape else None
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


def _best_factor(cf: np.ndarray, ad: np.ndarray) -> float | None:
    """Least-squares c with cf ~ c * ad, or None if the reference is zero."""
    denominator = float(np.vdot(ad, ad))
    if denominator == 0.0:
        return None
    c = float(np.vdot(cf, ad)) / denominator
    return c if c != 0.0 else None


def _format_factor(c: float) -> str:
    """``2``, ``0.25`` or, close to 1, ``1 + 1.0e-08`` (so a tiny error still shows)."""
    return f"1 {'+' if c > 1 else '-'} {abs(c - 1):.1e}" if abs(c - 1) < 1e-4 else f"{c:.6g}"


def _ratio_range(cf: np.ndarray, ad: np.ndarray) -> str:
    nonzero = ad != 0
    if not nonzero.any():
        return "nothing (the reference is zero)"
    ratios = cf[nonzero] / ad[nonzero]
    return f"[{_format_factor(float(ratios.min()))}, {_format_factor(float(ratios.max()))}]"


# --- confirmation across problems -------------------------------------------------------

#: Where the right output error is derived: the seed network's two heads (one
#: output) on the derivation page, every head on the canonical-links page.
DERIVATION = 'docs/derivation.md, "The output error"'
CANONICAL = 'docs/canonical.md, "The reason, in two paragraphs"'
#: Where the 1/N of a mean over the batch is derived.
BATCH_MEAN = 'docs/derivation.md, "The batched matrix form"'


class OutputErrorMistake(NamedTuple):
    """A wrong output error δ_L = dL_n/dz_L that a derivation is likely to use for a head."""

    delta: Callable[[Any, Any, Any], Any]  # (z, a, y) -> the wrong δ, shaped like z
    #: What the mistake is and what to change; ``{L}`` is the output layer's number.
    text: str
    source: str  # where the right δ is derived


def _sigmoid_slope(z: Any) -> Any:
    # sigma'(z) = sigma(z) (1 - sigma(z)), with 1 - sigma(z) written sigma(-z).
    return sigmoid(z) * sigmoid(-z)


#: For each head, the likely wrong output errors. Every canonical head's
#: output error is a - y; the slip is to keep the chain rule's slope of the
#: output activation (the squared-error δ) after it cancelled, or to take a
#: sigmoid's slope at a linear output. For the non-canonical heads it is the
#: reverse: a - y where the slope stays.
OUTPUT_ERROR_MISTAKES: dict[str, tuple[OutputErrorMistake, ...]] = {
    "identity": (
        OutputErrorMistake(
            lambda z, a, y: (a - y) * _sigmoid_slope(z),
            "an extra factor sigma'(z{L}) in the output error: this output is linear (a{L} = z{L}, "
            "da{L}/dz{L} = 1), so delta{L} = a{L} - y, not (a{L} - y) sigma'(z{L}) as for a sigmoid output; "
            "drop the factor",
            DERIVATION,
        ),
        OutputErrorMistake(
            lambda z, a, y: (a - y) * a * (1 - a),
            "an extra factor a{L} (1 - a{L}) in the output error: this output is linear (a{L} = z{L}, "
            "da{L}/dz{L} = 1), so delta{L} = a{L} - y, not (a{L} - y) a{L} (1 - a{L}) as for a sigmoid output; "
            "drop the factor",
            DERIVATION,
        ),
    ),
    "sigmoid": (
        OutputErrorMistake(
            HEADS["sigmoid-mse"].output_error,
            "an extra factor sigma'(z{L}) = a{L} (1 - a{L}) in the output error: with log loss the sigmoid's "
            "slope cancels, so delta{L} = a{L} - y, not (a{L} - y) a{L} (1 - a{L}) as for squared error; "
            "drop the factor",
            DERIVATION,
        ),
    ),
    "softmax": (
        OutputErrorMistake(
            HEADS["softmax-mse"].output_error,
            "the softmax's Jacobian J = diag(a{L}) - a{L} a{L}^T in the output error: with cross-entropy it "
            "cancels, so delta{L} = a{L} - y, not J^T (a{L} - y) as for squared error; drop J^T",
            CANONICAL,
        ),
        OutputErrorMistake(
            lambda z, a, y: (a - y) * a * (1 - a),
            "an extra factor a{L} (1 - a{L}) in the output error: with a softmax and cross-entropy "
            "delta{L} = a{L} - y, with no slope at all (and a softmax's slope is a Jacobian, not a sigmoid's); "
            "drop the factor",
            CANONICAL,
        ),
    ),
    "poisson": (
        OutputErrorMistake(
            lambda z, a, y: (a - y) * a,
            "an extra factor a{L} = exp(z{L}) in the output error: with the Poisson loss the exp's slope "
            "cancels, so delta{L} = a{L} - y, not (a{L} - y) a{L} as for squared error; drop the factor",
            CANONICAL,
        ),
    ),
    "sigmoid-mse": (
        OutputErrorMistake(
            canonical_error,
            "a missing factor sigma'(z{L}) = a{L} (1 - a{L}) in the output error: with squared error the "
            "sigmoid's slope stays, so delta{L} = (a{L} - y) a{L} (1 - a{L}); a{L} - y holds with log loss only",
            CANONICAL,
        ),
    ),
    "softmax-mse": (
        OutputErrorMistake(
            canonical_error,
            "a missing softmax Jacobian in the output error: with squared error it stays, so "
            "delta{L} = J^T (a{L} - y) with J = diag(a{L}) - a{L} a{L}^T; a{L} - y holds with cross-entropy only",
            CANONICAL,
        ),
    ),
}

#: How a factor may depend on the batch size N: a constant, N (a sum where
#: a mean belongs) or 1/N (a mean taken twice). Two batch sizes tell them apart.
LAWS: dict[str, Callable[[int], float]] = {"constant": lambda n: 1.0, "N": float, "1/N": lambda n: 1.0 / n}
#: Constants worth naming exactly (each is tried before the fitted value).
NAMED_CONSTANTS = (1.0, -1.0, 2.0, 0.5, -2.0, -0.5)


class Evidence(NamedTuple):
    """One problem for a `network.Network`, and the gradient a submission returned for it."""

    params: dict[str, np.ndarray]
    x: np.ndarray  # (N, K0)
    y: np.ndarray  # (N, KL)
    #: The submission's gradient by parameter name; leave out entries that are
    #: missing, misshapen or not finite (the check reports those as facts).
    returned: dict[str, np.ndarray]


class _Hypothesis(NamedTuple):
    mistake: OutputErrorMistake | None  # None: the right output error
    law: str  # a key of LAWS
    constant: float


def confirm(net: network.Network, evidence: Sequence[Evidence]) -> dict[str, str]:
    """The confirmed mistake behind each wrong parameter of a submission, by name.

    Each hypothesis (the right output error or one of the head's
    `OUTPUT_ERROR_MISTAKES`, times a constant, N or 1/N) is recomputed on
    every problem of `evidence` with the shipped backward pass and compared
    with what the submission returned, within the tolerance floor
    (``_tolerance.FLOOR_ULPS`` ulps of the gradient's scale, at the
    submission's precision). A parameter is named only when exactly one
    hypothesis matches it on every problem; a right parameter, or one no
    hypothesis explains, is left out (its one-problem `diagnose` stands).

    The problems must be generic (no zeros, no logit at 0) and have at least
    two batch sizes, so that a factor N, a factor 1/N, a constant and a slope
    such as sigma'(0) = 1/4 cannot pass for one another.
    """
    sizes = sorted({int(e.x.shape[-2]) for e in evidence})
    if len(sizes) < 2:
        raise ValueError(f"`evidence` must hold problems of at least two batch sizes, got sizes {sizes}.")
    outputs = [(None, HEADS[net.head].output_error), *((m, m.delta) for m in OUTPUT_ERROR_MISTAKES.get(net.head, ()))]
    # grads[k][i]: the gradient on problem i with output error k, by the shipped backward pass.
    grads = []
    for _, delta_of in outputs:
        per_problem = []
        for e in evidence:
            layers = network.forward(e.params, e.x, net=net)
            delta = delta_of(layers[-1].z, layers[-1].a, e.y)
            per_problem.append(network.backward(e.params, e.x, layers, delta, net=net))
        grads.append(per_problem)
    returned = [{k: np.asarray(v) for k, v in e.returned.items()} for e in evidence]
    eps = float(np.finfo(_tolerance.precision_of([v.dtype for r in returned for v in r.values()])).eps)
    found: dict[str, str] = {}
    for name in net.param_names:
        if any(r.get(name) is None or r[name].shape != e.params[name].shape for r, e in zip(returned, evidence)):
            continue
        cf = [r[name].astype(np.float64) for r in returned]
        matches = []
        for (mistake, _), per_problem in zip(outputs, grads):
            scales = [max(float(np.abs(g).max()) for g in grad.values()) for grad in per_problem]
            for law, factor in LAWS.items():
                multipliers = [factor(e.x.shape[-2]) for e in evidence]
                bases = [k * grad[name] for k, grad in zip(multipliers, per_problem)]
                fitted = _best_factor(cf[0], bases[0])
                if fitted is None:
                    continue
                for c in (*NAMED_CONSTANTS, fitted):
                    if _agree(cf, [c * b for b in bases], [abs(c * k) * s for k, s in zip(multipliers, scales)], eps):
                        matches.append(_Hypothesis(mistake, law, c))
                        break
        if len(matches) == 1 and matches[0] != _Hypothesis(None, "constant", 1.0):
            found[name] = _describe(matches[0], net, sizes)
        elif not matches and cf[0].size > 1:
            # No cause, but perhaps a fact: a factor that moves from problem to problem.
            right = [grad[name] for grad in grads[0]]
            scales = [max(float(np.abs(g).max()) for g in grad.values()) for grad in grads[0]]
            factors = [_best_factor(f, g) or 0.0 for f, g in zip(cf, right)]
            if all(factors) and _agree(
                cf, [c * g for c, g in zip(factors, right)], [abs(c) * s for c, s in zip(factors, scales)], eps
            ):
                found[name] = (
                    "off by a factor that changes from problem to problem: "
                    + ", ".join(f"{_format_factor(c)} on a batch of {e.x.shape[-2]}" for c, e in zip(factors, evidence))
                    + " (so not a constant, N or 1/N)"
                )
    return found


def _agree(got: list[np.ndarray], want: list[np.ndarray], scales: list[float], eps: float) -> bool:
    """Whether `got` matches `want` on every problem, within the tolerance floor at precision `eps`.

    The floor alone (no measured noise term): `want` is computed in float64
    by the same few NumPy operations as any closed form, on a generic,
    well-conditioned problem, so a few ulps of `scales` is all it may miss by.
    """
    return all(
        bool(np.all(np.abs(g - w) <= _tolerance.tolerance(np.zeros(()), s, eps))) for g, w, s in zip(got, want, scales)
    )


def _describe(h: _Hypothesis, net: network.Network, sizes: list[int]) -> str:
    """The confirmed hypothesis as a sentence: what is wrong, what to change, and the evidence."""
    out = net.depth
    batches = " and ".join(map(str, sizes))
    parts = []
    if h.mistake is not None:
        parts.append(f"{h.mistake.text.format(L=out)} ({h.mistake.source})")
    if h.law == "N":
        parts.append(
            "a sum where a mean belongs: off by a factor N, the batch size; divide the sum over the samples by N "
            f"({BATCH_MEAN})"
        )
    elif h.law == "1/N":
        parts.append(
            f"divided by N twice: off by a factor 1/N; divide the sum over the samples by N once ({BATCH_MEAN})"
        )
    if h.constant != 1.0:
        parts.append(_constant(h.constant, net, alone=not parts))
    return "; and ".join(parts) + f"; confirmed by recomputation on batches of {batches}"


def _constant(c: float, net: network.Network, *, alone: bool) -> str:
    out = net.depth
    source = DERIVATION if net.head in ("identity", "sigmoid") else CANONICAL
    if c == -1.0:
        if not alone:
            return "the sign flipped"
        return (
            f"sign flipped: the closed form is -1 x the gradient on every batch size (an output error written "
            f"y - a{out} where a{out} - y belongs?); write delta{out} = a{out} - y ({source})"
        )
    text = f"off by a constant factor {_format_factor(c)} on every batch size"
    if c == 2.0 and net.head == "identity":
        return (
            f"{text} (a missing 1/2: the derivative of 1/2 (y - a{out})^2 is (a{out} - y), not 2 (a{out} - y); "
            f"{source})"
        )
    if c == 0.5:
        return f"{text} (an extra 1/2)"
    return text
