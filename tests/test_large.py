"""Models above `MAX_COORDINATES` parameters: elementwise against autodiff, finite differences along directions."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradcheck import _check, _references, check_gradients, mlp

INPUTS, HIDDEN = 64, 64  # 4,225 parameters: above the coordinate-wise limit
TASK: mlp.Task = "classification"


@pytest.fixture(scope="module")
def problem() -> tuple[mlp.Params, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    params = mlp.init_params(0, inputs=INPUTS, hidden=HIDDEN)
    return params, rng.normal(size=(16, INPUTS)), (rng.random(16) > 0.5).astype(float)


def check(problem: Any, grad: Any) -> Any:
    return check_gradients(partial(mlp.loss, task=TASK), grad, *problem)


def test_the_model_is_above_the_coordinate_limit(problem: Any) -> None:
    assert sum(a.size for a in problem[0]) > _references.MAX_COORDINATES


def test_a_correct_large_model_passes_with_directional_finite_differences(problem: Any) -> None:
    report = check(problem, partial(mlp.closed_form_gradients, task=TASK))
    assert report.verdict == "pass", str(report)
    assert any(f"finite differences along {_references.DIRECTIONS} random ±1 directions" in n for n in report.notes)
    assert np.isnan(report["w1"].finite_diff)  # no elementwise finite differences


def test_a_relative_error_of_1e8_in_one_entry_is_caught_there(problem: Any) -> None:
    def wrong(p: Any, x: Any, y: Any) -> mlp.Params:
        g = mlp.closed_form_gradients(p, x, y, task=TASK)
        w1 = g.w1.copy()
        i = np.unravel_index(np.argmax(np.abs(w1)), w1.shape)
        w1[i] *= 1 + 1e-8
        return g._replace(w1=w1)

    report = check(problem, wrong)
    assert report.verdict == "mismatch"
    assert [p.name for p in report.params if p.status == "mismatch"] == ["w1"]
    expected = np.unravel_index(np.argmax(np.abs(wrong(*problem).w1)), (HIDDEN, INPUTS))
    assert report["w1"].index == tuple(int(i) for i in expected)


def test_a_missing_sigmoid_slope_is_caught_with_a_taylor_rate_near_1(problem: Any) -> None:
    def missing_slope(p: Any, x: Any, y: Any) -> mlp.Params:
        act = mlp.forward(p, x, task=TASK)
        delta2 = act.a2 - y
        g = mlp.backward(p, x, act.a1, delta2)
        d1 = delta2[:, None] * p.w2  # sigma'(z1) forgotten
        return g._replace(w1=d1.T @ x / len(x), b1=d1.mean(axis=0))

    report = check(problem, missing_slope)
    assert {p.name for p in report.params if p.status == "mismatch"} == {"w1", "b1"}
    assert 0.8 < report.taylor_rate < 1.2


def test_an_elementwise_mismatch_survives_doubt_along_the_directions() -> None:
    # w2 is doubled; the loss also has a term autodiff cannot see (on b1), so the
    # directional finite differences disagree with autodiff. They still confirm
    # that the closed form is farther from them than autodiff is: w2 stays blamed.
    import jax

    from gradcheck import network, problems

    net = network.Network((20, 24, 3), activation="tanh", head="softmax")
    prob = problems.sample_net(np.random.default_rng(0), net, batch=16)
    assert sum(v.size for v in prob.params.values()) > _references.MAX_COORDINATES

    def doubled_w2(p: Any, x: Any, y: Any) -> Any:
        out = network.closed_form_gradients(p, x, y, net=net)
        return {**out, "w2": 2 * out["w2"]}

    def loss(p: Any, x: Any, y: Any) -> Any:
        return network.loss(p, x, y, net=net) + 1e-2 * jax.lax.stop_gradient(p["b1"]).sum()

    report = check_gradients(loss, doubled_w2, prob.params, prob.x, prob.y)
    assert report.verdict == "mismatch"
    assert report["w2"].status == "mismatch"
    assert report["w1"].status == "doubt"


# --- the screen: the gradient's noise measured only where the floor does not settle it ----


def test_a_correct_large_model_is_settled_by_the_screen(problem: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    grads = partial(mlp.closed_form_gradients, task=TASK)
    screened = check(problem, grads)
    assert screened.verdict == "pass"
    assert _check.SCREENED_NOTE in screened.notes
    monkeypatch.setattr(_references, "SCREEN", False)
    measured = check(problem, grads)
    assert measured.verdict == "pass"
    assert _check.SCREENED_NOTE not in measured.notes
    for s, m in zip(screened.params, measured.params):
        # The screen's tolerance is the floor, which the measured noise only widens.
        assert 0.0 < s.tolerance <= m.tolerance, (s.name, s.tolerance, m.tolerance)
        assert s.tolerance_used >= m.tolerance_used


@settings(max_examples=12, deadline=None)
@given(
    leaf=st.integers(0, 3),
    position=st.floats(0.0, 1.0, exclude_max=True),
    log_rel=st.floats(-16.0, -6.0),
)
def test_the_screen_changes_no_verdict_and_judges_no_failure(
    problem: Any, leaf: int, position: float, log_rel: float
) -> None:
    """A relative error anywhere, of any size: the verdict is the unscreened check's, and a
    check the screen does not pass is reported exactly as without the screen."""

    def nudged(p: Any, x: Any, y: Any) -> mlp.Params:
        g = [np.array(a, copy=True) for a in mlp.closed_form_gradients(p, x, y, task=TASK)]
        flat = g[leaf].reshape(-1)
        flat[int(position * flat.size)] *= 1 + 10**log_rel
        return mlp.Params(*g)

    screened = check(problem, nudged)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_references, "SCREEN", False)
        measured = check(problem, nudged)
    assert screened.verdict == measured.verdict
    if _check.SCREENED_NOTE not in screened.notes:
        assert str(screened) == str(measured)
    else:
        assert screened.verdict == "pass"


def test_a_relative_error_of_1e8_is_judged_on_the_measured_noise(problem: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def wrong(p: Any, x: Any, y: Any) -> mlp.Params:
        g = mlp.closed_form_gradients(p, x, y, task=TASK)
        return g._replace(w2=g.w2 * (1 + 1e-8))

    report = check(problem, wrong)
    assert report.verdict == "mismatch"
    assert _check.SCREENED_NOTE not in report.notes
    monkeypatch.setattr(_references, "SCREEN", False)
    assert str(report) == str(check(problem, wrong))
