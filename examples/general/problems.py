"""Problems ``(params, *args)`` for the losses in `losses.py`.

For ``--problems FILE:STRATEGY``: a Hypothesis strategy, or a function of no
arguments that returns one. For ``--example FILE:NAME``: one problem, whose
shapes and dtypes the search keeps (`gradcheck.strategies.shaped_like`).
"""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

#: Entries of weights and inputs: finite, and in a range where the losses are well scaled.
FLOATS = st.floats(-3.0, 3.0, allow_nan=False, allow_subnormal=False)


@st.composite
def logistic_problems(draw):
    """Logistic regression of any size up to 3 features and 5 samples, with 0/1 targets."""
    features, samples = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    params = {"w": draw(hnp.arrays(np.float64, features, elements=FLOATS)), "b": np.float64(draw(FLOATS))}
    X = draw(hnp.arrays(np.float64, (samples, features), elements=FLOATS))
    y = draw(hnp.arrays(np.float64, samples, elements=st.sampled_from([0.0, 1.0])))
    return params, X, y


def _softmax_problem(features, classes, samples):
    return st.tuples(
        hnp.arrays(np.float64, (features, classes), elements=FLOATS),
        hnp.arrays(np.float64, (samples, features), elements=FLOATS),
        hnp.arrays(np.int64, samples, elements=st.integers(0, classes - 1)),
    )


#: Softmax regression: up to 3 features, 2 to 4 classes, up to 5 samples, labels in range.
softmax_problems = st.tuples(st.integers(1, 3), st.integers(2, 4), st.integers(1, 5)).flatmap(
    lambda sizes: _softmax_problem(*sizes)
)

_rng = np.random.default_rng(0)

#: One logistic-regression problem: 3 features, 6 samples.
logistic_example = (
    {"w": _rng.normal(size=3), "b": np.float64(0.5)},
    _rng.normal(size=(6, 3)),
    np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.0]),
)

#: One softmax-regression problem: 2 features, 3 classes, 5 samples, every class present.
softmax_example = (_rng.normal(size=(2, 3)), _rng.normal(size=(5, 2)), np.array([0, 2, 1, 1, 0]))
