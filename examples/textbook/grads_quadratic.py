"""The same network with the textbook's QuadraticCost delta, graded against log loss: wrong.

``QuadraticCost.delta`` is (a - y) sigma'(z), the output error of squared
error at a sigmoid output. The autograder grades classification with log
loss, where the sigmoid's slope cancels and delta = a - y; and regression
with a linear output, where there is no sigmoid slope to take at all. Grade it with

    gradcheck check examples/textbook/grads_quadratic.py:grads
"""

import network  # the module beside this file
import numpy as np

COSTS = {
    "classification": (network.QuadraticCost, False),
    "regression": (network.QuadraticCost, True),
}


def grads(params, x, y, *, task):
    w1, b1, w2, b2 = params
    cost, linear_output = COSTS[task]
    net = network.Network([w1.shape[1], w1.shape[0], 1], cost=cost, linear_output=linear_output)
    net.weights = [w1, w2]
    net.biases = [b1.reshape(-1, 1), b2.reshape(-1, 1)]  # the textbook's column vectors
    mini_batch = [(xn.reshape(-1, 1), np.array([[yn]])) for xn, yn in zip(x, y)]
    nabla_b, nabla_w = net.gradient(mini_batch)
    return {"w1": nabla_w[0], "b1": nabla_b[0].ravel(), "w2": nabla_w[1], "b2": nabla_b[1].ravel()}
