"""Diagnoses: one problem states facts; causes are confirmed by recomputation across batch sizes."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax.numpy as jnp
import numpy as np
import pytest

from gradcheck import _diagnose, check_gradients, heads, mlp, network
from gradcheck._confirm import Evidence, confirm
from gradcheck._search import GENERIC_BATCHES, generic_problems

Grad = Callable[[mlp.Params, np.ndarray, np.ndarray, mlp.Task], Any]


def _with_delta(delta2: Callable[[mlp.Activations, np.ndarray], np.ndarray]) -> Grad:
    """The shipped backward pass fed by a (wrong) output error."""

    def grad(p: mlp.Params, x: np.ndarray, y: np.ndarray, task: mlp.Task) -> mlp.Params:
        act = mlp.forward(p, x, task=task)
        return mlp.backward(p, x, act.a1, delta2(act, y))

    return grad


def _scaled(law: Callable[[int], float]) -> Grad:
    def grad(p: mlp.Params, x: np.ndarray, y: np.ndarray, task: mlp.Task) -> mlp.Params:
        return mlp.Params(*(law(len(x)) * g for g in mlp.closed_form_gradients(p, x, y, task=task)))

    return grad


def _slope(z: np.ndarray) -> np.ndarray:
    return mlp.sigmoid(z) * (1 - mlp.sigmoid(z))


def _extra_output_slope(act: mlp.Activations, y: np.ndarray) -> np.ndarray:
    return (act.a2 - y) * _slope(act.z2)  # the squared-error delta of a sigmoid output


def _confirm(task: mlp.Task, grad: Grad, batches: tuple[int, ...] = GENERIC_BATCHES) -> dict[str, str]:
    evidence = []
    for prob in generic_problems(task, 0):
        returned = dict(zip(mlp.Params._fields, grad(prob.params, prob.x, prob.y, task)))
        params = {k: np.asarray(v) for k, v in prob.params._asdict().items()}
        evidence.append(Evidence(params, prob.x, prob.y[:, None], returned))
    return confirm(mlp.network_for(task), evidence)


# --- one problem: facts, no causes -------------------------------------------------------


def test_one_problem_names_no_cause_for_a_factor_it_cannot_tell_apart() -> None:
    """The issue's counterexample: z2 = 0 (sigma'(z2) = 1/4) and 4 samples, where 1/4 looks like 1/N."""
    p = mlp.Params(np.zeros((1, 1)), np.zeros(1), np.zeros((1, 1)), np.zeros(1))
    x, y = np.array([[0.5], [-1.0], [2.0], [0.0]]), np.array([0.0, 0.0, 0.0, 1.0])
    grad = _with_delta(_extra_output_slope)
    report = check_gradients(partial(mlp.loss, task="classification"), partial(grad, task="classification"), p, x, y)
    assert report.verdict == "mismatch"
    for name in ("w2", "b2"):
        assert report[name].diagnosis == "off by a constant factor 0.25 (on this problem)"
    assert "divided by N" not in str(report)


# --- across problems: causes confirmed by recomputation -----------------------------------

EXTRA_SIGMOID_SLOPE = "an extra factor sigma'(z2) = a2 (1 - a2) in the output error: with log loss"
LINEAR_OUTPUT = "this output is linear (a2 = z2, da2/dz2 = 1), so delta2 = a2 - y"
CONFIRMED = "; confirmed by recomputation on batches of 5 and 7"

SEED_MISTAKES = [
    pytest.param("classification", _with_delta(_extra_output_slope), EXTRA_SIGMOID_SLOPE, id="cls-extra-slope"),
    pytest.param(
        "regression",
        _with_delta(_extra_output_slope),
        "an extra factor sigma'(z2) in the output error: " + LINEAR_OUTPUT,
        id="reg-sigmoid-slope-at-linear-output",
    ),
    pytest.param(
        "regression",
        _with_delta(lambda act, y: (act.a2 - y) * act.a2 * (1 - act.a2)),
        "an extra factor a2 (1 - a2) in the output error: " + LINEAR_OUTPUT,
        id="reg-a2(1-a2)-at-linear-output",
    ),
    pytest.param(
        "classification",
        _scaled(lambda n: n),
        "a sum where a mean belongs: off by a factor N, the batch size; divide the sum over the samples by N",
        id="sum-for-mean",
    ),
    pytest.param("regression", _scaled(lambda n: 1 / n), "divided by N twice: off by a factor 1/N", id="mean-twice"),
    pytest.param(
        "regression",
        _scaled(lambda n: 2.0),
        "off by a constant factor 2 on every batch size (a missing 1/2: the derivative of 1/2 (y - a2)^2",
        id="missing-half",
    ),
    pytest.param("classification", _scaled(lambda n: -1.0), "sign flipped: the closed form is -1 x", id="sign"),
    pytest.param(
        "classification",
        _scaled(lambda n: 1 + 1e-6),
        "off by a constant factor 1 + 1.0e-06 on every batch size",
        id="relative-1e-6",
    ),
    pytest.param(
        "classification",
        lambda p, x, y, task: [len(x) * g for g in _with_delta(_extra_output_slope)(p, x, y, task)],
        EXTRA_SIGMOID_SLOPE,
        id="extra-slope-and-sum",
    ),
]


@pytest.mark.parametrize(("task", "grad", "expected"), SEED_MISTAKES)
def test_confirm_names_the_mistake_for_every_parameter(task: mlp.Task, grad: Grad, expected: str) -> None:
    found = _confirm(task, grad)
    assert set(found) == {"w1", "b1", "w2", "b2"}, found
    for diagnosis in found.values():
        assert expected in diagnosis
        assert diagnosis.endswith(CONFIRMED)


def test_the_output_error_diagnosis_says_what_to_change_and_where_it_is_derived() -> None:
    (diagnosis,) = set(_confirm("classification", _with_delta(_extra_output_slope)).values())
    assert diagnosis == (
        "an extra factor sigma'(z2) = a2 (1 - a2) in the output error: with log loss the sigmoid's slope cancels, "
        "so delta2 = a2 - y, not (a2 - y) a2 (1 - a2) as for squared error; drop the factor "
        '(docs/derivation.md, "The output error")' + CONFIRMED
    )


def test_two_mistakes_at_once_are_both_named() -> None:
    found = _confirm(
        "classification", lambda p, x, y, t: [len(x) * g for g in _with_delta(_extra_output_slope)(p, x, y, t)]
    )
    assert "drop the factor" in found["w1"]
    assert "; and a sum where a mean belongs" in found["w1"]


def test_a_factor_that_moves_with_the_batch_is_stated_not_named() -> None:
    found = _confirm("regression", _scaled(lambda n: n * n))
    assert found["w1"] == (
        "off by a factor that changes from problem to problem: 25 on a batch of 5, 49 on a batch of 7 "
        "(so not a constant, N or 1/N)"
    )
    assert "b2" not in found  # one entry is proportional to anything: no fact to state


@pytest.mark.parametrize("task", mlp.TASKS)
def test_confirm_says_nothing_of_a_right_gradient(task: mlp.Task) -> None:
    assert _confirm(task, lambda p, x, y, t: mlp.closed_form_gradients(p, x, y, task=t)) == {}


def test_confirm_judges_a_float32_gradient_at_float32_precision() -> None:
    right = lambda p, x, y, t: [g.astype(np.float32) for g in mlp.closed_form_gradients(p, x, y, task=t)]  # noqa: E731
    wrong = lambda p, x, y, t: [g.astype(np.float32) for g in _with_delta(_extra_output_slope)(p, x, y, t)]  # noqa: E731
    assert _confirm("classification", right) == {}
    assert EXTRA_SIGMOID_SLOPE in _confirm("classification", wrong)["w1"]


def test_confirm_leaves_out_what_it_cannot_compare() -> None:
    def columns(p: mlp.Params, x: np.ndarray, y: np.ndarray, task: mlp.Task) -> list[np.ndarray]:
        g = _with_delta(_extra_output_slope)(p, x, y, task)
        return [g.w1, g.b1[:, None], g.w2, g.b2[:, None]]  # column-vector biases: a shape fact, not a cause

    assert set(_confirm("classification", columns)) == {"w1", "w2"}


def test_no_cause_is_named_where_the_problems_cannot_tell_causes_apart() -> None:
    """With every z2 = 0, sigma'(z2) = 1/4: an extra slope and a factor 1/4 fit equally well, so neither is named."""
    net = mlp.network_for("classification", inputs=1, hidden=1)
    # a1 = sigma(0) = 1/2 for every sample, so z2 = 2 * 1/2 - 1 = 0.
    params = {"w1": np.zeros((1, 1)), "b1": np.zeros(1), "w2": np.array([[2.0]]), "b2": np.array([-1.0])}
    evidence = []
    for n in (4, 6):
        x, y = np.linspace(-1.0, 1.0, n)[:, None], (np.arange(n) == 0).astype(float)[:, None]
        layers = network.forward(params, x, net=net)
        assert not layers[-1].z.any()
        delta = heads.HEADS["sigmoid-mse"].output_error(layers[-1].z, layers[-1].a, y)
        evidence.append(Evidence(params, x, y, network.backward(params, x, layers, delta, net=net)))
    assert confirm(net, evidence) == {}


# --- the general heads ----------------------------------------------------------------------


def _general_evidence(net: network.Network, delta_of: Callable[..., Any]) -> list[Evidence]:
    out = []
    for n in GENERIC_BATCHES:
        rng = np.random.default_rng(n)
        params = network.init_params(net, n)
        x = rng.normal(size=(n, net.layers[0]))
        k = net.layers[-1]
        if net.head.startswith("softmax"):
            y = np.eye(k)[rng.integers(0, k, n)]
        elif net.head == "poisson":
            y = rng.poisson(2.0, (n, k)).astype(float)
        else:
            y = rng.uniform(size=(n, k))
        layers = network.forward(params, x, net=net)
        returned = network.backward(params, x, layers, delta_of(layers[-1].z, layers[-1].a, y), net=net)
        out.append(Evidence(params, x, y, returned))
    return out


GENERAL_MISTAKES = [
    pytest.param(
        "softmax",
        heads.HEADS["softmax-mse"].output_error,
        "the softmax's Jacobian J = diag(a3) - a3 a3^T in the output error: with cross-entropy it cancels",
        id="softmax-with-squared-error-delta",
    ),
    pytest.param(
        "softmax",
        lambda z, a, y: (a - y) * a * (1 - a),
        "an extra factor a3 (1 - a3) in the output error: with a softmax and cross-entropy",
        id="softmax-with-sigmoid-slope",
    ),
    pytest.param(
        "poisson",
        lambda z, a, y: (a - y) * a,
        "an extra factor a3 = exp(z3) in the output error: with the Poisson loss the exp's slope cancels",
        id="poisson-with-squared-error-delta",
    ),
    pytest.param(
        "sigmoid-mse",
        heads.canonical_error,
        "a missing factor sigma'(z3) = a3 (1 - a3) in the output error: with squared error",
        id="sigmoid-mse-with-a-minus-y",
    ),
    pytest.param(
        "softmax-mse",
        heads.canonical_error,
        "a missing softmax Jacobian in the output error",
        id="softmax-mse-with-a-minus-y",
    ),
]


@pytest.mark.parametrize(("head", "delta_of", "expected"), GENERAL_MISTAKES)
def test_confirm_names_the_output_error_mistakes_of_every_head(
    head: str, delta_of: Callable[..., Any], expected: str
) -> None:
    net = network.Network((2, 4, 3, 3), activation="tanh", head=head)
    found = confirm(net, _general_evidence(net, delta_of))
    assert set(found) == set(net.param_names), found
    assert all(expected in d and 'docs/canonical.md, "The reason' in d for d in found.values()), found


@pytest.mark.parametrize("head", heads.HEADS)
def test_confirm_says_nothing_of_every_head_s_right_output_error(head: str) -> None:
    net = network.Network((2, 4, 3), activation="sigmoid", head=head)
    assert confirm(net, _general_evidence(net, heads.HEADS[head].output_error)) == {}


def test_confirm_needs_two_batch_sizes() -> None:
    net = network.Network((2, 3, 1), head="sigmoid")
    one_size = _general_evidence(net, heads.canonical_error)[:1] * 2
    with pytest.raises(ValueError, match=r"`evidence` must hold problems of at least two batch sizes, got sizes \[5\]"):
        confirm(net, one_size)


@pytest.mark.parametrize("shape", [(3, 3), (3, 2)], ids=["square", "not-square"])
def test_a_transpose_is_named_whatever_the_shape(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    p = mlp.init_params(0)._replace(w1=rng.normal(size=shape))
    x, y = rng.normal(size=(4, shape[1])), rng.normal(size=4)

    def transposed_w1(p: mlp.Params, x: np.ndarray, y: np.ndarray) -> mlp.Params:
        g = mlp.closed_form_gradients(p, x, y, task="regression")
        return g._replace(w1=g.w1.T)

    report = check_gradients(partial(mlp.loss, task="regression"), transposed_w1, p, x, y)
    assert report.verdict == "mismatch"
    assert (report["w1"].diagnosis or "").startswith("transposed:"), report["w1"].diagnosis
    assert [r.diagnosis for r in report.params if r.name != "w1"] == [None, None, None]


# --- the shape of the error: missing terms, factors per line, rank one -----------------------

RNG = np.random.default_rng(7)
JACOBIAN = RNG.normal(size=(4, 3))  # rank 3
TIGHT = np.full((4, 3), 1e-12)


@pytest.mark.parametrize(
    ("wrong", "expected"),
    [
        pytest.param(JACOBIAN + 0.3, "a missing term, the same in every entry", id="constant"),
        pytest.param(JACOBIAN + np.arange(4.0)[:, None], "a missing term, the same in each row", id="per-row-term"),
        pytest.param(JACOBIAN * [2.0, 0.5, 3.0], "each column (input) is off by its own factor (2, 0.5, 3)", id="cols"),
        pytest.param(
            JACOBIAN * np.array([[2.0], [0.5], [3.0], [-1.0]]), "each row (output) is off by its own factor", id="rows"
        ),
        pytest.param(
            JACOBIAN - np.outer([1.0, 2.0, -1.0, 0.5], [0.3, -0.2, 0.7]),
            "a missing term of rank one: closed form - reference is an outer product u v^T,",
            id="rank-one",
        ),
        pytest.param(
            JACOBIAN[:3] - np.outer([1.0, 2.0, -1.0], [1.0, 2.0, -1.0]),
            "an outer product u v^T, symmetric",
            id="rank-one-symmetric",
        ),
    ],
)
def test_a_matrix_error_s_shape_is_named(wrong: np.ndarray, expected: str) -> None:
    right = JACOBIAN[: wrong.shape[0]]
    assert expected in (_diagnose.matrix(wrong, right, TIGHT[: wrong.shape[0]]) or "")


@pytest.mark.parametrize(
    "wrong",
    [
        pytest.param(JACOBIAN + 1e-3 * RNG.normal(size=(4, 3)), id="noise"),
        pytest.param(2.0 * JACOBIAN, id="factor"),
        pytest.param(-JACOBIAN, id="sign"),
        pytest.param(JACOBIAN + np.outer([1.0, 2.0, -1.0, 0.5], [0.3, -0.2, 0.7]) + 1e-9, id="rank-one-and-noise"),
        pytest.param(np.tanh(JACOBIAN), id="elementwise"),
    ],
)
def test_no_matrix_shape_is_named_where_there_is_none(wrong: np.ndarray) -> None:
    assert _diagnose.matrix(wrong, JACOBIAN, TIGHT) is None


def test_no_rank_one_term_is_named_where_the_reference_is_of_rank_one() -> None:
    """Against a rank-one reference u v^T an error along u is of rank one whatever the mistake: it is named as
    what it also is (a factor per column), never as a missing term."""
    u = np.array([1.0, 2.0, 3.0])
    right = np.outer(u, [1.0, -1.0, 0.5])
    found = _diagnose.matrix(right + np.outer(u, [0.5, 2.0, 1.0]), right, np.full((3, 3), 1e-12)) or ""
    assert found.startswith("each column (input) is off by its own factor (1.5, -1, 3)"), found


def test_a_vector_is_no_matrix() -> None:
    assert _diagnose.matrix(np.ones(3), np.zeros(3), np.full(3, 1e-12)) is None


def _directions(jacobian: np.ndarray, wrong: np.ndarray, count: int = 3) -> tuple[list[np.ndarray], ...]:
    """JVPs along random tangents: the wrong matrix's and the right one's, and a tight tolerance."""
    tangents = [RNG.normal(size=jacobian.shape[1]) for _ in range(count)]
    return [wrong @ t for t in tangents], [jacobian @ t for t in tangents], [np.full(jacobian.shape[0], 1e-12)] * count


SOFTMAX_OUT = np.array([0.1, 0.2, 0.3, 0.4])
SOFTMAX_JACOBIAN = np.diag(SOFTMAX_OUT) - np.outer(SOFTMAX_OUT, SOFTMAX_OUT)
OUTPUT = _diagnose.Term("the output f(x)", "f(x)", SOFTMAX_OUT)


def test_across_directions_a_missing_rank_one_term_is_named_and_its_vector_too() -> None:
    cf, ad, tol = _directions(SOFTMAX_JACOBIAN, np.diag(SOFTMAX_OUT))  # the -s s^T forgotten
    found = _diagnose.across(cf, ad, tol, "tangent", [OUTPUT])
    assert found is not None
    assert found.startswith("a missing term of rank one: along all 3 random tangents")
    assert "proportional to the output f(x)" in found
    assert "proportional" not in (_diagnose.across(cf, ad, tol, "tangent") or "")  # not without the output
    mean = np.eye(4) - 0.25  # the Jacobian of x - mean(x)
    cf, ad, tol = _directions(mean, np.eye(4))
    assert "the same in every entry" in (_diagnose.across(cf, ad, tol, "tangent") or "")


def test_across_directions_a_factor_per_element_is_named() -> None:
    slope = np.array([0.5, 2.0, 1.5, 3.0])
    cf, ad, tol = _directions(np.diag(1 - np.tanh(slope) ** 2), np.diag(1 - np.tanh(slope)))
    found = _diagnose.across(cf, ad, tol, "tangent")
    assert (found or "").startswith("each element is off by its own factor, the same along all 3 random tangents")


@pytest.mark.parametrize(
    ("wrong", "count"),
    [
        pytest.param(SOFTMAX_JACOBIAN + 1e-3 * RNG.normal(size=(4, 4)), 3, id="noise"),
        pytest.param(SOFTMAX_JACOBIAN + np.diag([1.0, 2.0, 3.0, 4.0]), 3, id="rank-four-error"),
        pytest.param(2.0 * SOFTMAX_JACOBIAN, 3, id="factor"),
        pytest.param(-SOFTMAX_JACOBIAN, 3, id="sign"),
        pytest.param(np.diag(SOFTMAX_OUT), 1, id="one-direction"),
    ],
)
def test_across_directions_nothing_is_named_where_there_is_nothing(wrong: np.ndarray, count: int) -> None:
    cf, ad, tol = _directions(SOFTMAX_JACOBIAN, wrong, count)
    assert _diagnose.across(cf, ad, tol, "tangent", [OUTPUT]) is None


def test_a_missing_term_proportional_to_a_known_array_is_named_in_its_words() -> None:
    ad = RNG.normal(size=(3, 2))
    w = RNG.normal(size=(3, 2))
    term = _diagnose.Term("`W` itself", "`W`", w, lambda k: f" (cause {k:g})")
    found = _diagnose.diagnose("W", ad - 0.01 * w, ad, np.full((3, 2), 1e-12), {}, [term])
    assert found == "a missing term proportional to `W` itself: closed form - reference = -0.01 x `W` (cause -0.01)"
    noisy = ad + 1e-3 * RNG.normal(size=(3, 2))
    assert (_diagnose.diagnose("W", noisy, ad, np.full((3, 2), 1e-12), {}, [term]) or "").startswith("unclassified")


def test_a_forgotten_weight_decay_is_named_by_check_gradients() -> None:
    def loss(p: dict[str, Any], x: np.ndarray) -> Any:
        return jnp.sum(jnp.tanh(x @ p["W"])) + 0.5e-3 * jnp.sum(p["W"] ** 2)

    def grad(p: dict[str, Any], x: np.ndarray) -> dict[str, np.ndarray]:
        return {"W": x.T @ (1 - np.tanh(x @ p["W"]) ** 2)}  # the penalty's 1e-3 W forgotten

    x = RNG.normal(size=(5, 3))
    report = check_gradients(loss, grad, {"W": RNG.normal(size=(3, 2))}, x)
    assert report["W"].diagnosis == (
        "a missing term proportional to `W` itself: closed form - reference = -0.001 x `W` "
        "(the gradient 0.001 `W` of a penalty (0.001/2) ||`W`||^2, weight decay, forgotten?)"
    )


def test_a_batch_norms_missing_mean_and_variance_terms_are_named_along_the_batch_axis() -> None:
    """CS231n's batchnorm_backward without its mean term, or its variance term: the error in each feature's
    column is a multiple of one vector along the batch axis (ones, or the normalised input), as a layer
    norm's is along its rows."""
    from gradcheck import check_vjp
    from tests.derivations import (
        batch_norm,
        batch_norm_vjp,
        batch_norm_vjp_no_mean_term,
        batch_norm_vjp_no_variance_term,
    )

    x = np.random.default_rng(0).standard_normal((6, 4))
    assert check_vjp(batch_norm, batch_norm_vjp, x).ok
    no_mean = check_vjp(batch_norm, batch_norm_vjp_no_mean_term, x)["primals[0]"].diagnosis or ""
    assert "each slice along axis 0" in no_mean
    assert "the same in every entry" in no_mean
    no_variance = check_vjp(batch_norm, batch_norm_vjp_no_variance_term, x)["primals[0]"].diagnosis or ""
    assert "each slice along axis 0" in no_variance
    assert "proportional to the output f(x)" in no_variance


def test_a_carry_missing_along_an_axis_is_named_and_a_triangle_of_wrong_entries_is_not() -> None:
    """Right at the last step and wholly wrong at every earlier one: a recurrence's carry missing. A
    Hessian wrong below its diagonal alone (its first row right too) is no such thing."""
    rng = np.random.default_rng(0)
    ad = rng.uniform(0.5, 2.0, (2, 4, 3))  # (batch, time, features)
    tol = np.full(ad.shape, 1e-12)
    carried = ad.copy()
    carried[:, :-1] += rng.uniform(0.1, 1.0, (2, 3, 3))  # every step but the last wrong
    said = _diagnose.diagnose("dx", carried, ad, tol, {"dx": (ad, tol)}) or ""
    assert "along axis 1 the last index is right and every earlier one is wrong" in said
    hessian = rng.uniform(0.5, 2.0, (3, 3))
    lower = hessian + np.tril(np.ones((3, 3)), -1)
    said = _diagnose.diagnose("hessian", lower, hessian, np.full((3, 3), 1e-12), {}) or ""
    assert "carried" not in said
    assert "only 3 of 9 entries wrong" in said
