"""A feedforward network trained by backpropagation, in a textbook's style.

Written the way the classic NumPy textbooks write it (Nielsen's "Neural
Networks and Deep Learning", network2.py, is the best known): a list of
layers, column vectors for every activation and bias, one sample at a time,
and cost classes that supply the output error through ``delta(z, a, y)``.
`gradcheck` knows nothing of this module: ``grads.py`` beside it adapts it to
the autograder's signature.
"""

import itertools

import numpy as np


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))


def sigmoid_prime(z):
    """Derivative of the sigmoid function."""
    return sigmoid(z) * (1 - sigmoid(z))


class QuadraticCost:
    @staticmethod
    def fn(a, y):
        """Cost of an output ``a`` for the desired output ``y``."""
        return 0.5 * np.linalg.norm(a - y) ** 2

    @staticmethod
    def delta(z, a, y):
        """Error delta from the output layer, for a sigmoid output: (a - y) sigma'(z)."""
        return (a - y) * sigmoid_prime(z)


class CrossEntropyCost:
    @staticmethod
    def fn(a, y):
        return np.sum(np.nan_to_num(-y * np.log(a) - (1 - y) * np.log(1 - a)))

    @staticmethod
    def delta(z, a, y):
        """Error delta from the output layer: the sigmoid's slope cancels, so z is not used."""
        return a - y


class LinearQuadraticCost:
    """Quadratic cost at a linear output (a = z): da/dz = 1, so delta = a - y."""

    @staticmethod
    def fn(a, y):
        return 0.5 * np.linalg.norm(a - y) ** 2

    @staticmethod
    def delta(z, a, y):
        return a - y


class Network:
    def __init__(self, sizes, cost=CrossEntropyCost, linear_output=False):
        """``sizes`` lists the neurons per layer, e.g. [2, 3, 1].

        Every layer is sigmoid, except the last when ``linear_output`` is set.
        Weights and biases start random; assign ``self.weights`` and
        ``self.biases`` to set them.
        """
        self.num_layers = len(sizes)
        self.sizes = sizes
        self.cost = cost
        self.linear_output = linear_output
        rng = np.random.default_rng(0)
        self.biases = [rng.standard_normal((n, 1)) for n in sizes[1:]]
        self.weights = [rng.standard_normal((n, m)) / np.sqrt(m) for m, n in itertools.pairwise(sizes)]

    def activation(self, z, last):
        return z if last and self.linear_output else sigmoid(z)

    def feedforward(self, a):
        """Return the output of the network for the input column ``a``."""
        for i, (b, w) in enumerate(zip(self.biases, self.weights)):
            a = self.activation(np.dot(w, a) + b, i == self.num_layers - 2)
        return a

    def backprop(self, x, y):
        """Return (nabla_b, nabla_w), the gradient of the cost for one sample (x, y).

        Both are lists of arrays, layer by layer, shaped like self.biases and
        self.weights.
        """
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        # feedforward
        activation = x
        activations = [x]  # list to store all the activations, layer by layer
        zs = []  # list to store all the z vectors, layer by layer
        for i, (b, w) in enumerate(zip(self.biases, self.weights)):
            z = np.dot(w, activation) + b
            zs.append(z)
            activation = self.activation(z, i == self.num_layers - 2)
            activations.append(activation)
        # backward pass
        delta = self.cost.delta(zs[-1], activations[-1], y)
        nabla_b[-1] = delta
        nabla_w[-1] = np.dot(delta, activations[-2].transpose())
        for layer in range(2, self.num_layers):
            z = zs[-layer]
            sp = sigmoid_prime(z)
            delta = np.dot(self.weights[-layer + 1].transpose(), delta) * sp
            nabla_b[-layer] = delta
            nabla_w[-layer] = np.dot(delta, activations[-layer - 1].transpose())
        return (nabla_b, nabla_w)

    def gradient(self, mini_batch):
        """The mean gradient over a mini-batch of (x, y) pairs, as update_mini_batch sums it."""
        nabla_b = [np.zeros(b.shape) for b in self.biases]
        nabla_w = [np.zeros(w.shape) for w in self.weights]
        for x, y in mini_batch:
            delta_nabla_b, delta_nabla_w = self.backprop(x, y)
            nabla_b = [nb + dnb for nb, dnb in zip(nabla_b, delta_nabla_b)]
            nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_nabla_w)]
        n = len(mini_batch)
        return [nb / n for nb in nabla_b], [nw / n for nw in nabla_w]
