"""How often the report names the mistake: every mutant of tests/derivations.py on generic problems.

For each wrong derivation of the seed network (`tests.derivations.MUTANTS`), on
``--problems`` generic classification problems (inputs 2, hidden 3, batch 5;
3 x 3 for the typo, which needs a square w1), ``check_gradients`` is run and
each parameter the mutation breaks and the report blames is counted: named
right (its diagnosis holds the mutant's kind, or the catalogue's words for the
hidden layer's mistakes), and unclassified (no diagnosis, or "unclassified").

With ``--course``, the same count for a course's layers (tests/course_layers.py: NumPy forward
passes and hand-written ``backward(dout, cache)`` passes, checked with ``check_vjp``): every parameter
a wrong backward pass gets wrong, named right where its diagnosis holds the layer's words for it.

Run: python benchmarks/diagnoses.py [--problems 3] [--course]
"""

from __future__ import annotations

import argparse
from functools import partial

import numpy as np

from gradcheck import check_gradients, mlp, problems
from tests.course_layers import LAYERS, check
from tests.derivations import MUTANTS

#: The words that name each catalogued mistake (`gradcheck._mistakes`).
CATALOGUED = {
    "typo_w1_for_w2": "the source text's typo",
    "missing_sigmoid_slope": "forgotten in the hidden layer",
    "slope_of_z": "z1 instead of a1",
    "tanh_slope": "tanh's derivative",
    "z1_for_a1": "z1 where a1 belongs",
    "bias_mean_wrong_axis": "over the hidden units (axis 1)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=3)
    parser.add_argument("--course", action="store_true", help="a course's layers instead of the seed network's mutants")
    args = parser.parse_args()
    if args.course:
        course(args.problems)
        return
    named = unclassified = total = 0
    for name, m in MUTANTS.items():
        want = CATALOGUED.get(name) or m.kind
        k = 3 if m.square else None
        for seed in range(args.problems):
            rng = np.random.default_rng([seed, 21])
            prob = problems.sample(rng, task="classification", inputs=k or 2, hidden=k or 3, batch=5)
            grad = partial(m.grad, task="classification")
            report = check_gradients(partial(mlp.loss, task="classification"), grad, *prob[:3])
            for p in report.params:
                if p.name in m.broken and p.status in ("mismatch", "error"):
                    total += 1
                    diagnosis = p.diagnosis or ""
                    unclassified += diagnosis.startswith("unclassified") or not diagnosis
                    named += bool(want) and want in diagnosis
    print(f"blamed parameters: {total}; named right: {named}; unclassified or none: {unclassified}")


def course(problems_per_mistake: int) -> None:
    """The count for tests/course_layers.py: each wrong backward pass at `problems_per_mistake` points."""
    named = unclassified = total = 0
    for layer in LAYERS.values():
        for wrong, words in layer.mistakes.items():
            for seed in range(problems_per_mistake):
                for p in check(layer, wrong, seed).params:
                    if p.status in ("mismatch", "error"):
                        total += 1
                        diagnosis = p.diagnosis or ""
                        unclassified += diagnosis.startswith("unclassified") or not diagnosis
                        named += bool(words) and words in diagnosis
    mistakes = sum(len(layer.mistakes) for layer in LAYERS.values())
    print(
        f"{len(LAYERS)} layers, {mistakes} wrong backward passes: blamed parameters: {total}; "
        f"named right: {named}; unclassified or none: {unclassified}"
    )


if __name__ == "__main__":
    main()
