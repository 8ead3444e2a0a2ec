"""The general network: every head and activation, the δ = a - y identity, and kinks.

- The closed form passes for every head × activation in every regime of
  `problems.NET_REGIMES`, ReLU included (its elements at a kink are listed,
  not judged).
- For every canonical head, Hypothesis finds no problem where autodiff's
  dL/dz differs from a - y; for the non-canonical pairs it finds one, and
  shrinks it to a single sample.
- Points exactly on a ReLU kink are reported as non-differentiable; points
  beside one are checked as usual.
- Wrong derivations of the general network are caught.
"""

from __future__ import annotations

import itertools
from functools import partial
from typing import Any

import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gradcheck import Report, _check, _references, activations, check_gradients, heads, mlp, network, problems
from gradcheck import strategies as gs
from gradcheck._references._trace import pure_loss


def check(prob: problems.NetProblem, grad_fn: Any = None) -> Report:
    loss = partial(network.loss, net=prob.net)
    grads = grad_fn or partial(network.closed_form_gradients, net=prob.net)
    return check_gradients(loss, grads, prob.params, prob.x, prob.y)


# --- the seed is one instance ---------------------------------------------------------


@given(gs.problems())
def test_seed_network_is_the_general_network_with_one_output(prob: problems.Problem) -> None:
    net = mlp.network_for(prob.task, inputs=prob.x.shape[1], hidden=prob.params.w1.shape[0])
    params, y = prob.params._asdict(), prob.y[:, None]
    assert network.loss(params, prob.x, y, net=net) == mlp.loss(*prob[:3], task=prob.task)
    general = network.closed_form_gradients(params, prob.x, y, net=net)
    seed = mlp.closed_form_gradients(*prob[:3], task=prob.task)
    for name, g in seed._asdict().items():
        np.testing.assert_allclose(general[name], g, rtol=1e-12, atol=1e-15 * max(1.0, np.abs(g).max()))


# --- every head and activation, in every regime ---------------------------------------

ARCHITECTURE = (3, 4, 3, 2)


@pytest.mark.parametrize(("head", "activation"), list(itertools.product(heads.HEADS, activations.ACTIVATIONS)))
def test_closed_form_passes_in_every_regime(head: str, activation: str) -> None:
    net = network.Network(ARCHITECTURE, activation=activation, head=head)
    for i, regime in enumerate(problems.NET_REGIMES):
        for s in range(2 if activation == "relu" else 1):
            prob = problems.sample_net(np.random.default_rng([i, s]), net, regime=regime)
            report = check(prob)
            # ReLU too, in every regime (kink and tiny included): elements at a kink are listed,
            # not judged, and the rest must pass.
            assert report.verdict == "pass", (regime, str(report))


@settings(max_examples=max(10, settings.default.max_examples // 3))  # every example compiles a new architecture
@given(
    gs.network_problems(
        net=gs.networks(head=st.sampled_from(tuple(heads.HEADS)), max_depth=2, max_width=2), regime="any"
    )
)
def test_closed_form_passes_on_generated_problems_in_every_regime(prob: problems.NetProblem) -> None:
    note(prob.describe())
    report = check(prob)
    assert report.verdict == "pass", str(report)


# --- the identity dL/dz = a - y -------------------------------------------------------


def output_problems(head: str) -> st.SearchStrategy[tuple[np.ndarray, np.ndarray]]:
    """Logits z (N, K) and targets y in the form `head` expects."""
    min_k = 2 if head.startswith("softmax") else 1

    def build(shape: tuple[int, int]) -> st.SearchStrategy[tuple[np.ndarray, np.ndarray]]:
        z = hnp.arrays(np.float64, shape, elements=st.floats(-6, 6, allow_subnormal=False))
        u = hnp.arrays(np.float64, shape, elements=st.floats(0, 1, allow_subnormal=False))
        soft = st.booleans()
        return st.tuples(z, st.tuples(u, soft).map(lambda us: problems._targets(head, us[0], soft=us[1])))

    return st.tuples(st.integers(1, 2), st.integers(min_k, 3)).flatmap(build)


@pure_loss  # reads nothing but its arguments: traced once per shape, not on every call
def summed_loss(z: dict[str, Any], y: Any, *, head: str) -> Any:
    return heads.HEADS[head].per_sample_loss(z["z"], y).sum()


def identity_report(head: str, z: np.ndarray, y: np.ndarray, *, output_error: Any = heads.canonical_error) -> Report:
    """Autodiff's dL/dz against a claimed output error, through the full tolerance model."""
    h = heads.HEADS[head]
    return check_gradients(
        partial(summed_loss, head=head), lambda p, y: {"z": output_error(p["z"], h.activation(p["z"]), y)}, {"z": z}, y
    )


@pytest.mark.parametrize("head", heads.CANONICAL)
def test_canonical_heads_have_output_error_a_minus_y(head: str) -> None:
    @given(output_problems(head))
    def identity_holds(zy: tuple[np.ndarray, np.ndarray]) -> None:
        assert identity_report(head, *zy).verdict == "pass"

    identity_holds()


NON_CANONICAL = tuple(name for name, h in heads.HEADS.items() if not h.canonical)


@pytest.mark.parametrize("head", NON_CANONICAL)
def test_non_canonical_heads_break_the_identity_and_shrink_to_one_sample(head: str) -> None:
    from hypothesis import find

    z, y = find(
        output_problems(head),
        lambda zy: identity_report(head, *zy).verdict == "mismatch",
        settings=settings(database=None, max_examples=200),
    )
    assert z.shape[0] == 1, "shrunk to a single sample"
    assert z.shape[1] == (2 if head.startswith("softmax") else 1), "and to the fewest outputs"
    # The head's own δ, (a - y) a (1 - a) and its softmax analogue, is right there.
    assert identity_report(head, z, y, output_error=heads.HEADS[head].output_error).verdict == "pass"


@pytest.mark.parametrize("head", NON_CANONICAL)
def test_writing_a_minus_y_for_a_non_canonical_head_is_caught(head: str) -> None:
    net = network.Network(ARCHITECTURE, activation="tanh", head=head)

    def trap(p: Any, x: Any, y: Any) -> Any:  # the classic mistake: the canonical δ for any head
        p, x, y = network.validate_problem(p, x, y, net=net)
        layers = network.forward(p, x, net=net)
        return network.backward(p, x, layers, layers[-1].a - y, net=net)

    for s in range(3):
        report = check(problems.sample_net(np.random.default_rng(s), net), trap)
        assert report.verdict == "mismatch"
        assert {p.name for p in report.params if p.status == "mismatch"} == set(net.param_names)


# --- kinks ----------------------------------------------------------------------------

RELU = network.Network((2, 3, 1), activation="relu", head="identity")


def kink_problem(offset: float) -> problems.NetProblem:
    """Sample 0 puts hidden unit 0 at z1 = offset: on the kink when 0."""
    prob = problems.sample_net(np.random.default_rng(7), RELU, regime="kink")
    params = {**prob.params, "b1": prob.params["b1"].copy()}
    params["b1"][0] = offset
    return prob._replace(params=params)


def test_a_point_on_a_relu_kink_is_listed_not_judged() -> None:
    prob = kink_problem(0.0)
    assert network.forward(prob.params, prob.x, net=RELU)[0].z[0, 0] == 0.0  # exactly on the kink
    report = check(prob)
    assert report.verdict == "pass", str(report)
    assert (0,) in report["b1"].not_judged
    assert "b1: 1 element at a kink (a non-differentiable point), not judged: (0,)" in str(report)


def test_a_wrong_relu_derivative_is_caught_on_the_elements_away_from_the_kink(monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = activations.Activation("relu", activations.relu, lambda z, a: a)
    monkeypatch.setitem(activations.ACTIVATIONS, "relu", wrong)
    report = check(kink_problem(0.0))
    assert report.verdict == "mismatch", str(report)
    assert (0,) in report["b1"].not_judged


@pytest.mark.parametrize("offset", [1e-3, -1e-3])
def test_a_step_that_straddles_a_nearby_kink_is_refined_until_it_does_not(offset: float) -> None:
    # The first step (2^-7) reaches across the kink at 1e-3; the refined one (2^-11) does not.
    report = check(kink_problem(offset))
    assert report.verdict == "pass", str(report)


@pytest.mark.parametrize("offset", [1e-6, -1e-6])
def test_a_kink_closer_than_the_finest_step_is_not_judged(offset: float) -> None:
    # Even the finest step (2^-15, about 3e-5) reaches across a kink at 1e-6: within the
    # finite differences' resolution it is a kink, listed and not judged.
    report = check(kink_problem(offset))
    assert report.verdict == "pass", str(report)
    assert (0,) in report["b1"].not_judged


@pytest.mark.parametrize("offset", [0.25, -0.25])
def test_a_point_well_beside_a_kink_is_checked_as_usual(offset: float) -> None:
    assert check(kink_problem(offset)).verdict == "pass"


def test_a_wrong_relu_derivative_is_still_caught_beside_a_kink(monkeypatch: pytest.MonkeyPatch) -> None:
    # The classic slip: relu'(z) written as its output a instead of 1[z > 0].
    wrong = activations.Activation("relu", activations.relu, lambda z, a: a)
    monkeypatch.setitem(activations.ACTIVATIONS, "relu", wrong)
    assert check(kink_problem(0.25)).verdict == "mismatch"


@pytest.mark.parametrize("wrong_slope", [False, True])
@pytest.mark.parametrize("offset", [0.0, 1e-9, -1e-6, 1e-3, -0.25])
def test_the_screen_judges_no_kink_itself(offset: float, wrong_slope: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """At or near a ReLU kink, right or wrong: a kink the screen finds sends the check to the measured noise
    (its kink tests are less sensitive, so they may judge the element), and the report is the measured one."""
    if wrong_slope:
        wrong = activations.Activation("relu", activations.relu, lambda z, a: a)
        monkeypatch.setitem(activations.ACTIVATIONS, "relu", wrong)
    with _references.forced("numpy"):  # one path for both: the paths' noise draws differ
        screened = check(kink_problem(offset))
        with _references.unscreened():
            measured = check(kink_problem(offset))
    if _check.SCREENED_NOTE in screened.notes:
        assert screened.verdict == measured.verdict == "pass"
        assert not any(p.not_judged for p in (*screened.params, *measured.params))
    else:
        assert str(screened) == str(measured)


# --- wrong derivations of the general network -------------------------------------------


@pytest.mark.parametrize(
    ("activation", "derivative"),
    [
        ("tanh", lambda z, a: 1.0 - z * z),  # tanh' written with z instead of a
        ("sigmoid", lambda z, a: a),  # sigma' = sigma
        ("relu", lambda z, a: np.ones_like(z)),  # relu' = 1 everywhere
    ],
    ids=["tanh-prime-of-z", "sigmoid-prime-is-sigmoid", "relu-prime-is-one"],
)
def test_wrong_hidden_derivatives_are_caught(activation: str, derivative: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    net = network.Network(ARCHITECTURE, activation=activation, head="softmax")
    prob = [problems.sample_net(np.random.default_rng(s), net) for s in range(3)]
    monkeypatch.setitem(
        activations.ACTIVATIONS, activation, activations.ACTIVATIONS[activation]._replace(derivative=derivative)
    )
    for p in prob:
        report = check(p)
        assert report.verdict == "mismatch"
        # The output layer's gradient does not use f', and must still pass.
        assert report["w3"].status == report["b3"].status == "pass"


def test_the_noncanonical_trap_example_shrinks_to_one_logit() -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "examples" / "noncanonical_trap.py"
    done = subprocess.run([sys.executable, "-W", "error", str(script)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "minimal counterexample: z = [[0.0]]  y = [[0.0]]"
    assert lines[1].startswith("gradcheck: MISMATCH in 1 of 1 parameters")
    assert lines[-1] == "with δ = (a − y) a (1 − a): pass"


def test_a_tiny_relu_network_whose_kinks_lie_within_every_step_passes() -> None:
    """Pre-activations of 1e-7: every finite-difference step reaches across a kink, yet autodiff's
    own gradient jumps there, so the elements are found to be at a kink and the rest is judged."""
    net = network.Network((2, 6, 1), activation="relu", head="identity")
    for i in range(6):
        prob = problems.sample_net(np.random.default_rng([12, i]), net, regime="tiny", batch=8)
        report = check_gradients(
            partial(network.loss, net=net), partial(network.closed_form_gradients, net=net), prob.params, prob.x, prob.y
        )
        assert report.verdict == "pass", str(report)
