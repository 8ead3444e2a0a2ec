"""Derivation or precision: a right derivation that loses digits in float64 is "imprecise", never a mismatch,
and a wrong one is never excused as rounding (`gradcheck._precision`)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from gradcheck import (
    ImpreciseGradient,
    _precision,
    assert_gradients,
    check_batch,
    check_gradients,
    cli,
    mlp,
    problems,
)
from gradcheck import strategies as gs
from tests.derivations import MUTANTS, confident, sig_exp, sig_tanh, textbook
from tests.test_mutants import loss_for

CLASSIFY = partial(mlp.loss, task="classification")


def test_the_issues_reproduction_is_imprecise_and_the_exp_form_passes() -> None:
    tanh = check_gradients(CLASSIFY, textbook(sig_tanh), *confident(3))
    assert tanh.verdict == "imprecise", str(tanh)
    assert tanh.ok
    assert {p.status for p in tanh.params} == {"imprecise"}
    for p in tanh.params:
        # float64 keeps about 4 digits here: far fewer than 15, and not none
        assert 2.0 < p.digits_kept < 8.0, p
        assert "the derivation is right" in (p.message or "")
        assert p.diagnosis is None
    assert "IMPRECISE, the derivation is right" in str(tanh)
    assert check_gradients(CLASSIFY, textbook(sig_exp), *confident(3)).verdict == "pass"


def test_a_sweep_of_forty_confident_problems_has_no_mismatch() -> None:
    verdicts = [check_gradients(CLASSIFY, textbook(sig_tanh), *confident(seed)).verdict for seed in range(40)]
    assert "mismatch" not in verdicts
    assert "imprecise" in verdicts  # the sweep does reach the cancelling regime
    assert all(check_gradients(CLASSIFY, textbook(sig_exp), *confident(s)).verdict == "pass" for s in range(40))


@pytest.mark.parametrize("seed", [3, 5, 11])
def test_a_real_mistake_on_an_imprecise_implementation_is_a_mismatch(seed: int) -> None:
    report = check_gradients(CLASSIFY, textbook(sig_tanh, w1_factor=1.1), *confident(seed))
    assert report.verdict == "mismatch", str(report)
    assert report["w1"].status == "mismatch"
    assert "not rounding, a mistake in the derivation" in str(report)
    assert "-bit arithmetic (mpmath)" in str(report)  # 256 bits where w1 is as in float64, else 1024


@pytest.mark.parametrize("relative", [1e-6, 1e-8])
def test_small_mistakes_on_the_tanh_form_are_not_excused(relative: float) -> None:
    """On a problem where the tanh form keeps all its digits, a mistake of 1e-6 or 1e-8 is still a mismatch."""
    p = mlp.init_params(0)
    x, y = np.array([[0.5, -1.0], [2.0, 0.0], [-1.0, 1.5]]), np.array([1.0, 0.0, 1.0])

    def nudged(p: mlp.Params, x: np.ndarray, y: np.ndarray) -> mlp.Params:
        g = textbook(sig_tanh)(p, x, y)
        return g._replace(b2=g.b2 * (1 + relative))

    report = check_gradients(CLASSIFY, nudged, p, x, y)
    assert report.verdict == "mismatch", str(report)
    assert report["b2"].status == "mismatch"


@settings(max_examples=60)
@given(name=st.sampled_from(sorted(MUTANTS)), regime=st.sampled_from(problems.REGIMES), data=st.data())
def test_no_mutant_is_ever_called_imprecise(name: str, regime: str, data: st.DataObject) -> None:
    """A wrong derivation keeps its error in any precision: in every regime it is never excused as rounding."""
    m = MUTANTS[name]
    if m.square:
        prob = data.draw(gs.problems(regime=regime, inputs=st.just(2), hidden=st.just(2)), label="problem")
    else:
        prob = data.draw(gs.problems(regime=regime), label="problem")
    note(prob.describe())
    report = check_gradients(loss_for(m, prob.task), partial(m.grad, task=prob.task), *prob[:3])
    assert report.verdict != "imprecise", str(report)
    assert all(p.status != "imprecise" for p in report.params), str(report)


def test_strict_fails_imprecise_and_the_default_passes_it() -> None:
    problem = confident(3)
    assert assert_gradients(CLASSIFY, textbook(sig_tanh), *problem).verdict == "imprecise"
    with pytest.raises(ImpreciseGradient, match="IMPRECISE"):
        assert_gradients(CLASSIFY, textbook(sig_tanh), *problem, strict=True)
    assert not check_gradients(CLASSIFY, textbook(sig_tanh), *problem).strict_ok()


def test_where_long_double_is_float64_arbitrary_precision_still_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on Windows or macOS on arm64: mpmath does not need a wide hardware type."""
    monkeypatch.setattr(_precision, "WIDE", np.float64)
    report = check_gradients(CLASSIFY, textbook(sig_tanh), *confident(3))
    assert report.verdict == "imprecise", str(report)
    assert "256-bit arithmetic (mpmath)" in str(report)


def test_where_neither_wider_type_can_run_the_report_says_it_could_not_decide(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Long double is float64 and the problem is too large for arbitrary precision: the float64 verdict stands."""
    monkeypatch.setattr(_precision, "WIDE", np.float64)
    monkeypatch.setattr(_precision, "MP_MAX_ENTRIES", 0)
    report = check_gradients(CLASSIFY, textbook(sig_tanh), *confident(3))
    assert report.verdict == "mismatch"
    assert "could not be decided" in str(report)
    assert "np.longdouble is float64 on this platform" in str(report)


def test_long_double_alone_decides_rounding_and_never_excuses_a_mistake(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the size where arbitrary precision runs, long double's shrink test: it says "rounding" where the
    error shrinks by its 11 extra bits, and leaves a mistake (which does not shrink) a mismatch."""
    monkeypatch.setattr(_precision, "MP_MAX_ENTRIES", 0)
    right = check_gradients(CLASSIFY, textbook(sig_tanh), *confident(3))
    assert right.verdict == "imprecise", str(right)
    assert "long double (64-bit significand)" in str(right)
    wrong = check_gradients(CLASSIFY, textbook(sig_tanh, w1_factor=1.1), *confident(3))
    assert wrong["w1"].status == "mismatch", str(wrong)
    assert "did not shrink as rounding does" in str(wrong)


def test_a_closed_form_that_computes_in_float64_inside_is_not_decided() -> None:
    def cast(p: mlp.Params, x: np.ndarray, y: np.ndarray) -> mlp.Params:
        return mlp.Params(*(np.asarray(g, dtype=np.float64) for g in textbook(sig_tanh)(p, x, y)))

    report = check_gradients(CLASSIFY, cast, *confident(3))
    assert report.verdict == "mismatch"
    assert "could not be decided" in str(report)
    assert "the closed form computes in float64" in str(report)


def test_a_closed_form_that_raises_on_long_double_is_not_decided() -> None:
    def picky(p: mlp.Params, x: np.ndarray, y: np.ndarray) -> mlp.Params:
        if x.dtype != np.float64:
            raise TypeError("float64 only")
        return textbook(sig_tanh)(p, x, y)

    report = check_gradients(CLASSIFY, picky, *confident(3))
    assert report.verdict == "mismatch"
    assert "raised TypeError" in str(report)


def _jax_closed_form(relative: float) -> Callable[..., mlp.Params]:
    def grads(p: mlp.Params, x: np.ndarray, y: np.ndarray) -> mlp.Params:
        g = mlp.closed_form_gradients(p, x, y, task="regression")
        return mlp.Params(*(jnp.asarray(a) * (1 + relative) for a in g))

    return grads


@pytest.mark.parametrize("relative", [1e-4, 1e-5, 1e-6])
def test_a_wrong_gradient_returned_as_float32_jax_arrays_is_not_a_pass(relative: float) -> None:
    assert not jax.config.read("jax_enable_x64")  # the default, under which jnp.asarray makes float32
    p = mlp.init_params(0)
    x, y = np.array([[0.5, -1.0], [2.0, 0.0]]), np.array([1.0, 0.0])
    report = check_gradients(partial(mlp.loss, task="regression"), _jax_closed_form(relative), p, x, y)
    assert report.verdict == "mismatch", str(report)
    assert report.precision == "float64"
    assert "called again with x64 on for that call only" in str(report)
    assert not jax.config.read("jax_enable_x64")  # the user's configuration, as it was
    right = check_gradients(partial(mlp.loss, task="regression"), _jax_closed_form(0.0), p, x, y)
    assert right.verdict == "pass", str(right)


def test_an_accidental_numpy_float32_is_an_error_that_says_how_to_fix_it() -> None:
    def narrowed(p: mlp.Params, x: np.ndarray, y: np.ndarray) -> mlp.Params:
        g = mlp.closed_form_gradients(p, x, y, task="regression")
        return mlp.Params(*(a.astype(np.float32) * np.float32(1 + 1e-6) for a in g))

    p = mlp.init_params(0)
    x, y = np.array([[0.5, -1.0], [2.0, 0.0]]), np.array([1.0, 0.0])
    report = check_gradients(partial(mlp.loss, task="regression"), narrowed, p, x, y)
    assert report.verdict == "error"
    assert "returned float32 for float64 parameters" in str(report)
    assert "pass float32 parameters" in str(report)


def test_the_taylor_note_does_not_contradict_a_mismatch() -> None:
    """A 1e-6 mistake: the remainder still shrinks like h^2, and the note says why that is no pass."""
    p = mlp.init_params(0)
    x, y = np.array([[0.5, -1.0], [2.0, 0.0], [-1.0, 1.5]]), np.array([1.0, 0.0, 1.0])

    def nudged(p: mlp.Params, x: np.ndarray, y: np.ndarray) -> mlp.Params:
        g = mlp.closed_form_gradients(p, x, y, task="classification")
        return mlp.Params(*(a * (1 + 1e-6) for a in g))

    report = check_gradients(CLASSIFY, nudged, p, x, y)
    assert report.verdict == "mismatch"
    taylor = next(n for n in report.notes if n.startswith("Taylor"))
    assert "(as for a correct gradient: 2 if right, 1 if wrong)" not in taylor
    if report.taylor_rate > 1.5:
        assert "too small against the curvature" in taylor
        assert "a mistake, not rounding" in taylor


def test_check_batch_calls_an_imprecise_problem_imprecise() -> None:
    stacked = [confident(s) for s in (3, 4)]
    params = mlp.Params(*(np.stack([s[0][k] for s in stacked]) for k in range(4)))
    x, y = np.stack([s[1] for s in stacked]), np.stack([s[2] for s in stacked])
    batch = check_batch(CLASSIFY, textbook(sig_tanh), params, x, y, batched=False)
    assert "mismatch" not in batch.verdicts
    assert batch.ok
    for k, verdict in enumerate(batch.verdicts):
        assert verdict == check_gradients(CLASSIFY, textbook(sig_tanh), *stacked[k]).verdict


SUBMISSION = textwrap.dedent(
    """
    import numpy as np
    from gradcheck import mlp

    def sig(z):
        return 0.5 * (1.0 + np.tanh(0.5 * z))

    def grads(p, x, y, *, task):
        n = x.shape[0]
        a1 = sig(x @ p.w1.T + p.b1)
        z2 = a1 @ p.w2.T + p.b2
        a2 = (z2 if task == "regression" else sig(z2))[:, 0]
        d2 = (a2 - y)[:, None] / n
        d1 = (d2 @ p.w2) * a1 * (1 - a1)
        return mlp.Params(d1.T @ x, d1.sum(0), d2.T @ a1, d2.sum(0))
    """
)


def test_the_cli_passes_an_imprecise_submission_and_strict_fails_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "tanh_form.py").write_text(SUBMISSION)
    spec = f"{tmp_path}/tanh_form.py:grads"
    flags = ("--task", "classification", "--examples", "100")
    assert cli.main(["check", spec, *flags, "--json"]) == cli.EXIT_OK
    task: dict[str, Any] = json.loads(capsys.readouterr().out)["submissions"][0]["tasks"]["classification"]
    assert task["verdict"] == "imprecise"
    assert task["imprecise"]["report"]["verdict"] == "imprecise"
    assert cli.main(["check", spec, *flags, "--strict"]) == cli.EXIT_MISMATCH
    assert "IMPRECISE: the derivation is right" in capsys.readouterr().out
    assert cli.main(["check", spec, *flags, "--format", "gradescope"]) == cli.EXIT_OK
    results = json.loads(capsys.readouterr().out)
    assert results["score"] == pytest.approx(100.0)
    assert any("IMPRECISE" in t["output"] for t in results["tests"])


def test_imprecise_ranks_below_every_failure_and_above_a_pass() -> None:
    """A run's verdict is its most severe check's (docs/cli.md, "Exit codes"): a right derivation that loses
    digits outranks only a pass; references in doubt, a wrong call and a mismatch outrank it."""
    from gradcheck._report import worst_verdict

    assert worst_verdict(["pass", "imprecise", "pass"]) == "imprecise"
    assert worst_verdict(["imprecise", "inconclusive"]) == "inconclusive"
    assert worst_verdict(["imprecise", "error"]) == "error"
    assert worst_verdict(["imprecise", "mismatch", "error"]) == "mismatch"


@pytest.mark.parametrize("mp", [True, False])
@pytest.mark.parametrize("over", [1.02, 1.5, 3.0])
def test_a_mistake_just_above_the_tolerance_is_never_excused(
    over: float, mp: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exact closed form nudged by `over` times its tolerance at one entry: in either wider arithmetic its
    error stays, and it is a mismatch (the dev profile's large_batch case, where the tolerance's own size once
    let a 1e-8 mistake pass as rounding in long double)."""
    if not mp:
        monkeypatch.setattr(_precision, "MP_MAX_ENTRIES", 0)
    prob = problems.sample(np.random.default_rng(4), task="regression", regime="typical", batch=6)
    loss, grads = partial(mlp.loss, task="regression"), partial(mlp.closed_form_gradients, task="regression")
    from gradcheck import _references

    with _references.unscreened():
        tol = check_gradients(loss, grads, *prob[:3])["w2"].tolerance  # at w2's largest entry
    right = grads(*prob[:3])
    index = np.unravel_index(np.argmax(np.abs(right.w2)), right.w2.shape)

    def nudged(p: mlp.Params, x: np.ndarray, y: np.ndarray) -> mlp.Params:
        g = mlp.closed_form_gradients(p, x, y, task="regression")
        w2 = g.w2.copy()
        w2[index] += over * tol * np.sign(w2[index])
        return g._replace(w2=w2)

    with _references.unscreened():
        report = check_gradients(loss, nudged, *prob[:3])
    assert report["w2"].status == "mismatch", str(report)
