"""Confirm a mistake's cause across problems: hypotheses recomputed with the shipped backward pass.

`confirm` tests hypotheses across problems of at least two batch sizes: the
right output error or a likely wrong one (`OUTPUT_ERROR_MISTAKES`), scaled by a
constant, by N or by 1/N. Each is recomputed with the shipped backward pass
(`network.backward`) and compared with the submission; a cause is named only
when exactly one hypothesis matches on every problem. One problem alone
(`_diagnose.diagnose`) cannot tell a cause from a coincidence: with a batch of
4 and z2 = 0, sigma'(z2) = 1/4 looks just like 1/N.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from gradcheck import _tolerance, network
from gradcheck._diagnose import best_factor, format_factor
from gradcheck.activations import sigmoid
from gradcheck.heads import HEADS, canonical_error

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
                fitted = best_factor(cf[0], bases[0])
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
            factors = [best_factor(f, g) or 0.0 for f, g in zip(cf, right)]
            if all(factors) and _agree(
                cf, [c * g for c, g in zip(factors, right)], [abs(c) * s for c, s in zip(factors, scales)], eps
            ):
                found[name] = (
                    "off by a factor that changes from problem to problem: "
                    + ", ".join(f"{format_factor(c)} on a batch of {e.x.shape[-2]}" for c, e in zip(factors, evidence))
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
    text = f"off by a constant factor {format_factor(c)} on every batch size"
    if c == 2.0 and net.head == "identity":
        return (
            f"{text} (a missing 1/2: the derivative of 1/2 (y - a{out})^2 is (a{out} - y), not 2 (a{out} - y); "
            f"{source})"
        )
    if c == 0.5:
        return f"{text} (an extra 1/2)"
    return text
