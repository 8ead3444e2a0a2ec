"""Symbolic proofs with SymPy (the optional extra ``gradcheck[symbolic]``).

- For every head, dL/dz is differentiated symbolically and compared with the
  head's closed-form output error: ``a - y`` for the canonical heads, the
  longer chain-rule form for the others, for which ``a - y`` is refuted.
- The seed network's closed form is proved for both tasks on the scalar
  network (inputs = hidden = 1): the shipped `mlp.backward` itself runs on
  SymPy expressions (NumPy object arrays), and each of its four gradients is
  compared with SymPy's derivative of the loss. The general `network.backward`
  is proved the same way for every hidden activation that has a derivative
  everywhere and every canonical head.
- The source text's ∂L/∂b1, which uses w1 where w2 belongs, is refuted: the
  difference is printed, with a point where it is nonzero.

A claim is proved when ``derivative - closed form`` is identically zero (`_zero`): over one common
denominator its numerator expands to 0, or, where that does not show it, ``simplify`` of it is 0.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
from collections.abc import Callable
from typing import Any
from unittest import mock

import numpy as np

from gradcheck import heads, mlp, network

#: What to install when SymPy is missing.
INSTALL_HINT = 'pip install "gradcheck[symbolic]"'


@dataclasses.dataclass(frozen=True)
class Proof:
    """One symbolic claim and its outcome."""

    subject: str  # what is being claimed about
    claim: str  # the claim, as written in a derivation
    expected: bool  # True: it should hold; False: it should be refuted
    holds: bool  # the difference is identically zero (`_zero`)
    difference: str = "0"  # the simplified difference when it does not hold
    witness: str = ""  # a point where the difference is nonzero

    @property
    def ok(self) -> bool:
        return self.holds == self.expected

    @property
    def outcome(self) -> str:
        return "PROVED" if self.holds else "REFUTED"


def sympy() -> Any:
    """Import SymPy, or raise ``ModuleNotFoundError`` with the install hint."""
    try:
        import sympy as sp
    except ModuleNotFoundError:
        raise ModuleNotFoundError(f"`gradcheck prove` needs SymPy; install it with: {INSTALL_HINT}") from None
    return sp


def version() -> str:
    return importlib.metadata.version("sympy")


def prove_all() -> list[Proof]:
    """Every claim: the heads' output errors, the seed's closed form, the general backward, the typo."""
    return [*prove_heads(), *prove_seed(), *prove_network(), prove_source_typo()]


# --- SymPy versions of the model's functions --------------------------------------------


def _sigmoid(t: Any) -> Any:
    return 1 / (1 + sympy().exp(-t))


def _softmax(z: list[Any]) -> list[Any]:
    sp = sympy()
    total = sum(sp.exp(t) for t in z)
    return [sp.exp(t) / total for t in z]


#: Each head's activation and per-sample loss over K outputs, as SymPy expressions.
_SYMBOLIC: dict[str, tuple[Callable[[list[Any]], list[Any]], Callable[[list[Any], list[Any]], Any]]] = {
    "identity": (lambda z: z, lambda a, y: sum((yk - ak) ** 2 for yk, ak in zip(y, a)) / 2),
    "sigmoid": (
        lambda z: [_sigmoid(t) for t in z],
        lambda a, y: -sum(yk * sympy().log(ak) + (1 - yk) * sympy().log(1 - ak) for yk, ak in zip(y, a)),
    ),
    "softmax": (_softmax, lambda a, y: -sum(yk * sympy().log(ak) for yk, ak in zip(y, a))),
    "poisson": (
        lambda z: [sympy().exp(t) for t in z],
        lambda a, y: sum(ak - yk * sympy().log(ak) for yk, ak in zip(y, a)),
    ),
    "sigmoid-mse": (lambda z: [_sigmoid(t) for t in z], lambda a, y: sum((yk - ak) ** 2 for yk, ak in zip(y, a)) / 2),
    "softmax-mse": (_softmax, lambda a, y: sum((yk - ak) ** 2 for yk, ak in zip(y, a)) / 2),
}
_SYMBOLIC_ACTIVATIONS: dict[str, Callable[[Any], Any]] = {"sigmoid": _sigmoid, "tanh": lambda t: sympy().tanh(t)}


def _outputs(head: str) -> tuple[list[Any], list[Any]]:
    """Logits z and targets y for `head`: K = 2 for softmax heads, whose targets sum to 1."""
    sp = sympy()
    k = 2 if head.startswith("softmax") else 1
    z = list(sp.symbols(f"z1:{k + 1}", real=True))
    y = list(sp.symbols(f"y1:{k + 1}", real=True))
    if head.startswith("softmax"):
        y[-1] = 1 - sum(y[:-1])  # a probability vector
    return z, y


def _zero(expr: Any) -> bool:
    """Whether `expr` is identically zero.

    First over one common denominator: a numerator that expands to 0 is exact algebra, and on these rational
    functions of exp and tanh it decides every claim that holds, far faster than ``simplify``. What
    it does not show is decided by ``simplify``, as before: it proves no less than ``simplify`` alone, and
    what it proves is exact.
    """
    sp = sympy()
    if sp.expand(sp.numer(sp.together(expr))) == 0:
        return True
    return bool(sp.simplify(expr) == 0)


def _objects(*values: Any) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


# --- the claims -------------------------------------------------------------------------


def prove_heads() -> list[Proof]:
    """dL/dz = the head's δ, for every head; and dL/dz = a - y only for the canonical ones."""
    sp = sympy()
    proofs = []
    for name, head in heads.HEADS.items():
        activation, per_sample = _SYMBOLIC[name]
        z, y = _outputs(name)
        a = activation(z)
        loss = per_sample(a, y)
        dz = [sp.diff(loss, t) for t in z]
        # The shipped closed form, run on SymPy expressions (its σ made symbolic).
        with mock.patch.object(heads, "sigmoid", np.vectorize(_sigmoid, otypes=[object])):
            claimed = head.output_error(_objects(*z), _objects(*a), _objects(*y))
        claim = f"dL/dz: {head.formulas[2]}" + ("" if head.canonical else " (heads.HEADS's closed form)")
        proofs.append(Proof(f"head {name}", claim, True, all(_zero(d - c) for d, c in zip(dz, claimed))))
        if head.canonical:
            continue
        gaps = [sp.factor(sp.simplify(d - (ak - yk))) for d, ak, yk in zip(dz, a, y)]
        gap = next((g for g in gaps if g != 0), sp.Integer(0))
        point = {t: 0 for t in z} | {t: 0 for t in y if isinstance(t, sp.Symbol)}
        proofs.append(
            Proof(
                f"head {name}",
                "dL/dz = a − y (the canonical form)",
                False,
                gap == 0,
                difference=str(gap),
                witness=f"{float(gap.subs(point)):.6g} at z = 0, y1 = 0",
            )
        )
    return proofs


def prove_seed() -> list[Proof]:
    """`mlp.backward`, fed δ2 = a2 - y, equals SymPy's gradient on the scalar seed network, for both tasks."""
    sp = sympy()
    x, y, w1, b1, w2, b2 = sp.symbols("x y w1 b1 w2 b2", real=True)
    a1 = _sigmoid(w1 * x + b1)
    z2 = w2 * a1 + b2
    proofs = []
    for task in mlp.TASKS:
        activation, per_sample = _SYMBOLIC[mlp.HEAD_OF_TASK[task]]
        a2 = activation([z2])[0]
        loss = per_sample([a2], [y])
        params = mlp.Params(
            *(np.full(shape, s, dtype=object) for shape, s in (((1, 1), w1), ((1,), b1), ((1, 1), w2), ((1,), b2)))
        )
        grads = mlp.backward(
            params, np.full((1, 1), x, dtype=object), np.full((1, 1), a1, dtype=object), _objects(a2 - y)
        )
        for symbol, g in zip((w1, b1, w2, b2), grads):
            proofs.append(
                Proof(f"seed {task}", f"mlp.backward's dL/d{symbol}", True, _zero(sp.diff(loss, symbol) - g.item()))
            )
    return proofs


def prove_network() -> list[Proof]:
    """`network.backward` on (1, 1, K) networks: every smooth activation with every canonical head."""
    sp = sympy()
    proofs = []
    for act_name, act in _SYMBOLIC_ACTIVATIONS.items():
        for head_name in heads.CANONICAL:
            z_sym, y = _outputs(head_name)
            k = len(z_sym)
            net = network.Network((1, 1, k), activation=act_name, head=head_name)
            x, w1, b1 = sp.symbols("x w1 b1", real=True)
            w2 = list(sp.symbols(f"v1:{k + 1}", real=True))
            b2 = list(sp.symbols(f"c1:{k + 1}", real=True))
            z1 = w1 * x + b1
            a1 = act(z1)
            z2 = [wk * a1 + bk for wk, bk in zip(w2, b2)]
            activation, per_sample = _SYMBOLIC[head_name]
            a2 = activation(z2)
            loss = per_sample(a2, y)
            params = {
                "w1": np.full((1, 1), w1, dtype=object),
                "b1": np.full((1,), b1, dtype=object),
                "w2": _objects(*w2).reshape(k, 1),
                "b2": _objects(*b2),
            }
            layers = [
                network.Layer(np.full((1, 1), z1, dtype=object), np.full((1, 1), a1, dtype=object)),
                network.Layer(_objects(*z2).reshape(1, k), _objects(*a2).reshape(1, k)),
            ]
            delta = heads.HEADS[head_name].output_error(layers[1].z, layers[1].a, _objects(*y).reshape(1, k))
            grads = network.backward(params, np.full((1, 1), x, dtype=object), layers, delta, net=net)
            symbols = {"w1": [w1], "b1": [b1], "w2": w2, "b2": b2}
            holds = all(
                _zero(sp.diff(loss, s) - g) for name, g in grads.items() for s, g in zip(symbols[name], g.ravel())
            )
            proofs.append(Proof(f"network {act_name} → {head_name}", "network.backward's gradients", True, holds))
    return proofs


def prove_source_typo() -> Proof:
    """The source text's ∂L/∂b1 = δ2 w1 σ'(z1) (w1 where w2 belongs) is not the derivative."""
    sp = sympy()
    x, y, w1, b1, w2, b2 = sp.symbols("x y w1 b1 w2 b2", real=True)
    a1 = _sigmoid(w1 * x + b1)
    a2 = w2 * a1 + b2  # regression; classification gives the same δ2 = a2 - y
    loss = (y - a2) ** 2 / 2
    as_written = (a2 - y) * w1 * a1 * (1 - a1)
    difference = sp.simplify(as_written - sp.diff(loss, b1))
    # In the derivation's own symbols: δ2 (w1 - w2) a1 (1 - a1).
    A1, A2 = sp.symbols("a1 a2", real=True)
    readable = sp.factor((A2 - y) * w1 * A1 * (1 - A1) - (A2 - y) * w2 * A1 * (1 - A1))
    point = {x: 1, y: 0, w1: 1, w2: 2, b1: 0, b2: 0}
    value = float(difference.subs(point))
    return Proof(
        "source text",
        "dL/db1 = δ2 w1 σ'(z1) (as written)",
        False,
        _zero(difference),
        difference=str(readable),
        witness=f"{value:.6g} at x=1, y=0, w1=1, w2=2, b1=b2=0",
    )
