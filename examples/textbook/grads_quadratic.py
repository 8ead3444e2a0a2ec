"""The same network with the textbook's QuadraticCost delta, graded against log loss: wrong.

``QuadraticCost.delta`` is (a - y) sigma'(z), the output error of squared
error at a sigmoid output. The autograder grades classification with log
loss, where the sigmoid's slope cancels and delta = a - y; and regression
with a linear output, where there is no sigmoid slope to take at all. Grade it with

    gradcheck check examples/textbook/grads_quadratic.py:grads
"""

import network  # the module beside this file
from grads import textbook_gradients  # the same wrapper as the right version; only the cost differs

COSTS = {
    "classification": (network.QuadraticCost, False),
    "regression": (network.QuadraticCost, True),
}


def grads(params, x, y, *, task):
    return textbook_gradients(params, x, y, *COSTS[task])
