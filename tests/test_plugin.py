"""The pytest plugin: a fixture that turns a gradient function into a property test."""

from __future__ import annotations

import pytest

from gradcheck import GradientMismatch, mlp
from gradcheck.pytest_plugin import check_property
from tests.derivations import MUTANTS

pytest_plugins = ["pytester"]


def test_fixture_passes_a_correct_derivation(gradcheck_property) -> None:  # type: ignore[no-untyped-def]
    gradcheck_property(mlp.closed_form_gradients, task="classification", examples=20)


def test_wrong_derivation_fails_with_counterexample_and_diagnosis() -> None:
    with pytest.raises(GradientMismatch) as info:
        check_property(MUTANTS["sum_not_mean"].grad, task="regression", examples=50)
    text = str(info.value)
    assert "minimal counterexample" in text
    assert "batch=2" in text  # shrunk: a sum equals a mean for one sample
    assert (
        "  w2: a sum where a mean belongs: off by a factor N, the batch size; divide the sum over the samples by N"
        in text
    )
    assert "Taylor remainder shrinks like h^1" in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "ranking"}, r"`task` must be one of"),
        ({"examples": 0}, r"`examples` must be a positive integer, got 0"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=message):
        check_property(mlp.closed_form_gradients, **kwargs)


def test_plugin_is_registered_and_renders_failures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_student="""
        import numpy as np
        from gradcheck import mlp

        def doubled(params, x, y, *, task):
            return mlp.Params(*(2 * g for g in mlp.closed_form_gradients(params, x, y, task=task)))

        def test_right(gradcheck_property):
            gradcheck_property(mlp.closed_form_gradients, task="regression", examples=5)

        def test_wrong(gradcheck_property):
            gradcheck_property(doubled, task="regression", examples=20)
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*GradientMismatch*", "*likely mistake: off by a constant factor 2*"])
