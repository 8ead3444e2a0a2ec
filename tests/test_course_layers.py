"""A course's layers (tests/course_layers.py): right backward passes pass, and every mistake is caught.

Checked as the message for a course's ``backward(dout, cache)`` tells a user to: the forward's output as
f, written in NumPy (checked by its finite differences alone), and the backward as the VJP. Where a
mistake's diagnosis names it, the words are held here; benchmarks/diagnoses.py --course counts them.
"""

from __future__ import annotations

import pytest

from tests.course_layers import LAYERS, check

MISTAKES = [
    pytest.param(name, wrong, words, id=f"{name}-{wrong.__name__}")
    for name, layer in LAYERS.items()
    for wrong, words in layer.mistakes.items()
]


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("seed", [0, 1])
def test_a_right_backward_pass_passes(name: str, seed: int) -> None:
    layer = LAYERS[name]
    report = check(layer, layer.backward, seed)
    assert report.ok, str(report)


@pytest.mark.parametrize(("name", "wrong", "words"), MISTAKES)
def test_every_mistake_is_caught_and_named_where_the_diagnosis_knows_it(name: str, wrong, words) -> None:  # type: ignore[no-untyped-def]
    report = check(LAYERS[name], wrong)
    # A gradient of the wrong shape (dw transposed) is told per parameter as an error, with its diagnosis.
    assert report.verdict in ("mismatch", "error"), str(report)
    assert any(p.status == "mismatch" or p.diagnosis for p in report.params), str(report)
    if words is not None:
        diagnoses = [p.diagnosis or "" for p in report.params if p.status in ("mismatch", "error")]
        assert any(words in d for d in diagnoses), f"expected '{words}' in a diagnosis:\n{report}"
