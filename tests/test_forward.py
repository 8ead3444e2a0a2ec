"""Losses written in NumPy, as course code writes forward passes: checked against their finite differences alone."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gradcheck import check_gradients


def affine_relu_loss(p: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    """A two-layer net's forward pass as a course writes it: x.dot(w), a boolean mask, np.maximum."""
    h = x.dot(p["W1"]) + p["b1"]  # (N, H)
    h = h * (h > 0)  # ReLU by a mask
    scores = h.dot(p["W2"]) + p["b2"]  # (N,)
    return float(0.5 * np.mean((scores - y) ** 2))


def affine_relu_grads(p: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, *, slip: float = 0.0) -> dict:  # type: ignore[type-arg]
    h_pre = x.dot(p["W1"]) + p["b1"]
    mask = h_pre > 0
    h = np.maximum(h_pre, 0)
    d_scores = (h.dot(p["W2"]) + p["b2"] - y) / len(y)  # dL/dscores, (N,)
    d_h = np.outer(d_scores, p["W2"]) * mask  # through the ReLU, (N, H)
    return {
        "W1": x.T.dot(d_h),
        "b1": d_h.sum(axis=0) * (1 + slip),
        "W2": h.T.dot(d_scores),
        "b2": d_scores.sum(),
    }


def _problem(seed: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = {"W1": rng.normal(size=(3, 4)), "b1": rng.normal(size=4), "W2": rng.normal(size=4), "b2": np.array(0.3)}
    return p, rng.normal(size=(6, 3)), rng.normal(size=6)


@pytest.mark.parametrize("seed", range(4))
def test_a_numpy_forward_pass_is_checked_and_the_report_says_against_what(seed: int) -> None:
    report = check_gradients(affine_relu_loss, affine_relu_grads, *_problem(seed))
    assert report.verdict == "pass", str(report)
    assert "no autodiff reference: `loss_fn` cannot be traced by JAX (" in str(report)


@pytest.mark.parametrize("slip", [1e-2, 1e-4, 1e-6])
def test_a_mistake_in_its_gradient_is_caught_and_named(slip: float) -> None:
    def wrong(p: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> dict:  # type: ignore[type-arg]
        return affine_relu_grads(p, x, y, slip=slip)

    report = check_gradients(affine_relu_loss, wrong, *_problem(0))
    assert report.verdict == "mismatch", str(report)
    assert [r.name for r in report.params if r.status == "mismatch"] == ["b1"]
    assert "not rounding, a mistake in the derivation" in str(report)


@settings(max_examples=25)
@given(
    w=hnp.arrays(np.float64, st.integers(1, 4), elements=st.floats(-2, 2)),
    x=hnp.arrays(np.float64, (5, 4), elements=st.floats(-2, 2)),
)
def test_a_smooth_numpy_loss_passes_wherever_it_is_drawn(w: np.ndarray, x: np.ndarray) -> None:
    """log-sum-exp of scores written in NumPy, with its right gradient: no false alarm from the finite
    differences' own error."""
    x = x[:, : w.size]

    def loss(p: dict[str, np.ndarray], x: np.ndarray) -> float:
        s = x.dot(p["w"])
        m = s.max()
        return float(m + np.log(np.exp(s - m).sum()))

    def grad(p: dict[str, np.ndarray], x: np.ndarray) -> dict[str, np.ndarray]:
        s = x.dot(p["w"])
        e = np.exp(s - s.max())
        return {"w": x.T.dot(e / e.sum())}

    report = check_gradients(loss, grad, {"w": w}, x)
    assert report.verdict == "pass", str(report)


def test_a_numpy_loss_too_large_for_every_coordinate_says_what_to_do() -> None:
    def loss(p: dict[str, np.ndarray]) -> float:
        return float(np.sum(np.asarray(p["w"]) ** 2))

    with pytest.raises(ValueError, match=r"cannot be traced by JAX(.|\n)*Write the loss with jax.numpy"):
        check_gradients(loss, lambda p: {"w": 2 * p["w"]}, {"w": np.ones(5000)})


def test_a_loss_that_fails_for_another_reason_is_still_a_clear_error() -> None:
    def broken(p: dict[str, Any]) -> Any:
        return p["w"] @ np.ones(7)  # a shape error, under tracing or not

    with pytest.raises(ValueError, match="failed under JAX tracing"):
        check_gradients(broken, lambda p: {"w": p["w"]}, {"w": np.ones(3)})


def test_the_error_bound_of_each_coordinate_is_the_one_of_its_last_refinement() -> None:
    """Refinement retakes the finite differences where they are in doubt, at a finer step each time: a
    coordinate left out of a later refinement keeps the error bound of the one before (the report's note
    quotes these bounds), not its first one."""
    import jax

    from gradcheck._forward import ForwardEvaluation

    def loss(p: dict[str, Any]) -> float:  # a kink at 0 in each coordinate, and a smooth part
        return float(np.sum(np.abs(p["w"])) + np.sum(p["w"] ** 2))

    leaves, treedef = jax.tree_util.tree_flatten({"w": np.array([1e-3, 1.5e-3, 8e-4, 1e-5, 0.7])})
    evaluation = ForwardEvaluation(loss, treedef, leaves, (), 0, ValueError("not traceable"))
    assert evaluation.reference_error is not None
    first = evaluation.reference_error.copy()
    evaluation.finer(2.0**-4, np.array([1, 1, 1, 1, 0], bool))
    after_one = evaluation.reference_error.copy()
    refs = evaluation.finer(2.0**-8, np.array([0, 0, 0, 1, 0], bool))
    after_two = evaluation.reference_error
    assert not np.array_equal(after_one[:3], first[:3])  # the first refinement moved them
    np.testing.assert_array_equal(after_two[:3], after_one[:3])  # and the second left them as it found them
    np.testing.assert_array_equal(after_two[3], refs.fd_error[3])  # the coordinate refined again: its new bound
    np.testing.assert_array_equal(after_two[4], first[4])  # never refined: its first


def _l1_plus_l2(p: dict[str, Any]) -> float:
    """|w|_1 + |w|^2 in NumPy: a kink at 0 in every coordinate, within the first finite-difference step of the
    small ones."""
    return float(np.sum(np.abs(p["w"])) + np.sum(p["w"] ** 2))


def test_a_kink_within_the_first_step_is_refined_past_not_left_in_doubt() -> None:
    """The finite differences stand in for autodiff here: where refinement retakes them at a finer step (the
    first straddled the kink at 0), the stand-in follows, and the right gradient passes; a wrong one is
    still blamed there."""
    w = np.array([3e-3, 2e-3, 4e-3, 1e-4, 5e-5, 0.7])
    right = check_gradients(_l1_plus_l2, lambda p: {"w": np.sign(p["w"]) + 2 * p["w"]}, {"w": w})
    assert right.verdict == "pass", right
    # |w|' written as -1 near 0 (a sign mistake where the kink is close): blamed where it is wrong.
    wrong = check_gradients(
        _l1_plus_l2, lambda p: {"w": np.where(np.abs(p["w"]) < 1e-3, -1.0, np.sign(p["w"])) + 2 * p["w"]}, {"w": w}
    )
    assert wrong.verdict == "mismatch", wrong
    assert wrong["w"].index in ((3,), (4,))
