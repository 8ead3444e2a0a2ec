"""The non-canonical trap: Hypothesis finds where ``δ = a − y`` fails for a sigmoid output with squared error.

With a sigmoid output, ``a - y`` is the output error of the log loss (a
canonical pair), not of the squared error. Hypothesis searches logits and
labels for a problem where gradcheck flags the claim, and shrinks it.

Run: python examples/noncanonical_trap.py
"""

from __future__ import annotations

from typing import Any

from hypothesis import find, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gradcheck import check_gradients, heads


def summed_loss(z: dict[str, Any], y: Any) -> Any:
    """Sigmoid output with squared error, as a function of the logits z (N, 1)."""
    return heads.HEADS["sigmoid-mse"].per_sample_loss(z["z"], y).sum()


def a_minus_y(z: dict[str, Any], y: Any) -> dict[str, Any]:
    """The canonical claim, written for a pair that is not canonical."""
    return {"z": heads.sigmoid(z["z"]) - y}


def the_right_delta(z: dict[str, Any], y: Any) -> dict[str, Any]:
    """(a - y) a (1 - a): the chain rule through the sigmoid."""
    a = heads.sigmoid(z["z"])
    return {"z": (a - y) * a * (1 - a)}


logits_and_labels = st.integers(1, 3).flatmap(
    lambda n: st.tuples(
        arrays(float, (n, 1), elements=st.floats(-6, 6)),
        arrays(float, (n, 1), elements=st.sampled_from([0.0, 1.0])),
    )
)

if __name__ == "__main__":
    z, y = find(
        logits_and_labels,
        lambda zy: check_gradients(summed_loss, a_minus_y, {"z": zy[0]}, zy[1]).verdict == "mismatch",
        settings=settings(database=None),
    )
    print("minimal counterexample: z =", z.tolist(), " y =", y.tolist())
    print(check_gradients(summed_loss, a_minus_y, {"z": z}, y))
    print("with δ = (a − y) a (1 − a):", check_gradients(summed_loss, the_right_delta, {"z": z}, y).verdict)
