"""Alice's helpers, imported from beside her file: a sigmoid and a softmax that do not overflow."""

import numpy as np


def sigmoid(z):
    # exp of a negative number only: no overflow, and no cancellation (0.5 (1 + tanh(z / 2)), another
    # overflow-free form, subtracts nearly equal numbers for z << 0 and loses ~e^|z| ulps there).
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
