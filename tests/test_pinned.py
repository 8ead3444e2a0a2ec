"""Behaviour pinned with literal numbers: each test fails on a careless change that the rest of the suite
let through (issue 27's audit, one survivor each; the change each catches is named in its docstring).

The numbers are written here, not read from the code under test: a test that reads ``FLOOR_ULPS`` from
`_tolerance` moves with it and catches nothing.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import textwrap
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gradcheck import _tolerance, check_gradients, check_vjp, cli, mlp
from gradcheck._check import SCREENED_NOTE
from gradcheck._references import _finite_diff, _interpret
from gradcheck.pytest_plugin import check_property

EPS = 2.0**-52  # float64's machine epsilon, written out
TINY = 2.0**-1022  # float64's smallest normal number


def test_the_tolerance_is_the_documented_formula_term_by_term() -> None:
    """``16 noise + 256 eps scale + floor`` (docs/tolerances.md): catches NOISE_SAFETY 16 -> 4,
    FLOOR_ULPS 256 -> 64, and the floor dropped."""
    noise = np.array([0.0, 1e-10, 0.0])
    tol = _tolerance.tolerance(noise, np.array([0.0, 0.0, 1.0]), EPS)
    assert tol[0] == pytest.approx(np.sqrt(TINY), rel=1e-12)  # 1.49e-154: a gradient that vanishes exactly
    assert tol[1] == pytest.approx(16 * 1e-10, rel=1e-12)
    assert tol[2] == pytest.approx(256 * EPS, rel=1e-12)
    floor32 = _tolerance.absolute_floor(np.float32)
    assert floor32 == 2.0**-126  # float32's smallest normal number, above float64's sqrt(tiny)
    assert _tolerance.absolute_floor(np.float64) == pytest.approx(np.sqrt(TINY), rel=1e-12)
    float32 = _tolerance.tolerance(np.zeros(1), np.ones(1), 2.0**-23, floor32)
    assert float32[0] == pytest.approx(256 * 2.0**-23 + 2.0**-126, rel=1e-12)


def test_fewer_noise_samples_widen_the_noise_by_the_square_root() -> None:
    """``sqrt(8 / s)``: catches samples_safety made 1."""
    assert _tolerance.samples_safety(8) == 1.0
    assert _tolerance.samples_safety(2) == pytest.approx(2.0)
    assert _tolerance.samples_safety(1) == pytest.approx(np.sqrt(8.0))


def _half_norm(p: dict[str, Any]) -> Any:
    return 0.5 * jnp.sum(p["w"] ** 2)


@pytest.mark.parametrize(("ulps", "verdict"), [(100, "pass"), (200, "pass"), (1500, "mismatch")])
def test_a_closed_form_some_ulps_off_is_judged_by_the_floor(ulps: int, verdict: str) -> None:
    """½‖w‖², whose gradient w has no rounding noise: only the floor, 256 eps of the largest entry, decides.
    200 ulps pass (catches FLOOR_ULPS 256 -> 64), 1,500 do not (catches a floor 8x wider)."""
    w = {"w": np.array([1.0, -0.75, 0.5])}
    report = check_gradients(_half_norm, lambda p: {"w": p["w"] * (1 + ulps * EPS)}, w)
    assert report.verdict == verdict, str(report)


def test_a_logit_clipped_where_nothing_is_left_to_clip_passes() -> None:
    """Log loss at z = -800, with a closed form that clips z at -500 (as examples/submissions/alice.py does):
    sigma(-500) = 7e-218 and sigma(-800) = 0 differ by less than sqrt(tiny) = 1.5e-154, the tolerance's
    absolute floor. Catches that term dropped."""

    def loss(p: dict[str, Any]) -> Any:
        z = p["w"] * 800.0
        return jnp.sum(jax.nn.softplus(z))  # -log(1 - sigmoid(z)) for a label 0

    def clipped(p: dict[str, Any]) -> dict[str, Any]:
        z = np.maximum(p["w"] * 800.0, -500.0)
        return {"w": 800.0 / (1.0 + np.exp(-z))}

    report = check_gradients(loss, clipped, {"w": np.array([-1.0])})
    assert report.verdict == "pass", str(report)


def test_the_finite_differences_error_bound_covers_a_fast_oscillation() -> None:
    """sin(20 t) at t = 0.3: the truncation term of the bound covers the real error at every step (catches
    the truncation term dropped, which leaves only rounding, 1e-13, below errors of 2e-7 to 0.2)."""
    with jax.enable_x64(True):
        theta = jnp.array([0.3])

        def f(t: jax.Array) -> jax.Array:
            return jnp.sin(20.0 * t[0])

        for step in (0.2, 0.1, 0.05, 0.02):
            fd = _finite_diff.directional(f, theta, jnp.eye(1), jnp.array([step]), jnp.array(1e-16), f(theta))
            error = abs(float(fd.value[0]) - 20.0 * np.cos(6.0))
            assert error <= float(fd.error[0]), (step, error, float(fd.error[0]))
            assert float(fd.error[0]) < 0.5  # and says something: below 2.5% of the derivative, 19.2


def _interpreted(f: Any, *args: Any) -> list[np.ndarray]:
    with jax.enable_x64(True):
        closed = jax.make_jaxpr(f)(*args)
        return [np.asarray(v) for v in _interpret.evaluate(closed, [np.asarray(a) for a in args])]


def _by_jax(f: Any, *args: Any) -> list[np.ndarray]:
    with jax.enable_x64(True):
        return [np.asarray(v) for v in jax.tree_util.tree_leaves(f(*args))]


@pytest.mark.parametrize(
    ("name", "f", "args"),
    [
        # The gradient of a gather with a repeated index is a scatter-add: += (catches = ).
        (
            "repeated-index gather",
            jax.grad(lambda w, i: jnp.sum(w[i] ** 2)),
            (np.array([0.5, -1.0, 2.0]), np.array([0, 2, 2, 0, 2])),
        ),
        # Integer division truncates toward zero, as C does: -7 // 2 is -3, not -4 (catches floor division).
        ("negative integer division", lambda k: jax.lax.div(k, np.int64(2)), (np.array([-7, -1, 5, 6]),)),
        ("negative integer remainder", lambda k: jax.lax.rem(k, np.int64(2)), (np.array([-7, -1, 5, 6]),)),
        # A dynamic slice that starts past the end is clamped to fit (catches an unclamped start).
        (
            "dynamic slice past the end",
            lambda w, s: jax.lax.dynamic_slice(w, (s,), (3,)),
            (np.arange(5.0), np.int64(4)),
        ),
        (
            "dynamic slice before the start",
            lambda w, s: jax.lax.dynamic_slice(w, (s,), (3,)),
            (np.arange(5.0), np.int64(-2)),
        ),
    ],
)
def test_the_numpy_interpreter_agrees_with_jax_at_the_edges(name: str, f: Any, args: tuple[Any, ...]) -> None:
    for got, want in zip(_interpreted(f, *args), _by_jax(f, *args)):
        np.testing.assert_array_equal(got, want, err_msg=name)


def test_the_references_compile_after_64_checks_at_one_shape() -> None:
    """The ski-rental switch, at the number docs/references.md states: 64 checks at a shape on the NumPy path,
    then compiled (catches COMPILE_AFTER moved, which the old test read from the code)."""

    def loss(p: dict[str, Any], x: Any) -> Any:  # a loss of this test's own: its count starts at 0
        return jnp.sum(jnp.tanh(x @ p["w"]) ** 2) + 0.001 * jnp.sum(p["w"])

    def grad(p: dict[str, Any], x: np.ndarray) -> dict[str, np.ndarray]:
        t = np.tanh(x @ p["w"])
        return {"w": x.T @ (2 * t * (1 - t**2)) + 0.001}

    x = np.array([[0.5, 1.0, -1.0], [2.0, 0.1, 0.3]])
    # 66 problems at one shape (a problem checked again reuses its references, and counts once).
    points = [{"w": np.array([0.3, -0.2, 0.1]) + 0.01 * k} for k in range(66)]
    paths = [check_gradients(loss, grad, p, x).references for p in points]
    assert paths[:64] == ["numpy"] * 64
    assert paths[64:] == ["xla", "xla"]
    # The same problem again: its references are the ones already taken, on the path that took them.
    assert check_gradients(loss, grad, points[0], x).references == "numpy"


SHARDED_COMPILED = textwrap.dedent(
    """
    import json
    from functools import partial
    import jax, numpy as np
    from gradcheck import _references, check_batch, mlp, problems
    probs = [problems.sample(np.random.default_rng([0, i]), task="regression") for i in range(7)]
    params = mlp.Params(*(np.stack([p.params[k] for p in probs]) for k in range(4)))
    x, y = np.stack([p.x for p in probs]), np.stack([p.y for p in probs])
    def wrong_in_5(p, x, y):
        g = mlp.closed_form_gradients(p, x, y, task="regression")
        return g._replace(b2=g.b2 * np.where(np.arange(7) == 5, 2.0, 1.0)[:, None])
    with _references.forced("xla"):
        report = check_batch(partial(mlp.loss, task="regression"), wrong_in_5, params, x, y)
    print(json.dumps({"devices": jax.device_count(), "verdicts": list(report.verdicts)}))
    """
)


def test_a_batch_of_7_problems_is_sharded_over_3_devices_on_the_compiled_path() -> None:
    """7 problems padded to a multiple of 3 devices (catches the bucket not rounded to the device count)."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=3", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", SHARDED_COMPILED], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["devices"] == 3
    assert out["verdicts"] == ["pass"] * 5 + ["mismatch", "pass"]


def test_a_vjp_wrong_along_some_cotangents_only_is_a_mismatch() -> None:
    """Wrong only where the cotangent's first entry exceeds 1.5: the check takes the worst direction, not the
    best (catches min -> max over directions)."""

    def f(x: Any) -> Any:
        return jnp.sin(x)

    def vjp(primals: Any, c: np.ndarray) -> Any:
        (x,) = primals
        right = np.cos(x) * c
        return (right * (2.0 if c[0] > 1.5 else 1.0),)

    x = np.array([0.3, -0.7, 1.1])
    hits = 0
    for seed in range(8):
        report = check_vjp(f, vjp, x, directions=8, seed=seed)
        hits += report.verdict == "mismatch"
        if report.verdict == "mismatch":  # its failing direction was judged on measured noise, not screened
            assert SCREENED_NOTE not in report.notes  # (catches the screen's note kept if any direction had it)
    assert hits >= 1  # some seed draws a cotangent with c[0] > 1.5 ...
    right = check_vjp(f, lambda primals, c: (np.cos(primals[0]) * c,), x, directions=8, seed=0)
    assert right.verdict == "pass"  # ... and the right VJP passes


def _wrong_on(monkeypatch: pytest.MonkeyPatch, k: int, inputs: int, hidden: int, batch: int) -> None:
    marker = cli.problem_for(k, seed=0, task="regression", inputs=inputs, hidden=hidden, batch=batch).x[..., 0, 0]
    correct = mlp.closed_form_gradients

    def wrong_on_k(params: Any, x: Any, y: Any, *, task: Any) -> mlp.Params:
        g = correct(params, x, y, task=task)
        return g._replace(b2=g.b2 * np.where(np.asarray(x)[..., 0, 0] == marker, 2.0, 1.0)[..., None])

    monkeypatch.setattr(mlp, "closed_form_gradients", wrong_on_k)


def test_the_reproduce_line_carries_non_default_sizes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --batch 4 --inputs 3 --hidden 2, the reproduce line re-runs the same problem (catches a reproduce
    line that hard-codes a size)."""
    _wrong_on(monkeypatch, 2, inputs=3, hidden=2, batch=4)
    flags = ["--task", "regression", "--inputs", "3", "--hidden", "2", "--batch", "4"]
    assert cli.main([*flags, "--examples", "4", "--json"]) == cli.EXIT_MISMATCH
    (failure,) = json.loads(capsys.readouterr().out)["tasks"]["regression"]["failures"]
    assert failure["problem"] == 2
    command = shlex.split(failure["reproduce"])
    assert command[command.index("--batch") + 1] == "4"
    assert cli.main([*command[1:], "--json"]) == cli.EXIT_MISMATCH
    (again,) = json.loads(capsys.readouterr().out)["tasks"]["regression"]["failures"]
    assert again == failure


def test_the_fixture_raises_on_a_wrong_call() -> None:
    """A grad_fn that returns None is a wrong call: the user's test fails (catches it counted as a pass)."""
    with pytest.raises(TypeError, match="not a gradient of `params`"):
        check_property(lambda p, x, y, *, task: None, task="regression", examples=3)


def test_a_wrong_derivative_rule_is_inconclusive_not_a_kink() -> None:
    """A loss whose autodiff is wrong (a term hidden by stop_gradient: the finite differences see slope 5 more
    at t[0]) is in doubt. Its autodiff gradient near t[0] is 0 up to rounding (log(exp(t)) - t): jumps of an
    ulp, which are no kink, whose element would be "not judged" and the check passed. Catches the kink test
    without its `jump > tol` condition (7 of these 21 points then pass)."""

    def loss(p: dict[str, Any]) -> Any:
        t = p["t"]
        hidden = 5.0 * jax.lax.stop_gradient(t[0])
        return jnp.sum(jnp.log(jnp.exp(t))) - jnp.sum(t) + hidden + 2.0 * jnp.sum(p["u"])

    def grad(p: dict[str, Any]) -> dict[str, Any]:
        return {"t": np.zeros_like(p["t"]), "u": 2.0 * np.ones_like(p["u"])}

    for t0 in np.linspace(0.1, 3.0, 21):
        report = check_gradients(loss, grad, {"t": np.array([t0, 0.7]), "u": np.array([1.0])})
        assert report.verdict == "inconclusive", (t0, str(report))
        assert report["t"].not_judged == ()


def test_a_tuple_of_four_arrays_is_the_gradient_of_mlp_params_by_position() -> None:
    """A closed form that returns a plain tuple (w1, b1, w2, b2) for `mlp.Params`: paired by position, and it
    passes (catches positional pairing dropped, which would call it a wrong call)."""
    p, x, y = mlp.init_params(0), np.array([[0.5, -1.0], [2.0, 0.0]]), np.array([1.0, 0.0])

    def as_tuple(params: mlp.Params, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(mlp.closed_form_gradients(params, x, y, task="regression"))

    assert check_gradients(partial(mlp.loss, task="regression"), as_tuple, p, x, y).verdict == "pass"


def test_a_submission_that_raises_on_some_problems_fails_the_search() -> None:
    """Right on the generic problem (5 samples), raising on a single sample: the search fails at a minimal
    problem (catches a raised error not counted as a failure, which would pass the student)."""
    from gradcheck import _search

    def picky(params: mlp.Params, x: np.ndarray, y: np.ndarray) -> mlp.Params:
        if x.shape[0] == 1:
            raise IndexError("needs two samples")
        return mlp.closed_form_gradients(params, x, y, task="regression")

    result = _search.search(picky, task="regression", examples=30)
    assert not result.ok
    assert result.counterexample is not None
    assert result.counterexample.x.shape[0] == 1


def test_a_right_float32_closed_form_whose_gradient_underflows_in_float32_passes() -> None:
    """A perfect fit at tiny scales (found by a random run of the tolerance tests' perfect_fit regime): the
    gradient's entries of 1e-46 are below float32's smallest number, so a right float32 closed form returns 0.
    The absolute floor is float32's smallest normal number, 1.2e-38, not float64's sqrt(tiny) (it was: a false
    alarm)."""
    from tests.derivations import CORRECT, params_for

    params = mlp.Params(
        np.array([[1.5], [0.0], [0.0]]),
        np.full(3, -7.075659923480143e-46),
        np.array([[0.0, 4.6962244416693076e-111, 4.6962244416693076e-111]]),
        np.array([-7.075659923480143e-46]),
    )
    x, y = np.array([[-1.0], [0.5558075758101797]]), np.full(2, -7.075659923480143e-46)
    grads = partial(CORRECT["float32"], task="regression")
    report = check_gradients(partial(mlp.loss, task="regression"), grads, params_for("float32", params), x, y)
    assert report.verdict == "pass", str(report)
